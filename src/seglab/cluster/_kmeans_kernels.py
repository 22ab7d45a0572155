"""Compiled k-means kernels (numba).

Layout. The kernels read the features transposed, as a (D, N) array made once per fit by
:func:`prepare` (which also checks them and computes their variance in the same pass): each
feature is then one contiguous row, so the distance loops over a block of ``BLOCK`` points run
over contiguous memory, compile to SIMD instructions and need no copy. Work is split over threads
in chunks of ``CHUNK`` points (:func:`seglab._threads.parallel_for`: each kernel is compiled
serial and runs a range of chunks without the GIL); no N x K distance matrix is ever held. The
kernels avoid numpy array expressions and reductions along an axis, which cost numba seconds to
compile (``benchmarks/startup.py`` measures a first run with an empty cache).

(The kernels' long positional argument lists stay on one line, ``# fmt: skip``: one
argument a line would make this module half as long again.)

Arithmetic. Distances are sum((x - c)^2) in the data's dtype, never |x|^2 - 2x.c + |c|^2 (which
cancels for points far from the origin, such as pixel positions). For float32 data the two
smallest distances of each point come with a rigorous error bound ``err(d2) = R d2 + A sqrt(d2)
+ A^2`` (see :func:`error_terms`): a point whose two nearest centres are closer than that is
recomputed in float64, so every label is the one exact arithmetic gives (up to float64 ties), and
the bounds kept for Hamerly's test are widened by the same amount, so they stay bounds.
"""

from __future__ import annotations

import numpy as np

from .._jit import kernel
from .._threads import parallel_for

CHUNK = 16384  # points per parallel task
BLOCK = 512  # points per vectorised block: its rows and running minima stay in L1

_EPS32 = 2.0**-24


def error_terms(dtype: np.dtype, centers: np.ndarray) -> tuple[float, float]:
    """(R, A) of the distance error bound for data of ``dtype`` against ``centers`` (float64).

    In float32, each of the D differences, squares and sums is rounded once (relative error
    (D + 2) u, u = 2**-24) and the centres themselves are rounded (an absolute error up to
    2 u |c| sqrt(d2) + (u |c|)^2). Both are doubled for safety. Float64 data: (0, 0).
    """
    if np.dtype(dtype) != np.float32:
        return 0.0, 0.0
    d = centers.shape[1]
    cmax = float(np.sqrt((centers**2).sum(axis=1)).max())
    return 2.0 * (d + 2) * _EPS32, 4.0 * _EPS32 * cmax


@kernel(inline="always")
def _round_down(x):  # pragma: no cover - compiled
    """float32 <= x: bounds are stored in float32 (half the memory traffic) but stay bounds.

    Rounding to nearest moves a value by at most 2**-24 of itself, so widening by 2**-22 first
    keeps the direction (and, unlike nextafter, compiles to SIMD)."""
    return np.float32(x - abs(x) * 2.384185791015625e-07)


@kernel(inline="always")
def _error(d2, R, A):  # pragma: no cover - compiled
    """Bound on the error of a computed squared distance d2 (see :func:`error_terms`)."""
    return R * d2 + A * np.sqrt(d2) + A * A


def _n_chunks(n: int) -> int:
    return (n + CHUNK - 1) // CHUNK


@kernel(nogil=True)
def _prepare(X, XT, shift, s, ss, bad, c_lo, c_hi):  # pragma: no cover - compiled
    """:func:`prepare` on chunks [c_lo, c_hi): the transpose, and per chunk its first row
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


def prepare(X: np.ndarray, XT: np.ndarray) -> tuple[int, float, np.ndarray]:
    """One pass over X (N, D): writes its transpose into XT (D, N) and returns the number of
    non-finite values, the mean over features of the per-feature variance and the sum of the
    points (D,) in float64.

    The variance is combined from per-chunk means and sums of squared deviations (Chan et al.),
    each chunk shifted by its first row, so it does not cancel for features far from zero. (XT is
    allocated by the caller: numpy backs large arrays with huge pages, which halves the cost of
    first touching them.)
    """
    n, d = X.shape
    n_chunks = _n_chunks(n)
    shift = np.empty((n_chunks, d))
    s = np.zeros((n_chunks, d))
    ss = np.zeros((n_chunks, d))
    bad = np.zeros(n_chunks, dtype=np.int64)
    parallel_for(_prepare, n_chunks, X, XT, shift, s, ss, bad)
    counts = np.minimum(n, (np.arange(n_chunks) + 1) * CHUNK) - np.arange(n_chunks) * CHUNK
    cmean = shift + s / counts[:, None]  # per-chunk means and sums of squared deviations
    cm2 = ss - s * s / counts[:, None]
    mean = (cmean * counts[:, None]).sum(axis=0) / n
    m2 = cm2.sum(axis=0) + (counts[:, None] * (cmean - mean) ** 2).sum(axis=0)
    return int(bad.sum()), float((m2 / n).mean()), mean * n


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
    plus the cumulative decrement of their cluster (see :func:`hamerly_step`).

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
def _assign(XT, centers, c64, R, A, labels, key, half_sep, want_sums, psums, pcounts, pchanged, c_lo, c_hi):  # pragma: no cover  # fmt: skip
    """:func:`assign` on chunks [c_lo, c_hi), with per-chunk sums, counts and changes."""
    n = XT.shape[1]
    k = centers.shape[0]
    zero = np.zeros(k)
    with_key = key.size > 0
    b1, b2, dist = np.empty((3, BLOCK), dtype=XT.dtype)
    bk = np.empty(BLOCK, dtype=np.int32)
    kb = np.empty(BLOCK, dtype=np.float32)
    sep = np.empty(BLOCK)
    dec = np.empty(BLOCK)
    for c in range(c_lo, c_hi):
        for start in range(c * CHUNK, min(n, (c + 1) * CHUNK), BLOCK):
            m = min(n, start + BLOCK) - start
            _nearest_two(XT, start, m, centers, c64, R, A, b1, b2, bk, dist)
            changed = 0
            for q in range(m):
                changed += labels[start + q] != bk[q]
                labels[start + q] = bk[q]
            pchanged[c] += changed
            if with_key:
                _new_keys(b1, b2, bk, m, half_sep, zero, R, A, kb, sep, dec)
                for q in range(m):  # (a plain loop: writing through a slice is not vectorised)
                    key[start + q] = kb[q]
            if want_sums:
                _add_sums(XT, start, m, bk, psums[c], pcounts[c])


def assign(XT, centers, c64, R, A, labels, key, half_sep, want_sums):
    """A full Lloyd E-step (and the M-step sums): the nearest centre of every point.

    Writes ``labels`` in place and, when ``key`` is not empty, every point's Hamerly key with the
    cumulative decrements at zero. Returns (sums (K, D), counts (K,), n_changed); sums and counts
    stay zero unless ``want_sums``.
    """
    d, n = XT.shape
    k = centers.shape[0]
    n_chunks = _n_chunks(n)
    psums = np.zeros((n_chunks, k, d))
    pcounts = np.zeros((n_chunks, k), dtype=np.int64)
    pchanged = np.zeros(n_chunks, dtype=np.int64)
    parallel_for(_assign, n_chunks, XT, centers, c64, R, A, labels, key, half_sep,
                 bool(want_sums), psums, pcounts, pchanged)  # fmt: skip
    return psums.sum(axis=0), pcounts.sum(axis=0), int(pchanged.sum())


@kernel(nogil=True)
def _hamerly_step(XT, centers, c64, R, A, labels, key, decrement, half_sep, dsums, dcounts, pchanged, pinertia, c_lo, c_hi):  # pragma: no cover  # fmt: skip
    """:func:`hamerly_step` on chunks [c_lo, c_hi), with per-chunk changes (and inertia, when
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
            if with_inertia:  # as :func:`inertia`, with the labels just updated
                _add_sqdist(XT, start, m, c64, labels, sep, acc)
        if with_inertia:
            total = 0.0
            for q in range(BLOCK):
                total += acc[q]
            pinertia[c] = total


def hamerly_step(XT, centers, c64, R, A, labels, key, decrement, half_sep, want_inertia=False):
    """One exact Lloyd E-step with Hamerly's (2010) bounds, kept as one number per point.

    Hamerly keeps, per point, an upper bound u on the distance to its centre a and a lower bound
    l on the distance to any other; the label cannot change while u <= max(l, s_a), s_a being
    half the distance from centre a to the nearest other centre. Here each point keeps only the
    slack ``max(l, s_a) - u`` at the time it was last computed, plus the cumulative decrement of
    its cluster then: ``key = slack + decrement[a]``. When the centres move, the slack of a
    cluster-a point shrinks by at most a's shift plus the larger of the other centres' largest
    shift and the drop of s_a, which the caller adds to ``decrement[a]``. A point can change
    label only if ``key < decrement[a]``: the first pass over a block reads a label and a key per
    point. A block where many points fail is recomputed whole, in place (which refreshes every
    bound in it); otherwise the failing points are gathered and get all K distances and a new
    key. Returns the change in per-cluster sums and counts, the number of points that moved and,
    with ``want_inertia``, the inertia under the updated labels (as :func:`inertia`, in the same
    pass; else None).
    """
    d, n = XT.shape
    k = centers.shape[0]
    n_chunks = _n_chunks(n)
    dsums = np.zeros((n_chunks, k, d))
    dcounts = np.zeros((n_chunks, k), dtype=np.int64)
    pchanged = np.zeros(n_chunks, dtype=np.int64)
    pinertia = np.zeros(n_chunks if want_inertia else 0)
    parallel_for(_hamerly_step, n_chunks, XT, centers, c64, R, A, labels, key, decrement,
                 half_sep, dsums, dcounts, pchanged, pinertia, tasks_per_thread=4)  # fmt: skip
    inertia = float(pinertia.sum()) if want_inertia else None
    return dsums.sum(axis=0), dcounts.sum(axis=0), int(pchanged.sum()), inertia


@kernel(nogil=True)
def _sqdist_to_assigned(XT, centers, labels, out, c_lo, c_hi):  # pragma: no cover - compiled
    d, n = XT.shape
    for c in range(c_lo, c_hi):
        stop = min(n, (c + 1) * CHUNK)
        for f in range(d):
            for i in range(c * CHUNK, stop):
                t = np.float64(XT[f, i]) - centers[labels[i], f]
                out[i] += t * t


def sqdist_to_assigned(XT: np.ndarray, centers: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Squared distance (float64) of every point to the centre it is assigned to."""
    out = np.zeros(XT.shape[1])
    parallel_for(_sqdist_to_assigned, _n_chunks(XT.shape[1]), XT, centers, labels, out)
    return out


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
def _inertia(XT, centers, labels, partial, c_lo, c_hi):  # pragma: no cover - compiled
    n = XT.shape[1]
    acc = np.zeros(BLOCK)
    cf = np.empty(BLOCK)
    for c in range(c_lo, c_hi):
        for q in range(BLOCK):
            acc[q] = 0.0
        for start in range(c * CHUNK, min(n, (c + 1) * CHUNK), BLOCK):
            _add_sqdist(XT, start, min(n, start + BLOCK) - start, centers, labels, cf, acc)
        total = 0.0
        for q in range(BLOCK):
            total += acc[q]
        partial[c] = total


def inertia(XT: np.ndarray, centers: np.ndarray, labels: np.ndarray) -> float:
    """Sum of squared distances (float64) of the points to their assigned centres.

    Each point's centre coordinate is looked up by one blend per cluster rather than gathered,
    and the sums are kept per lane, so every loop compiles to SIMD (and the result does not
    depend on the number of threads)."""
    partial = np.zeros(_n_chunks(XT.shape[1]))
    parallel_for(_inertia, len(partial), XT, centers, labels, partial)
    return float(partial.sum())


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


def min_sqdist_update(
    XT: np.ndarray, point: np.ndarray, closest: np.ndarray, out: np.ndarray
) -> float:
    """out = min(closest, |x - point|^2) in float64; returns out.sum(). Used by k-means++."""
    partial = np.zeros(_n_chunks(XT.shape[1]))
    parallel_for(_min_sqdist_update, len(partial), XT, point, closest, out, partial)
    return float(partial.sum())
