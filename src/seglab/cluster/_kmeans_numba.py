"""The k-means kernels in numba: the fallback of the compiled ones (``_ckernels.c``, the same loops
in C), used where the package was built without a C compiler or with ``SEGLAB_KERNELS=numba``.

The wrappers, the layout and the arithmetic are described in :mod:`._kmeans_kernels`. These
kernels avoid numpy array expressions and reductions along an axis, which cost numba seconds to
compile (``benchmarks/startup.py`` measures a first run with an empty cache). (Their long
positional argument lists stay on one line, ``# fmt: skip``: one argument a line would make this
module half as long again.)
"""

from __future__ import annotations

import numpy as np

from .._jit import kernel
from ._kmeans_kernels import BLOCK, CHUNK


@kernel(inline="always")
def _round_down(x):  # pragma: no cover - compiled
    """float32 <= x: bounds are stored in float32 (half the memory traffic) but stay bounds.

    Rounding to nearest moves a value by at most 2**-24 of itself, so widening by 2**-22 first
    keeps the direction (and, unlike nextafter, compiles to SIMD)."""
    return np.float32(x - abs(x) * 2.384185791015625e-07)


@kernel(inline="always")
def _error(d2, R, A):  # pragma: no cover - compiled
    """Bound on the error of a computed squared distance d2 (``_kmeans_kernels.error_terms``)."""
    return R * d2 + A * np.sqrt(d2) + A * A


@kernel(nogil=True)
def _prepare(X, XT, shift, s, ss, bad, c_lo, c_hi):  # pragma: no cover - compiled
    """``_kmeans_kernels.prepare`` on chunks [c_lo, c_hi): the transpose, and per chunk its first row
    (``shift``), the sums and sums of squares of the rows minus it, and the number of non-finite
    values. (No array is made here: numpy calls cost numba compile time.)"""
    n, d = X.shape
    for c in range(c_lo, c_hi):
        start = c * CHUNK
        stop = min(n, start + CHUNK)
        for f in range(d):
            shift[c, f] = X[start, f]
        for i in range(start, stop):
            for f in range(d):
                v = X[i, f]
                XT[f, i] = v
                t = np.float64(v) - shift[c, f]
                s[c, f] += t
                ss[c, f] += t * t
        total = 0.0
        for f in range(d):
            total += s[c, f] + ss[c, f]
        if not np.isfinite(total):  # NaN and inf propagate into the sums
            for f in range(d):
                for i in range(start, stop):
                    bad[c] += not np.isfinite(XT[f, i])


@kernel()
def _nearest_two(src, off, m, centers, c64, R, A, b1, b2, bk, dist):  # pragma: no cover
    """Nearest centre and the two smallest squared distances of the points src[:, off:off+m].

    Loops run over points (contiguous) with the running minima updated without branches, so
    they compile to SIMD. Points whose two nearest centres are within the error bound are
    recomputed in float64 (only their label changes: b1 and b2 stay within the bound).
    """
    d = src.shape[0]
    k = centers.shape[0]
    for q in range(m):
        b1[q] = np.inf
        b2[q] = np.inf
        bk[q] = 0
    for j in range(k):
        # the first feature sets dist, the last one is fused with the update of the minima:
        # fewer passes over the block's arrays
        row = src[0, off : off + m]
        cf = centers[j, 0]
        for q in range(m):
            t = row[q] - cf
            dist[q] = t * t
        for f in range(1, d - 1):
            row = src[f, off : off + m]
            cf = centers[j, f]
            for q in range(m):
                t = row[q] - cf
                dist[q] += t * t
        if d == 1:
            for q in range(m):
                dq = dist[q]
                b2[q] = min(b2[q], max(dq, b1[q]))
                closer = dq < b1[q]
                bk[q] = j if closer else bk[q]
                b1[q] = dq if closer else b1[q]
        else:
            row = src[d - 1, off : off + m]
            cf = centers[j, d - 1]
            for q in range(m):
                t = row[q] - cf
                dq = dist[q] + t * t
                b2[q] = min(b2[q], max(dq, b1[q]))
                closer = dq < b1[q]
                bk[q] = j if closer else bk[q]
                b1[q] = dq if closer else b1[q]
    if R == 0.0 and A == 0.0:
        return
    n_close = 0
    for q in range(m):
        lo = np.float64(b1[q])
        hi = np.float64(b2[q])
        n_close += hi - lo <= _error(lo, R, A) + _error(hi, R, A)
    if n_close == 0:
        return
    for q in range(m):
        lo = np.float64(b1[q])
        hi = np.float64(b2[q])
        if hi - lo <= _error(lo, R, A) + _error(hi, R, A):
            best = np.inf
            for j in range(k):
                s = 0.0
                for f in range(d):
                    t = np.float64(src[f, off + q]) - c64[j, f]
                    s += t * t
                if s < best:
                    best = s
                    bk[q] = j


@kernel()
def _new_keys(b1, b2, bk, m, half_sep, decrement, R, A, out, sep, dec):  # pragma: no cover
    """Hamerly keys of points just computed: (lower bound on max(l, s_j)) - (upper bound on u)
    plus the cumulative decrement of their cluster (see ``_kmeans_kernels.hamerly_step``).

    A squared distance off by at most R d2 + A d + A^2 gives a distance off by at most
    R d + 2A, so the bounds are the computed distances widened by twice that. The per-cluster
    values are looked up with one blend per cluster (``sep``, ``dec`` are scratch) rather than
    gathered, so that every loop compiles to SIMD, square roots included."""
    for j in range(half_sep.size):
        s_j = half_sep[j]
        d_j = decrement[j]
        for q in range(m):
            mine = bk[q] == j
            sep[q] = s_j if mine else sep[q]
            dec[q] = d_j if mine else dec[q]
    widen_up = 1.0 + 2.0 * R
    widen_down = 1.0 - 2.0 * R
    for q in range(m):
        upper = np.sqrt(np.float64(b1[q])) * widen_up + 4.0 * A
        lower = np.sqrt(np.float64(b2[q])) * widen_down - 4.0 * A
        out[q] = _round_down(max(lower, sep[q]) - upper + dec[q])


@kernel(fastmath={"reassoc"})
def _add_sums(src, off, m, bk, sums, counts):  # pragma: no cover - compiled
    """sums[j] += the points of src[:, off:off+m] labelled j, counts[j] += their number: one
    masked SIMD pass per (centre, feature) instead of a scatter per point (the sums are
    reassociated, hence the flag: they are float64 sums of float32 or float64 values)."""
    k, d = sums.shape
    for j in range(k):
        n_j = 0
        for q in range(m):
            n_j += bk[q] == j
        if n_j == 0:
            continue
        counts[j] += n_j
        for f in range(d):
            row = src[f, off : off + m]
            acc = 0.0
            for q in range(m):
                acc += np.float64(row[q]) if bk[q] == j else 0.0
            sums[j, f] += acc


@kernel(nogil=True)
def _assign(XT, centers, c64, R, A, labels, want_sums, psums, pcounts, pchanged, pinertia, c_lo, c_hi):  # pragma: no cover  # fmt: skip
    """``_kmeans_kernels.assign`` on chunks [c_lo, c_hi), with per-chunk sums, counts, changes
    and (when ``pinertia`` is not empty) inertia under the new labels, as ``_hamerly_step``."""
    n = XT.shape[1]
    with_inertia = pinertia.size > 0
    b1, b2, dist = np.empty((3, BLOCK), dtype=XT.dtype)
    bk = np.empty(BLOCK, dtype=np.int32)
    cf = np.empty(BLOCK)
    acc = np.empty(BLOCK)
    for c in range(c_lo, c_hi):
        for q in range(BLOCK):
            acc[q] = 0.0
        for start in range(c * CHUNK, min(n, (c + 1) * CHUNK), BLOCK):
            m = min(n, start + BLOCK) - start
            _nearest_two(XT, start, m, centers, c64, R, A, b1, b2, bk, dist)
            changed = 0
            for q in range(m):
                changed += labels[start + q] != bk[q]
                labels[start + q] = bk[q]
            pchanged[c] += changed
            if want_sums:
                _add_sums(XT, start, m, bk, psums[c], pcounts[c])
            if with_inertia:
                _add_sqdist(XT, start, m, c64, labels, cf, acc)
        if with_inertia:
            pinertia[c] = _lane_total(acc)


@kernel(nogil=True)
def _hamerly_step(XT, centers, c64, R, A, labels, key, decrement, half_sep, dsums, dcounts, pchanged, pinertia, c_lo, c_hi):  # pragma: no cover  # fmt: skip
    """``_kmeans_kernels.hamerly_step`` on chunks [c_lo, c_hi), with per-chunk changes (and inertia, when
    ``pinertia`` is not empty)."""
    d, n = XT.shape
    with_inertia = pinertia.size > 0
    acc = np.empty(BLOCK)
    buf = np.empty((d, BLOCK), dtype=XT.dtype)
    b1, b2, dist = buf[0].copy(), buf[0].copy(), buf[0].copy()  # the data's dtype
    bk = np.empty(BLOCK, dtype=np.int32)
    kb = np.empty(BLOCK, dtype=np.float32)
    sep = np.empty(BLOCK)
    dec = np.empty(BLOCK)
    todo = np.empty(BLOCK, dtype=np.int32)
    for c in range(c_lo, c_hi):
        for q in range(BLOCK):
            acc[q] = 0.0
        for start in range(c * CHUNK, min(n, (c + 1) * CHUNK), BLOCK):
            m = min(n, start + BLOCK) - start
            count = 0
            for q in range(m):
                todo[count] = q
                count += key[start + q] < decrement[labels[start + q]]
            if count > 0:
                if 4 * count >= m:  # dense: recompute the whole block where it lies
                    for q in range(m):
                        todo[q] = q
                    count = m
                    lanes = m
                    src = XT
                    off = start
                else:
                    # whole SIMD vectors: no scalar tail
                    lanes = min(BLOCK, (count + 15) // 16 * 16)
                    for f in range(d):
                        for p in range(count):
                            buf[f, p] = XT[f, start + todo[p]]
                        for p in range(count, lanes):
                            buf[f, p] = 0.0
                    src = buf
                    off = 0
                _nearest_two(src, off, lanes, centers, c64, R, A, b1, b2, bk, dist)
                _new_keys(b1, b2, bk, lanes, half_sep, decrement, R, A, kb, sep, dec)
                for p in range(count):
                    i = start + todo[p]
                    a = labels[i]
                    j = bk[p]
                    key[i] = kb[p]
                    if j != a:
                        pchanged[c] += 1
                        labels[i] = j
                        dcounts[c, a] -= 1
                        dcounts[c, j] += 1
                        for f in range(d):
                            x = src[f, off + p]
                            dsums[c, a, f] -= x
                            dsums[c, j, f] += x
            if with_inertia:  # with the labels just updated
                _add_sqdist(XT, start, m, c64, labels, sep, acc)
        if with_inertia:
            pinertia[c] = _lane_total(acc)


@kernel(nogil=True)
def _sqdist_to_assigned(XT, centers, labels, out, c_lo, c_hi):  # pragma: no cover - compiled
    d, n = XT.shape
    for c in range(c_lo, c_hi):
        stop = min(n, (c + 1) * CHUNK)
        for f in range(d):
            for i in range(c * CHUNK, stop):
                t = np.float64(XT[f, i]) - centers[labels[i], f]
                out[i] += t * t


@kernel(inline="always")
def _lane_total(acc):  # pragma: no cover - compiled
    """A chunk's inertia from its per-lane sums, added in lane order."""
    total = 0.0
    for q in range(BLOCK):
        total += acc[q]
    return total


@kernel(inline="always")
def _add_sqdist(XT, start, m, centers, labels, cf, acc):  # pragma: no cover - compiled
    """acc[q] += squared distance (float64) of point start + q to its centre, q < m. Each point's
    centre coordinate is looked up by one blend per cluster rather than gathered, so every loop
    compiles to SIMD (``cf`` is scratch)."""
    d = XT.shape[0]
    k = centers.shape[0]
    lab = labels[start : start + m]
    for f in range(d):
        for j in range(k):
            v = centers[j, f]
            for q in range(m):
                cf[q] = v if lab[q] == j else cf[q]
        row = XT[f, start : start + m]
        for q in range(m):
            t = np.float64(row[q]) - cf[q]
            acc[q] += t * t


@kernel(nogil=True)
def _min_sqdist_update(XT, point, closest, out, partial, c_lo, c_hi):  # pragma: no cover
    d, n = XT.shape
    for c in range(c_lo, c_hi):
        start = c * CHUNK
        stop = min(n, start + CHUNK)
        dist = out[start:stop]  # the distances are summed where the result goes
        for q in range(stop - start):
            dist[q] = 0.0
        for f in range(d):
            p = point[f]
            row = XT[f, start:stop]
            for q in range(stop - start):
                t = np.float64(row[q]) - p
                dist[q] += t * t
        acc = 0.0
        for q in range(stop - start):
            v = min(dist[q], closest[start + q])
            dist[q] = v
            acc += v
        partial[c] = acc
