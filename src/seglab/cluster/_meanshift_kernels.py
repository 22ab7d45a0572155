"""Compiled mean-shift kernels for points (numba); the kernel ids and the window's normalisation
are those of :mod:`._meanshift_common`."""

from __future__ import annotations

import numpy as np

from .._jit import kernel
from .._threads import get_num_threads, parallel_for
from ._meanshift_common import EPANECHNIKOV, FLAT


@kernel(inline="always")
def weight(kernel, r2):  # pragma: no cover - compiled
    """Kernel weight of a point at normalised squared distance r2 (inside the window)."""
    if kernel == FLAT:
        return 1.0
    if kernel == EPANECHNIKOV:
        return 1.0 - r2
    return np.exp(-0.5 * r2)


@kernel(inline="always")
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


@kernel(inline="always")
def _move(cur, acc, sw):  # pragma: no cover - compiled
    """Move the window to the weighted mean; returns the squared shift."""
    shift2 = 0.0
    for f in range(cur.shape[0]):
        v = acc[f] / sw
        shift2 += (v - cur[f]) ** 2
        cur[f] = v
    return shift2


def _grain(n_seeds: int) -> int:
    """Seeds per task: about sixteen tasks a thread (seeds converge at different speeds)."""
    return max(1, n_seeds // (16 * get_num_threads()))


def shift_points(
    X, start, order, offsets, cells, kernel, support, max_iter, tol, out, n_iter, counts
) -> None:
    """Mean-shift the seeds ``start`` on points X with a cell grid: see :func:`_shift_points`."""
    parallel_for(
        _shift_points,
        start.shape[0],
        X,
        start,
        order,
        offsets,
        cells,
        kernel,
        support,
        max_iter,
        tol,
        out,
        n_iter,
        counts,
        grain=_grain(start.shape[0]),
    )


@kernel(nogil=True)
def _shift_points(
    X, start, order, offsets, cells, kernel, support, max_iter, tol, out, n_iter, counts, s_lo, s_hi
):  # pragma: no cover
    """Mean-shift generic points with a uniform cell grid (cell side = support bandwidths).

    X: (N, D) data divided by the bandwidth; start: (S, D) seeds (same scale). The grid lists the
    points of each cell (``order`` sorted by cell, ``offsets`` the CSR starts, ``cells`` the sorted
    integer cell coordinates (M, D)); a window of radius ``support`` touches only the 3^D cells
    around the point's cell. Writes the converged points, iterations and the number of data points
    in the final window, for the seeds [s_lo, s_hi).
    """
    d = X.shape[1]
    m = cells.shape[0]
    sup2 = support * support
    tol2 = tol * tol
    n_nb = 3**d
    for s in range(s_lo, s_hi):
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


def shift_points_brute(X, start, kernel, support, max_iter, tol, out, n_iter, counts) -> None:
    """The same iteration as :func:`shift_points`, every seed against every point: the reference
    for tests and the path for high-dimensional data, where a grid no longer helps."""
    parallel_for(
        _shift_points_brute,
        start.shape[0],
        X,
        start,
        kernel,
        support,
        max_iter,
        tol,
        out,
        n_iter,
        counts,
        grain=_grain(start.shape[0]),
    )


@kernel(nogil=True)
def _shift_points_brute(
    X, start, kernel, support, max_iter, tol, out, n_iter, counts, s_lo, s_hi
):  # pragma: no cover
    """:func:`shift_points_brute` for the seeds [s_lo, s_hi)."""
    n, d = X.shape
    sup2 = support * support
    tol2 = tol * tol
    for s in range(s_lo, s_hi):
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
