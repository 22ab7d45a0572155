"""Compiled mean-shift kernels (numba).

Kernels are given by id: 0 flat, 1 epanechnikov, 2 gaussian. Distances reach the kernels already
divided by the bandwidth, so a window is always "normalised squared distance <= support^2", with
support 1 (flat, epanechnikov) or 3 (gaussian, truncated at 3 bandwidths, where its weight is 1.1 %).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

FLAT, EPANECHNIKOV, GAUSSIAN = 0, 1, 2


@njit(cache=True, inline="always")
def weight(kernel, r2):  # pragma: no cover - compiled
    """Kernel weight of a point at normalised squared distance r2 (inside the window)."""
    if kernel == FLAT:
        return 1.0
    if kernel == EPANECHNIKOV:
        return 1.0 - r2
    return np.exp(-0.5 * r2)


@njit(cache=True, parallel=True)
def image_modes(R, hs, kernel, support, max_iter, tol, modes, n_iter):  # pragma: no cover
    """Mean-shift every pixel of an image in the joint spatial-range domain.

    R: (C, H, W) float32 range features divided by the range bandwidth (planar, so that a window
    row is contiguous). A point (y, x, r) moves to the kernel-weighted mean of the pixels with
    ((y'-y)^2 + (x'-x)^2) / hs^2 <= support^2 and |r' - r|^2 <= support^2 (the product kernel of
    Comaniciu & Meer). The window only touches the pixels within support * hs of the point, so a
    step costs O(hs^2), not O(H W); each window row is processed without branches (SIMD).
    Stops when the normalised shift is below ``tol``. Writes modes (H, W, 2 + C) = (y, x, r...)
    and n_iter (H, W).
    """
    nc, h, w = R.shape
    rs = support * hs  # spatial window radius in pixels
    rs2 = rs * rs
    sup2 = support * support
    inv_hs2 = 1.0 / (hs * hs)
    tol2 = tol * tol
    width = 2 * int(np.ceil(rs)) + 3
    for y0 in prange(h):
        cr = np.empty(nc)
        sr = np.empty(nc)
        d2 = np.empty(width)
        wt = np.empty(width)
        for x0 in range(w):
            cy = np.float64(y0)
            cx = np.float64(x0)
            for c in range(nc):
                cr[c] = R[c, y0, x0]
            it = 0
            while it < max_iter:
                it += 1
                ylo = max(0, int(np.ceil(cy - rs)))
                yhi = min(h - 1, int(np.floor(cy + rs)))
                sw = 0.0
                sy = 0.0
                sx = 0.0
                for c in range(nc):
                    sr[c] = 0.0
                for yy in range(ylo, yhi + 1):
                    dy2 = (yy - cy) * (yy - cy)
                    xlo = max(0, int(np.ceil(cx - rs)))
                    xhi = min(w - 1, int(np.floor(cx + rs)))
                    m = xhi - xlo + 1
                    for q in range(m):
                        d2[q] = 0.0
                    for c in range(nc):
                        cc = cr[c]
                        for q in range(m):
                            t = np.float64(R[c, yy, xlo + q]) - cc
                            d2[q] += t * t
                    for q in range(m):
                        xx = xlo + q
                        ds2 = dy2 + (xx - cx) * (xx - cx)
                        inside = (ds2 <= rs2) & (d2[q] <= sup2)
                        if kernel == 0:
                            v = 1.0
                        elif kernel == 1:
                            v = (1.0 - ds2 * inv_hs2) * (1.0 - d2[q])
                        else:
                            v = np.exp(-0.5 * (ds2 * inv_hs2 + d2[q]))
                        wt[q] = v if inside else 0.0
                    rsw = 0.0
                    rsx = 0.0
                    for q in range(m):
                        rsw += wt[q]
                        rsx += wt[q] * q
                    sw += rsw
                    sy += rsw * yy
                    sx += rsx + rsw * xlo
                    for c in range(nc):
                        acc = 0.0
                        for q in range(m):
                            acc += wt[q] * R[c, yy, xlo + q]
                        sr[c] += acc
                if sw <= 0.0:
                    break
                ny = sy / sw
                nx = sx / sw
                shift2 = ((ny - cy) ** 2 + (nx - cx) ** 2) * inv_hs2
                for c in range(nc):
                    v = sr[c] / sw
                    shift2 += (v - cr[c]) ** 2
                    cr[c] = v
                cy = ny
                cx = nx
                if shift2 < tol2:
                    break
            modes[y0, x0, 0] = cy
            modes[y0, x0, 1] = cx
            for c in range(nc):
                modes[y0, x0, 2 + c] = cr[c]
            n_iter[y0, x0] = it


@njit(cache=True)
def _find(parent, i):  # pragma: no cover - compiled
    root = i
    while parent[root] != root:
        root = parent[root]
    while parent[i] != root:  # path compression
        nxt = parent[i]
        parent[i] = root
        i = nxt
    return root


@njit(cache=True)
def group_modes(modes, hs, merge):  # pragma: no cover - compiled
    """Join 4-adjacent pixels whose modes are closer than ``merge`` bandwidths both in space
    (|dy, dx| < merge * hs) and in range (|dr| < merge, range already normalised); returns the
    union-find root of every pixel (H * W,)."""
    h, w, d = modes.shape
    parent = np.arange(h * w)
    lim_s = (merge * hs) ** 2
    lim_r = merge * merge
    for y in range(h):
        for x in range(w):
            i = y * w + x
            for dy, dx in ((0, 1), (1, 0)):
                yy = y + dy
                xx = x + dx
                if yy >= h or xx >= w:
                    continue
                ds = (modes[y, x, 0] - modes[yy, xx, 0]) ** 2 + (
                    modes[y, x, 1] - modes[yy, xx, 1]
                ) ** 2
                if ds >= lim_s:
                    continue
                dr = 0.0
                for c in range(2, d):
                    dr += (modes[y, x, c] - modes[yy, xx, c]) ** 2
                if dr >= lim_r:
                    continue
                a = _find(parent, i)
                b = _find(parent, yy * w + xx)
                if a != b:
                    parent[max(a, b)] = min(a, b)
    for i in range(h * w):
        parent[i] = _find(parent, i)
    return parent


@njit(cache=True, parallel=True)
def shift_points(
    X, start, order, offsets, cells, kernel, support, max_iter, tol, out, n_iter, counts
):  # pragma: no cover
    """Mean-shift generic points with a uniform cell grid (cell side = support bandwidths).

    X: (N, D) data divided by the bandwidth; start: (S, D) seeds (same scale). The grid lists the
    points of each cell (``order`` sorted by cell, ``offsets`` the CSR starts, ``cells`` the sorted
    integer cell coordinates (M, D)); a window of radius ``support`` touches only the 3^D cells
    around the point's cell. Writes the converged points, iterations and the number of data points
    in the final window.
    """
    d = X.shape[1]
    m = cells.shape[0]
    sup2 = support * support
    tol2 = tol * tol
    n_nb = 3**d
    for s in prange(start.shape[0]):
        cur = start[s].copy()
        acc = np.empty(d)
        key = np.empty(d, dtype=np.int64)
        it = 0
        cnt = 0
        while True:
            for f in range(d):
                acc[f] = 0.0
            sw = 0.0
            cnt = 0
            base = np.floor(cur / support).astype(np.int64)
            for code in range(n_nb):
                rem = code
                for f in range(d):
                    key[f] = base[f] + (rem % 3) - 1
                    rem //= 3
                # binary search the cell among the sorted cell keys
                lo = 0
                hi = m
                while lo < hi:
                    mid = (lo + hi) // 2
                    cmp = 0
                    for f in range(d):
                        if cells[mid, f] < key[f]:
                            cmp = -1
                            break
                        if cells[mid, f] > key[f]:
                            cmp = 1
                            break
                    if cmp < 0:
                        lo = mid + 1
                    else:
                        hi = mid
                if lo >= m:
                    continue
                same = True
                for f in range(d):
                    if cells[lo, f] != key[f]:
                        same = False
                        break
                if not same:
                    continue
                for p in range(offsets[lo], offsets[lo + 1]):
                    i = order[p]
                    r2 = 0.0
                    for f in range(d):
                        t = X[i, f] - cur[f]
                        r2 += t * t
                    if r2 > sup2:
                        continue
                    wt = weight(kernel, r2)
                    sw += wt
                    cnt += 1
                    for f in range(d):
                        acc[f] += wt * X[i, f]
            if sw <= 0.0:
                break
            shift2 = 0.0
            for f in range(d):
                v = acc[f] / sw
                shift2 += (v - cur[f]) ** 2
                cur[f] = v
            it += 1
            if shift2 <= tol2 or it >= max_iter:
                break
        out[s] = cur
        n_iter[s] = it
        counts[s] = cnt


@njit(cache=True, parallel=True)
def shift_points_brute(
    X, start, kernel, support, max_iter, tol, out, n_iter, counts
):  # pragma: no cover
    """The same iteration as :func:`shift_points`, every seed against every point: the reference
    for tests and the path for high-dimensional data, where a grid no longer helps."""
    n, d = X.shape
    sup2 = support * support
    tol2 = tol * tol
    for s in prange(start.shape[0]):
        cur = start[s].copy()
        acc = np.empty(d)
        it = 0
        cnt = 0
        while True:
            for f in range(d):
                acc[f] = 0.0
            sw = 0.0
            cnt = 0
            for i in range(n):
                r2 = 0.0
                for f in range(d):
                    t = X[i, f] - cur[f]
                    r2 += t * t
                if r2 > sup2:
                    continue
                wt = weight(kernel, r2)
                sw += wt
                cnt += 1
                for f in range(d):
                    acc[f] += wt * X[i, f]
            if sw <= 0.0:
                break
            shift2 = 0.0
            for f in range(d):
                v = acc[f] / sw
                shift2 += (v - cur[f]) ** 2
                cur[f] = v
            it += 1
            if shift2 <= tol2 or it >= max_iter:
                break
        out[s] = cur
        n_iter[s] = it
        counts[s] = cnt
