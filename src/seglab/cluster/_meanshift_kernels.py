"""Compiled mean-shift kernels (numba).

Kernels are given by id: 0 flat, 1 epanechnikov, 2 gaussian. Distances reach the kernels already
divided by the bandwidth, so a window is always "normalised squared distance <= support^2", with
support 1 (flat, epanechnikov) or 3 (gaussian, truncated at 3 bandwidths, where its weight is 1.1 %).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

FLAT, EPANECHNIKOV, GAUSSIAN = 0, 1, 2
FAR = 1e15  # a range value no window accepts (image padding); its square still fits float64


@njit(cache=True, inline="always")
def weight(kernel, r2):  # pragma: no cover - compiled
    """Kernel weight of a point at normalised squared distance r2 (inside the window)."""
    if kernel == FLAT:
        return 1.0
    if kernel == EPANECHNIKOV:
        return 1.0 - r2
    return np.exp(-0.5 * r2)


BLOCK = 16  # window rows are processed in blocks of this many columns: a constant trip count


def pad_columns(rs: float) -> int:
    """Columns of padding each side so that every block of a window stays inside the array."""
    return BLOCK * int(np.ceil((np.ceil(rs) + BLOCK + 1) / BLOCK))


@njit(cache=True, parallel=True, fastmath={"reassoc", "contract"})
def image_modes(R, w, pad, hs, kernel, support, max_iter, tol, modes, n_iter):  # pragma: no cover
    """Mean-shift every pixel of an image in the joint spatial-range domain.

    R: (C, H, pad + W + pad) float32 range features divided by the range bandwidth, planar and
    padded left and right (see :func:`pad_columns`) so that a window row is contiguous and can be
    read in fixed blocks of ``BLOCK`` columns, which compile to SIMD code without bounds checks.
    A point (y, x, r) moves to the kernel-weighted mean of the pixels with
    ((y'-y)^2 + (x'-x)^2) / hs^2 <= support^2 and |r' - r|^2 <= support^2 (the product kernel of
    Comaniciu & Meer). The window only touches the pixels within support * hs of the point, so a
    step costs O(hs^2), not O(H W). Arithmetic is float64. Stops when the normalised shift is
    below ``tol``. Writes modes (H, W, 2 + C) = (y, x, r...) and n_iter (H, W).
    """
    nc, h, _ = R.shape
    rs = support * hs  # spatial window radius in pixels
    rs2 = rs * rs
    sup2 = support * support
    inv_hs2 = 1.0 / (hs * hs)
    tol2 = tol * tol
    for y0 in prange(h):
        cr = np.empty(nc)
        sr = np.empty(nc)
        d2 = np.empty(BLOCK)
        wt = np.empty(BLOCK)
        for x0 in range(w):
            cy = np.float64(y0)
            cx = np.float64(x0)
            for c in range(nc):
                cr[c] = R[c, y0, x0 + pad]
            it = 0
            while it < max_iter:
                it += 1
                ylo = max(0, int(np.ceil(cy - rs)))
                yhi = min(h - 1, int(np.floor(cy + rs)))
                xs = int(np.floor(cx - rs))
                xe = int(np.floor(cx + rs))
                sw = 0.0
                sy = 0.0
                sx = 0.0
                for c in range(nc):
                    sr[c] = 0.0
                for yy in range(ylo, yhi + 1):
                    dy2 = (yy - cy) * (yy - cy)
                    for xb in range(xs, xe + 1, BLOCK):
                        for q in range(BLOCK):
                            d2[q] = 0.0
                        for c in range(nc):
                            cc = cr[c]
                            for q in range(BLOCK):
                                t = np.float64(R[c, yy, pad + xb + q]) - cc
                                d2[q] += t * t
                        rsw = 0.0
                        rsx = 0.0
                        for q in range(BLOCK):
                            xx = xb + q
                            dxx = xx - cx
                            ds2 = dy2 + dxx * dxx
                            ok = (ds2 <= rs2) & (d2[q] <= sup2)  # padding never passes d2
                            if kernel == 0:
                                v = 1.0
                            elif kernel == 1:
                                v = (1.0 - ds2 * inv_hs2) * (1.0 - d2[q])
                            else:
                                v = np.exp(-0.5 * (ds2 * inv_hs2 + d2[q]))
                            v = v if ok else 0.0
                            wt[q] = v
                            rsw += v
                            rsx += v * q
                        sw += rsw
                        sy += rsw * yy
                        sx += rsx + rsw * xb
                        for c in range(nc):
                            acc = 0.0
                            for q in range(BLOCK):
                                acc += wt[q] * R[c, yy, pad + xb + q]
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


@njit(inline="always", fastmath={"reassoc", "contract"})
def _image_modes3(R, w, pad, hs, kernel, support, max_iter, tol, modes, n_iter):  # pragma: no cover
    """:func:`image_modes` for three range channels (colour), the common case, with the channels
    in registers and one fused loop per block: about ten times faster than the generic kernel.
    Inlined into one entry point per kernel so the weight is a constant, not a branch."""
    _, h, _ = R.shape
    rs = support * hs
    rs2 = rs * rs
    sup2 = support * support
    inv_hs2 = 1.0 / (hs * hs)
    tol2 = tol * tol
    for y0 in prange(h):
        for x0 in range(w):
            cy = np.float64(y0)
            cx = np.float64(x0)
            c0 = np.float64(R[0, y0, x0 + pad])
            c1 = np.float64(R[1, y0, x0 + pad])
            c2 = np.float64(R[2, y0, x0 + pad])
            it = 0
            while it < max_iter:
                it += 1
                ylo = max(0, int(np.ceil(cy - rs)))
                yhi = min(h - 1, int(np.floor(cy + rs)))
                xs = int(np.floor(cx - rs))
                xe = int(np.floor(cx + rs))
                sw = 0.0
                sy = 0.0
                sx = 0.0
                s0 = 0.0
                s1 = 0.0
                s2 = 0.0
                for yy in range(ylo, yhi + 1):
                    dy2 = (yy - cy) * (yy - cy)
                    for xb in range(xs, xe + 1, BLOCK):
                        r0 = R[0, yy, pad + xb : pad + xb + BLOCK]
                        r1 = R[1, yy, pad + xb : pad + xb + BLOCK]
                        r2 = R[2, yy, pad + xb : pad + xb + BLOCK]
                        rw = 0.0
                        rx = 0.0
                        a0 = 0.0
                        a1 = 0.0
                        a2 = 0.0
                        for q in range(BLOCK):
                            v0 = np.float64(r0[q])
                            v1 = np.float64(r1[q])
                            v2 = np.float64(r2[q])
                            t0 = v0 - c0
                            t1 = v1 - c1
                            t2 = v2 - c2
                            dr2 = t0 * t0 + t1 * t1 + t2 * t2
                            xx = xb + q
                            dxx = xx - cx
                            ds2 = dy2 + dxx * dxx
                            ok = (dr2 <= sup2) & (ds2 <= rs2)  # padding never passes dr2
                            if kernel == 0:
                                v = 1.0
                            elif kernel == 1:
                                v = (1.0 - ds2 * inv_hs2) * (1.0 - dr2)
                            else:
                                v = np.exp(-0.5 * (ds2 * inv_hs2 + dr2))
                            v = v if ok else 0.0
                            rw += v
                            rx += v * q
                            a0 += v * v0
                            a1 += v * v1
                            a2 += v * v2
                        sw += rw
                        sy += rw * yy
                        sx += rx + rw * xb
                        s0 += a0
                        s1 += a1
                        s2 += a2
                if sw <= 0.0:
                    break
                ny = sy / sw
                nx = sx / sw
                n0 = s0 / sw
                n1 = s1 / sw
                n2 = s2 / sw
                shift2 = ((ny - cy) ** 2 + (nx - cx) ** 2) * inv_hs2
                shift2 += (n0 - c0) ** 2 + (n1 - c1) ** 2 + (n2 - c2) ** 2
                cy = ny
                cx = nx
                c0 = n0
                c1 = n1
                c2 = n2
                if shift2 < tol2:
                    break
            modes[y0, x0, 0] = cy
            modes[y0, x0, 1] = cx
            modes[y0, x0, 2] = c0
            modes[y0, x0, 3] = c1
            modes[y0, x0, 4] = c2
            n_iter[y0, x0] = it


@njit(cache=True, parallel=True, fastmath={"reassoc", "contract"})
def _image_modes3_flat(R, w, pad, hs, support, max_iter, tol, modes, n_iter):  # pragma: no cover
    _image_modes3(R, w, pad, hs, FLAT, support, max_iter, tol, modes, n_iter)


@njit(cache=True, parallel=True, fastmath={"reassoc", "contract"})
def _image_modes3_epanechnikov(
    R, w, pad, hs, support, max_iter, tol, modes, n_iter
):  # pragma: no cover
    _image_modes3(R, w, pad, hs, EPANECHNIKOV, support, max_iter, tol, modes, n_iter)


@njit(cache=True, parallel=True, fastmath={"reassoc", "contract"})
def _image_modes3_gaussian(
    R, w, pad, hs, support, max_iter, tol, modes, n_iter
):  # pragma: no cover
    _image_modes3(R, w, pad, hs, GAUSSIAN, support, max_iter, tol, modes, n_iter)


def image_modes3(R, w, pad, hs, kernel, support, max_iter, tol, modes, n_iter):
    """Dispatch to the compiled three-channel kernel for ``kernel`` (an id)."""
    run = {FLAT: _image_modes3_flat, EPANECHNIKOV: _image_modes3_epanechnikov}.get(
        kernel, _image_modes3_gaussian
    )
    run(R, w, pad, hs, support, max_iter, tol, modes, n_iter)


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


@njit(cache=True, inline="always")
def _add_point(X, i, cur, sup2, kernel, acc):  # pragma: no cover - compiled
    """Add point i to the window sums if it lies inside; returns its weight (0 outside)."""
    d = X.shape[1]
    r2 = 0.0
    for f in range(d):
        t = X[i, f] - cur[f]
        r2 += t * t
    if r2 > sup2:
        return 0.0
    wt = weight(kernel, r2)
    for f in range(d):
        acc[f] += wt * X[i, f]
    return wt


@njit(cache=True, inline="always")
def _move(cur, acc, sw):  # pragma: no cover - compiled
    """Move the window to the weighted mean; returns the squared shift."""
    shift2 = 0.0
    for f in range(cur.shape[0]):
        v = acc[f] / sw
        shift2 += (v - cur[f]) ** 2
        cur[f] = v
    return shift2


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
                    wt = _add_point(X, order[p], cur, sup2, kernel, acc)
                    sw += wt
                    cnt += wt > 0.0
            if sw <= 0.0:
                break
            it += 1
            if _move(cur, acc, sw) <= tol2 or it >= max_iter:
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
                wt = _add_point(X, i, cur, sup2, kernel, acc)
                sw += wt
                cnt += wt > 0.0
            if sw <= 0.0:
                break
            it += 1
            if _move(cur, acc, sw) <= tol2 or it >= max_iter:
                break
        out[s] = cur
        n_iter[s] = it
        counts[s] = cnt
