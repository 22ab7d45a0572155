"""Compiled k-means kernels (numba). Each one streams over the points once, in chunks processed in
parallel, so no N x K distance matrix is ever held: memory is O(N + chunks * K * D).

Distances are computed as sum((x - c)^2) in float64, not with the |x|^2 - 2 x.c + |c|^2 shortcut,
so they are exact to rounding even for points far from the origin (pixel positions).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

CHUNK = 4096


@njit(cache=True, inline="always")
def _round_up(x):  # pragma: no cover - compiled
    """float32 >= x: bounds are stored in float32 (half the memory traffic) but stay bounds.

    Rounding to nearest moves a value by at most 2**-24 of itself, so widening by 2**-22 first
    keeps the direction (and, unlike nextafter, compiles to SIMD)."""
    return np.float32(x + abs(x) * 2.384185791015625e-07)


@njit(cache=True, inline="always")
def _round_down(x):  # pragma: no cover - compiled
    """float32 <= x (see _round_up)."""
    return np.float32(x - abs(x) * 2.384185791015625e-07)


@njit(cache=True, inline="always")
def _nearest_two(X, rows, m, centers, buf, b1, b2, bk):  # pragma: no cover - compiled
    """Nearest and second-nearest centre (squared distances) of the points X[rows[:m]].

    The rows are first copied into a feature-major buffer so that the distance loops run over
    points, contiguous in memory, and compile to SIMD instructions; the running minima are
    updated without branches.
    """
    d = X.shape[1]
    k = centers.shape[0]
    for q in range(m):
        i = rows[q]
        for f in range(d):
            buf[f, q] = X[i, f]
        b1[q] = np.inf
        b2[q] = np.inf
        bk[q] = 0
    dist = np.empty(m)
    for j in range(k):
        for q in range(m):
            dist[q] = 0.0
        for f in range(d):
            c = centers[j, f]
            for q in range(m):
                t = buf[f, q] - c
                dist[q] += t * t
        for q in range(m):
            dq = dist[q]
            b2[q] = min(b2[q], max(dq, b1[q]))
            closer = dq < b1[q]
            bk[q] = j if closer else bk[q]
            b1[q] = dq if closer else b1[q]


@njit(cache=True, parallel=True)
def assign(X, centers, labels, want_sums):  # pragma: no cover - compiled
    """One Lloyd E-step (and the M-step sums): nearest centre for every point.

    Writes ``labels`` in place. Returns (sums (K, D), counts (K,), inertia, n_changed); sums and
    counts stay zero unless ``want_sums``.
    """
    n, d = X.shape
    k = centers.shape[0]
    n_chunks = (n + CHUNK - 1) // CHUNK
    psums = np.zeros((n_chunks, k, d))
    pcounts = np.zeros((n_chunks, k), dtype=np.int64)
    pinertia = np.zeros(n_chunks)
    pchanged = np.zeros(n_chunks, dtype=np.int64)
    for c in prange(n_chunks):
        start = c * CHUNK
        m = min(n, start + CHUNK) - start
        rows = np.arange(start, start + m)
        buf = np.empty((d, m))
        b1 = np.empty(m)
        b2 = np.empty(m)
        bk = np.empty(m, dtype=np.int32)
        _nearest_two(X, rows, m, centers, buf, b1, b2, bk)
        acc = 0.0
        for q in range(m):
            i = start + q
            j = bk[q]
            if labels[i] != j:
                pchanged[c] += 1
                labels[i] = j
            acc += b1[q]
            if want_sums:
                pcounts[c, j] += 1
                for f in range(d):
                    psums[c, j, f] += buf[f, q]
        pinertia[c] = acc
    return psums.sum(axis=0), pcounts.sum(axis=0), pinertia.sum(), pchanged.sum()


@njit(cache=True, parallel=True)
def sqdist_to_assigned(X, centers, labels):  # pragma: no cover - compiled
    """Squared distance of every point to the centre it is assigned to."""
    n, d = X.shape
    out = np.empty(n)
    for i in prange(n):
        dist = 0.0
        for f in range(d):
            t = np.float64(X[i, f]) - centers[labels[i], f]
            dist += t * t
        out[i] = dist
    return out


@njit(cache=True, parallel=True)
def min_sqdist_update(X, point, closest, out):  # pragma: no cover - compiled
    """out = min(closest, |X - point|^2); returns out.sum(). Used by k-means++."""
    n, d = X.shape
    n_chunks = (n + CHUNK - 1) // CHUNK
    partial = np.zeros(n_chunks)
    for c in prange(n_chunks):
        start = c * CHUNK
        stop = min(n, start + CHUNK)
        acc = 0.0
        for i in range(start, stop):
            dist = 0.0
            for f in range(d):
                t = np.float64(X[i, f]) - point[f]
                dist += t * t
            v = min(dist, closest[i])
            out[i] = v
            acc += v
        partial[c] = acc
    return partial.sum()


@njit(cache=True, parallel=True)
def hamerly_init(X, centers, labels, key, half_sep):  # pragma: no cover - compiled
    """Full assignment that also sets every point's bound key (see :func:`hamerly_step`), with
    the cumulative decrements at zero. Returns (sums, counts)."""
    n, d = X.shape
    k = centers.shape[0]
    n_chunks = (n + CHUNK - 1) // CHUNK
    psums = np.zeros((n_chunks, k, d))
    pcounts = np.zeros((n_chunks, k), dtype=np.int64)
    for c in prange(n_chunks):
        start = c * CHUNK
        m = min(n, start + CHUNK) - start
        rows = np.arange(start, start + m)
        buf = np.empty((d, m))
        b1 = np.empty(m)
        b2 = np.empty(m)
        bk = np.empty(m, dtype=np.int32)
        _nearest_two(X, rows, m, centers, buf, b1, b2, bk)
        for q in range(m):
            i = start + q
            j = bk[q]
            labels[i] = j
            key[i] = _round_down(max(np.sqrt(b2[q]), half_sep[j]) - np.sqrt(b1[q]))
            pcounts[c, j] += 1
            for f in range(d):
                psums[c, j, f] += buf[f, q]
    return psums.sum(axis=0), pcounts.sum(axis=0)


@njit(cache=True, parallel=True)
def hamerly_step(X, centers, labels, key, decrement, half_sep):  # pragma: no cover
    """One exact Lloyd E-step with Hamerly's (2010) bounds, kept as one number per point.

    Hamerly keeps, per point, an upper bound u on the distance to its centre a and a lower bound
    l on the distance to any other; the label cannot change while u <= max(l, s_a), s_a being
    half the distance from centre a to the nearest other centre. Here each point keeps only the
    slack ``max(l, s_a) - u`` at the time it was last computed, plus the cumulative decrement of
    its cluster then: ``key = slack + decrement[a]``. When the centres move, the slack of a
    cluster-a point shrinks by at most a's shift plus the larger of the other centres' largest
    shift and the drop of s_a, which the caller adds to ``decrement[a]``. A point can change
    label only if ``key < decrement[a]``: the first pass reads a label and a key per point and
    writes nothing; the few points that fail get all K distances (vectorised) and a new key.
    Returns the change in per-cluster sums and counts, and the number of points that moved.
    """
    n, d = X.shape
    k = centers.shape[0]
    n_chunks = (n + CHUNK - 1) // CHUNK
    dsums = np.zeros((n_chunks, k, d))
    dcounts = np.zeros((n_chunks, k), dtype=np.int64)
    pchanged = np.zeros(n_chunks, dtype=np.int64)
    for c in prange(n_chunks):
        start = c * CHUNK
        stop = min(n, start + CHUNK)
        todo = np.empty(stop - start, dtype=np.int32)
        m = 0
        for i in range(start, stop):
            todo[m] = i
            m += key[i] < decrement[labels[i]]
        if m == 0:
            continue
        buf = np.empty((d, m))
        b1 = np.empty(m)
        b2 = np.empty(m)
        bk = np.empty(m, dtype=np.int32)
        _nearest_two(X, todo, m, centers, buf, b1, b2, bk)
        for q in range(m):
            i = todo[q]
            a = labels[i]
            j = bk[q]
            slack = max(np.sqrt(b2[q]), half_sep[j]) - np.sqrt(b1[q])
            key[i] = _round_down(slack + decrement[j])
            if j != a:
                pchanged[c] += 1
                labels[i] = j
                dcounts[c, a] -= 1
                dcounts[c, j] += 1
                for f in range(d):
                    x = buf[f, q]
                    dsums[c, a, f] -= x
                    dsums[c, j, f] += x
    return dsums.sum(axis=0), dcounts.sum(axis=0), pchanged.sum()


@njit(cache=True, parallel=True)
def inertia(X, centers, labels):  # pragma: no cover - compiled
    """Sum of squared distances of the points to their assigned centres."""
    n, d = X.shape
    n_chunks = (n + CHUNK - 1) // CHUNK
    partial = np.zeros(n_chunks)
    for c in prange(n_chunks):
        acc = 0.0
        for i in range(c * CHUNK, min(n, (c + 1) * CHUNK)):
            a = labels[i]
            for f in range(d):
                t = np.float64(X[i, f]) - centers[a, f]
                acc += t * t
        partial[c] = acc
    return partial.sum()


@njit(cache=True, parallel=True)
def mean_variance(X):  # pragma: no cover - compiled
    """Mean over features of the per-feature variance (two passes, float64 accumulators)."""
    n, d = X.shape
    n_chunks = (n + CHUNK - 1) // CHUNK
    psum = np.zeros((n_chunks, d))
    for c in prange(n_chunks):
        for i in range(c * CHUNK, min(n, (c + 1) * CHUNK)):
            for f in range(d):
                psum[c, f] += X[i, f]
    mean = psum.sum(axis=0) / n
    psq = np.zeros((n_chunks, d))
    for c in prange(n_chunks):
        for i in range(c * CHUNK, min(n, (c + 1) * CHUNK)):
            for f in range(d):
                t = np.float64(X[i, f]) - mean[f]
                psq[c, f] += t * t
    return (psq.sum(axis=0) / n).mean()
