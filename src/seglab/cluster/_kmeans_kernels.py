"""Compiled k-means kernels (numba). Each one streams over the points once, in chunks processed in
parallel, so no N x K distance matrix is ever held: memory is O(N + chunks * K * D).

Distances are computed as sum((x - c)^2) in float64, not with the |x|^2 - 2 x.c + |c|^2 shortcut,
so they are exact to rounding even for points far from the origin (pixel positions).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

CHUNK = 4096


@njit(cache=True, parallel=True, fastmath=False)
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
        stop = min(n, start + CHUNK)
        for i in range(start, stop):
            best = np.inf
            bk = 0
            for j in range(k):
                dist = 0.0
                for f in range(d):
                    t = np.float64(X[i, f]) - centers[j, f]
                    dist += t * t
                if dist < best:
                    best = dist
                    bk = j
            if labels[i] != bk:
                pchanged[c] += 1
                labels[i] = bk
            pinertia[c] += best
            if want_sums:
                pcounts[c, bk] += 1
                for f in range(d):
                    psums[c, bk, f] += X[i, f]
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
def hamerly_init(X, centers, labels, upper, lower):  # pragma: no cover - compiled
    """Full assignment that also sets Hamerly's bounds: upper = distance to the nearest centre,
    lower = distance to the second nearest. Returns (sums, counts)."""
    n, d = X.shape
    k = centers.shape[0]
    n_chunks = (n + CHUNK - 1) // CHUNK
    psums = np.zeros((n_chunks, k, d))
    pcounts = np.zeros((n_chunks, k), dtype=np.int64)
    for c in prange(n_chunks):
        start = c * CHUNK
        stop = min(n, start + CHUNK)
        for i in range(start, stop):
            b1 = np.inf
            b2 = np.inf
            bk = 0
            for j in range(k):
                dist = 0.0
                for f in range(d):
                    t = np.float64(X[i, f]) - centers[j, f]
                    dist += t * t
                if dist < b1:
                    b2 = b1
                    b1 = dist
                    bk = j
                elif dist < b2:
                    b2 = dist
            labels[i] = bk
            upper[i] = np.sqrt(b1)
            lower[i] = np.sqrt(b2)
            pcounts[c, bk] += 1
            for f in range(d):
                psums[c, bk, f] += X[i, f]
    return psums.sum(axis=0), pcounts.sum(axis=0)


@njit(cache=True, parallel=True)
def hamerly_step(X, centers, labels, upper, lower, shift, half_sep):  # pragma: no cover
    """One exact Lloyd E-step with Hamerly's (2010) bounds.

    First moves the bounds by the last centre shifts (upper grows by the own centre's shift,
    lower shrinks by the largest shift of any other centre), then recomputes distances only for
    points whose upper bound exceeds max(lower, half the distance from their centre to the next).
    Returns the change in per-cluster sums and counts, and the number of points that moved.
    """
    n, d = X.shape
    k = centers.shape[0]
    # largest and second largest shift, to shrink each lower bound by the largest other shift
    m1 = -1.0
    m2 = -1.0
    i1 = -1
    for j in range(k):
        if shift[j] > m1:
            m2 = m1
            m1 = shift[j]
            i1 = j
        elif shift[j] > m2:
            m2 = shift[j]
    if m2 < 0.0:
        m2 = 0.0
    n_chunks = (n + CHUNK - 1) // CHUNK
    dsums = np.zeros((n_chunks, k, d))
    dcounts = np.zeros((n_chunks, k), dtype=np.int64)
    pchanged = np.zeros(n_chunks, dtype=np.int64)
    for c in prange(n_chunks):
        start = c * CHUNK
        stop = min(n, start + CHUNK)
        for i in range(start, stop):
            a = labels[i]
            u = upper[i] + shift[a]
            lo = lower[i] - (m2 if a == i1 else m1)
            bound = max(lo, half_sep[a])
            if u > bound:
                # tighten the upper bound to the true distance, then test again
                dist = 0.0
                for f in range(d):
                    t = np.float64(X[i, f]) - centers[a, f]
                    dist += t * t
                u = np.sqrt(dist)
                if u > bound:
                    b1 = np.inf
                    b2 = np.inf
                    bk = 0
                    for j in range(k):
                        dist = 0.0
                        for f in range(d):
                            t = np.float64(X[i, f]) - centers[j, f]
                            dist += t * t
                        if dist < b1:
                            b2 = b1
                            b1 = dist
                            bk = j
                        elif dist < b2:
                            b2 = dist
                    u = np.sqrt(b1)
                    lo = np.sqrt(b2)
                    if bk != a:
                        pchanged[c] += 1
                        labels[i] = bk
                        dcounts[c, a] -= 1
                        dcounts[c, bk] += 1
                        for f in range(d):
                            x = np.float64(X[i, f])
                            dsums[c, a, f] -= x
                            dsums[c, bk, f] += x
            upper[i] = u
            lower[i] = lo
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
