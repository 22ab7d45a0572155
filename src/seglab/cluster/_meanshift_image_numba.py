"""The image mean-shift kernels in numba: the generic climb (any number of range channels) and the
fallback of the compiled three-channel climb (``_ckernels_meanshift.h``); see
:mod:`._meanshift_image_kernels`.

(The kernels' long positional argument lists stay on one line, ``# fmt: skip``: one
argument a line would make this module half as long again.)"""

from __future__ import annotations

import numpy as np
from numba import njit

from .._jit import kernel
from ._meanshift_common import BAND, BLOCK, EPANECHNIKOV, FLAT, GAUSSIAN


@kernel(nogil=True, fastmath={"reassoc", "contract"})
def _image_modes(
    R, w, pad, hs, kernel, support, max_iter, tol, modes, n_iter, rscale2, y_lo, y_hi
):  # pragma: no cover
    # long: the generic (any number of channels) climb keeps its window sums in local arrays
    # across the whole loop; splitting it would pass them around on every iteration
    """Mean-shift the pixels of rows [y_lo, y_hi) in the joint spatial-range domain.

    R: (C, H, pad + W + pad) float32 range features divided by the range bandwidth, planar and
    padded left and right (see ``pad_columns``) so that a window row is contiguous and can be
    read in fixed blocks of ``BLOCK`` columns, which compile to SIMD code without bounds checks.
    A point (y, x, r) moves to the kernel-weighted mean of the pixels with
    ((y'-y)^2 + (x'-x)^2) / hs^2 <= support^2 and |r' - r|^2 <= support^2 (the product kernel of
    Comaniciu & Meer). The window only touches the pixels within support * hs of the point, so a
    step costs O(hs^2), not O(H W). Arithmetic is float64. Stops when the window moves less than
    ``tol`` in pixels and feature units (``rscale2``: each range channel's squared bandwidth),
    EDISON's rule. Writes modes (H, W, 2 + C) = (y, x, r...) and n_iter (H, W).
    """
    nc, h, _ = R.shape
    rs = support * hs  # spatial window radius in pixels
    rs2 = rs * rs
    sup2 = support * support
    inv_hs2 = 1.0 / (hs * hs)
    tol2 = tol * tol
    cr = np.empty(nc)
    sr = np.empty(nc)
    d2 = np.empty(BLOCK)
    wt = np.empty(BLOCK)
    for y0 in range(y_lo, y_hi):
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
                            ok = (ds2 < rs2) & (d2[q] < sup2)  # padding never passes d2
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
                shift2 = (ny - cy) ** 2 + (nx - cx) ** 2
                for c in range(nc):
                    v = sr[c] / sw
                    shift2 += (v - cr[c]) ** 2 * rscale2[c]
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


BASIN = 0.5  # EDISON's TC_DIST_FACTOR: a pixel the path reaches joins if its colour is this near
NEAR = 0.02  # speed-up 2: window points this near in colour (squared, bandwidths) join the path


@njit(inline="always")
def _weight(kernel, dr2, ds2, sup2, rs2, inv_hs2):  # pragma: no cover - compiled
    """float32 kernel weight of a window point at squared range distance dr2 and spatial ds2
    (both normalised but ds2, in pixels): 0 outside the window (padding never passes dr2)."""
    if kernel == 0:
        v = np.float32(1.0)
    elif kernel == 1:
        v = np.float32((1.0 - ds2 * inv_hs2) * (1.0 - dr2))
    else:
        v = np.float32(np.exp(-0.5 * (ds2 * inv_hs2 + dr2)))
    return v if (dr2 < sup2) & (ds2 < rs2) else np.float32(0.0)


@njit(inline="always")
def _near(dr2, y, x, lo, hi, w, table, plist, npts):  # pragma: no cover - compiled
    """Speed-up 2: a window point (squared range distance dr2; inf outside the window) of very
    similar colour, inside the band, joins the path. Returns the new count of collected pixels."""
    if dr2 < NEAR and y >= lo and y < hi and table[y - lo, x] == 0:
        table[y - lo, x] = 2
        plist[npts] = y * w + x
        npts += 1
    return npts


@njit(inline="always", fastmath={"reassoc", "contract"})
def _block(
    ra0, ra1, ra2, rb0, rb1, rb2, rc0, rc1, rc2, dx0, da, db, dc,
    c0f, c1f, c2f, lwf, kernel, sup2f, rs2f, inv_hs2, speedup, near,
):  # pragma: no cover  # fmt: skip
    """One block of BLOCK columns of three window rows (a, b, c) in float32 lanes: the weights
    of each row, the weighted column offsets and the weighted colour sums; with speed-up 2, each
    lane's colour distance is kept in ``near`` (collected out of this SIMD loop)."""
    zero = np.float32(0.0)
    wa = wb = wc = rx = a0 = a1 = a2 = zero
    for q in range(BLOCK):
        dx = dx0 + np.float32(q)
        dx2 = dx * dx
        ta, tb, tc = ra0[q] - c0f, rb0[q] - c0f, rc0[q] - c0f
        ea = lwf * ta * ta
        eb = lwf * tb * tb
        ec = lwf * tc * tc
        ta, tb, tc = ra1[q] - c1f, rb1[q] - c1f, rc1[q] - c1f
        ea += ta * ta
        eb += tb * tb
        ec += tc * tc
        ta, tb, tc = ra2[q] - c2f, rb2[q] - c2f, rc2[q] - c2f
        ea += ta * ta
        eb += tb * tb
        ec += tc * tc
        ua = _weight(kernel, ea, da + dx2, sup2f, rs2f, inv_hs2)
        ub = _weight(kernel, eb, db + dx2, sup2f, rs2f, inv_hs2)
        uc = _weight(kernel, ec, dc + dx2, sup2f, rs2f, inv_hs2)
        wa += ua
        wb += ub
        wc += uc
        rx += (ua + ub + uc) * np.float32(q)
        a0 += ua * ra0[q] + ub * rb0[q] + uc * rc0[q]
        a1 += ua * ra1[q] + ub * rb1[q] + uc * rc1[q]
        a2 += ua * ra2[q] + ub * rb2[q] + uc * rc2[q]
        if speedup == 2:  # kept per lane; collected below, out of the SIMD loop
            near[0, q] = ea if ua > 0 else np.float32(np.inf)
            near[1, q] = eb if ub > 0 else np.float32(np.inf)
            near[2, q] = ec if uc > 0 else np.float32(np.inf)
    return wa, wb, wc, rx, a0, a1, a2


@njit(inline="always")
def _basin(R, pad, w, y0, x0, lo, hi, cy, cx, c0, c1, c2, table, plist, npts, modes):  # pragma: no cover  # fmt: skip
    """EDISON's basin of attraction: the pixel under the window, if its colour is near, joins
    the path (collected), or, if its mode is known, ends the climb at that mode."""
    my = int(cy + 0.5)
    mx = int(cx + 0.5)
    if my >= lo and my < hi and mx >= 0 and mx < w and (my != y0 or mx != x0):
        state = table[my - lo, mx]
        d0 = R[0, my, mx + pad] - c0
        d1 = R[1, my, mx + pad] - c1
        d2 = R[2, my, mx + pad] - c2
        if state != 2 and d0 * d0 + d1 * d1 + d2 * d2 < BASIN:
            if state == 0:
                table[my - lo, mx] = 2
                plist[npts] = my * w + mx
                npts += 1
            else:
                return (True, modes[my, mx, 0], modes[my, mx, 1], modes[my, mx, 2],
                        modes[my, mx, 3], modes[my, mx, 4], npts)  # fmt: skip
    return False, cy, cx, c0, c1, c2, npts


@njit(inline="always")
def _store(modes, n_iter, table, plist, npts, y0, x0, lo, w, cy, cx, c0, c1, c2, it):  # pragma: no cover  # fmt: skip
    """The mode of (y0, x0), shared by the pixels collected on its path."""
    modes[y0, x0, 0] = cy
    modes[y0, x0, 1] = cx
    modes[y0, x0, 2] = c0
    modes[y0, x0, 3] = c1
    modes[y0, x0, 4] = c2
    n_iter[y0, x0] = it
    for k in range(npts):  # the pixels collected on the way share the mode
        p = plist[k]
        py = p // w
        px = p % w
        for f in range(5):
            modes[py, px, f] = modes[y0, x0, f]
        n_iter[py, px] = 0
        table[py - lo, px] = 1


@njit(inline="always", fastmath={"reassoc", "contract"})
def _pixel3(
    R, w, pad, hs, kernel, support, max_iter, tol, modes, n_iter, bright, rscale2,
    y0, x0, table, plist, lo, hi, speedup, near,
):  # pragma: no cover  # fmt: skip
    # long: the climb of one pixel is the filter's hot loop; its block pass, basin check and store
    # are split out (inlined), the rest shares registers across the iterations
    """Climb from pixel (y0, x0) to its mode; with ``speedup``, collect the pixels of the band
    [lo, hi) that the path passes (and, for 2, the near window points), or stop on a pixel whose
    mode is known and adopt it (EDISON's basins of attraction). Returns the collected count."""
    h = R.shape[1]
    rs = support * hs
    rs2 = rs * rs
    sup2 = support * support
    inv_hs2 = 1.0 / (hs * hs)
    tol2 = tol * tol
    q0, q1, q2 = rscale2[0], rscale2[1], rscale2[2]
    cy = np.float64(y0)
    cx = np.float64(x0)
    c0 = np.float64(R[0, y0, x0 + pad])
    c1 = np.float64(R[1, y0, x0 + pad])
    c2 = np.float64(R[2, y0, x0 + pad])
    npts = 0
    it = 0
    while it < max_iter:
        it += 1
        ylo = max(0, int(np.ceil(cy - rs)))
        yhi = min(h - 1, int(np.floor(cy + rs)))
        xs = int(np.floor(cx - rs))
        xe = int(np.floor(cx + rs))
        lw = 4.0 if c0 > bright else 1.0
        sw = 0.0
        sy = 0.0
        sx = 0.0
        s0 = 0.0
        s1 = 0.0
        s2 = 0.0
        # float32 lanes (sixteen per SIMD register), three window rows per pass so that their
        # sums share one reduction; each pass's sums go into float64 totals
        c0f = np.float32(c0)
        c1f = np.float32(c1)
        c2f = np.float32(c2)
        lwf = np.float32(lw)
        sup2f = np.float32(sup2)
        rs2f = np.float32(rs2)
        for ya in range(ylo, yhi + 1, 3):
            yb = min(ya + 1, yhi)  # rows past the window are read again but weigh nothing
            yc = min(ya + 2, yhi)
            da = np.float32((ya - cy) * (ya - cy))
            db = np.float32((yb - cy) * (yb - cy)) if ya + 1 <= yhi else np.float32(np.inf)
            dc = np.float32((yc - cy) * (yc - cy)) if ya + 2 <= yhi else np.float32(np.inf)
            for xb in range(xs, xe + 1, BLOCK):
                lo_col = pad + xb
                hi_col = lo_col + BLOCK
                ra0, ra1, ra2 = (
                    R[0, ya, lo_col:hi_col],
                    R[1, ya, lo_col:hi_col],
                    R[2, ya, lo_col:hi_col],
                )
                rb0, rb1, rb2 = (
                    R[0, yb, lo_col:hi_col],
                    R[1, yb, lo_col:hi_col],
                    R[2, yb, lo_col:hi_col],
                )
                rc0, rc1, rc2 = (
                    R[0, yc, lo_col:hi_col],
                    R[1, yc, lo_col:hi_col],
                    R[2, yc, lo_col:hi_col],
                )
                wa, wb, wc, rx, a0, a1, a2 = _block(
                    ra0, ra1, ra2, rb0, rb1, rb2, rc0, rc1, rc2, np.float32(xb - cx), da, db, dc,
                    c0f, c1f, c2f, lwf, kernel, sup2f, rs2f, inv_hs2, speedup, near,
                )  # fmt: skip
                if speedup == 2:  # window points of very similar colour join the path
                    for q in range(BLOCK):
                        npts = _near(near[0, q], ya, xb + q, lo, hi, w, table, plist, npts)
                        npts = _near(near[1, q], yb, xb + q, lo, hi, w, table, plist, npts)
                        npts = _near(near[2, q], yc, xb + q, lo, hi, w, table, plist, npts)
                pass_w = np.float64(wa) + wb + wc
                sw += pass_w
                sy += np.float64(wa) * ya + np.float64(wb) * yb + np.float64(wc) * yc
                sx += rx + pass_w * xb
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
        if it == 1:  # EDISON measures the first step in bandwidths, the later ones in units
            shift2 = ((ny - cy) ** 2 + (nx - cx) ** 2) * inv_hs2
            shift2 += (n0 - c0) ** 2 + (n1 - c1) ** 2 + (n2 - c2) ** 2
        else:
            shift2 = (ny - cy) ** 2 + (nx - cx) ** 2
            shift2 += (n0 - c0) ** 2 * q0 + (n1 - c1) ** 2 * q1 + (n2 - c2) ** 2 * q2
        cy = ny
        cx = nx
        c0 = n0
        c1 = n1
        c2 = n2
        if shift2 < tol2:
            break
        if speedup > 0:  # the pixel under the window: on the path, or already at a known mode
            stop, cy, cx, c0, c1, c2, npts = _basin(
                R, pad, w, y0, x0, lo, hi, cy, cx, c0, c1, c2, table, plist, npts, modes
            )
            if stop:
                break
    _store(modes, n_iter, table, plist, npts, y0, x0, lo, w, cy, cx, c0, c1, c2, it)
    return npts


def _entry_point(kernel_id: int, speedup: int):
    """The compiled three-channel climb for one kernel and speed-up: both are constants of the
    closure, so numba compiles each branch away (and caches each entry point apart). Runs the
    bands [b_lo, b_hi) of ``_meanshift_image_kernels.image_modes3``."""

    @kernel(nogil=True, fastmath={"reassoc", "contract"})
    def modes3(R, w, pad, hs, support, max_iter, tol, modes, n_iter, bright, rscale2, b_lo, b_hi):  # pragma: no cover  # fmt: skip
        h = R.shape[1]
        band = BAND if speedup > 0 else 1
        table = np.empty((band, w), np.uint8)
        plist = np.empty(band * w, np.int64)
        near = np.empty((3, BLOCK), np.float32)  # speed-up 2: per-lane range distances
        for b in range(b_lo, b_hi):
            lo = b * band
            hi = min(h, lo + band)
            for y in range(band):
                for x in range(w):
                    table[y, x] = 0
            for y0 in range(lo, hi):
                for x0 in range(w):
                    if speedup > 0 and table[y0 - lo, x0] == 1:
                        continue
                    _pixel3(R, w, pad, hs, kernel_id, support, max_iter, tol, modes, n_iter, bright,
                            rscale2, y0, x0, table, plist, lo, hi, speedup, near)  # fmt: skip

    return modes3


#: The nine entry points, generated: (kernel id, speed-up) -> compiled function.
_MODES3 = {(k, s): _entry_point(k, s) for k in (FLAT, EPANECHNIKOV, GAUSSIAN) for s in (0, 1, 2)}
