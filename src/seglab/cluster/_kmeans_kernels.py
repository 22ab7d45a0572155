"""The k-means kernels: compiled C (``_ckernels.c``, built with the package) or, without it,
numba (``_kmeans_numba.py``); :mod:`._kernel_backend` picks. Both run the same loops with the
same arithmetic, so they give the same labels, sums and inertia (a test compares them).

Layout. The kernels read the features transposed, as a (D, N) array made once per fit by
:func:`prepare` (which also checks them and computes their variance in the same pass): each
feature is then one contiguous row, so the distance loops over a block of ``BLOCK`` points run
over contiguous memory, compile to SIMD instructions and need no copy. Work is split over threads
in chunks of ``CHUNK`` points (:func:`seglab._threads.parallel_for`: each kernel is serial and
runs a range of chunks without the GIL); no N x K distance matrix is ever held.

Arithmetic. Distances are sum((x - c)^2) in the data's dtype, never |x|^2 - 2x.c + |c|^2 (which
cancels for points far from the origin, such as pixel positions). For float32 data the two
smallest distances of each point come with a rigorous error bound ``err(d2) = R d2 + A sqrt(d2)
+ A^2`` (see :func:`error_terms`): a point whose two nearest centres are closer than that is
recomputed in float64, so every label is the one exact arithmetic gives (up to float64 ties), and
the bounds kept for Hamerly's test are widened by the same amount, so they stay bounds.
"""

from __future__ import annotations

import numpy as np

from .._threads import parallel_for
from ._kernel_backend import kernels

CHUNK = 16384  # points per parallel task (as CHUNK in _ckernels.c)
BLOCK = 512  # points per vectorised block: its rows and running minima stay in L1

_EPS32 = 2.0**-24


def _impl():
    return kernels("_kmeans_numba")


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


def _n_chunks(n: int) -> int:
    return (n + CHUNK - 1) // CHUNK


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
    parallel_for(_impl()._prepare, n_chunks, X, XT, shift, s, ss, bad)
    counts = np.minimum(n, (np.arange(n_chunks) + 1) * CHUNK) - np.arange(n_chunks) * CHUNK
    cmean = shift + s / counts[:, None]  # per-chunk means and sums of squared deviations
    cm2 = ss - s * s / counts[:, None]
    mean = (cmean * counts[:, None]).sum(axis=0) / n
    m2 = cm2.sum(axis=0) + (counts[:, None] * (cmean - mean) ** 2).sum(axis=0)
    return int(bad.sum()), float((m2 / n).mean()), mean * n


def assign(XT, centers, c64, R, A, labels, want_sums, want_inertia=False):
    """A full Lloyd E-step (and the M-step sums): the nearest centre of every point.

    Writes ``labels`` in place. Returns (sums (K, D), counts (K,), n_changed, inertia); sums
    and counts stay zero unless ``want_sums``; the inertia under the new labels (the bits
    :func:`hamerly_step` gives, in the same pass) is None unless ``want_inertia``.
    """
    d, n = XT.shape
    k = centers.shape[0]
    n_chunks = _n_chunks(n)
    psums = np.zeros((n_chunks, k, d))
    pcounts = np.zeros((n_chunks, k), dtype=np.int64)
    pchanged = np.zeros(n_chunks, dtype=np.int64)
    pinertia = np.zeros(n_chunks if want_inertia else 0)
    parallel_for(_impl()._assign, n_chunks, XT, centers, c64, R, A, labels, bool(want_sums),
                 psums, pcounts, pchanged, pinertia)  # fmt: skip
    inertia = float(pinertia.sum()) if want_inertia else None
    return psums.sum(axis=0), pcounts.sum(axis=0), int(pchanged.sum()), inertia


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
    point. numba's kernel recomputes a block where many points fail whole, in place (which
    refreshes every bound in it), and otherwise gathers the failing points; the C kernel
    recomputes, in place, the runs of 16-point vectors that hold a failing point (on AVX-512,
    with 2 <= K <= 16 and D <= 8, each such vector in registers: ``_ckernels_avx512.h``), and
    tests the bounds one block ahead so that those vectors' rows are fetched in time. Either way
    those points get all K distances and a new key. Returns the change in per-cluster sums and counts, the number of points that moved and,
    with ``want_inertia``, the inertia under the updated labels (summed per lane, each
    chunk apart, in the same pass; else None).
    """
    d, n = XT.shape
    k = centers.shape[0]
    n_chunks = _n_chunks(n)
    dsums = np.zeros((n_chunks, k, d))
    dcounts = np.zeros((n_chunks, k), dtype=np.int64)
    pchanged = np.zeros(n_chunks, dtype=np.int64)
    pinertia = np.zeros(n_chunks if want_inertia else 0)
    parallel_for(_impl()._hamerly_step, n_chunks, XT, centers, c64, R, A, labels, key, decrement,
                 half_sep, dsums, dcounts, pchanged, pinertia, tasks_per_thread=4)  # fmt: skip
    inertia = float(pinertia.sum()) if want_inertia else None
    return dsums.sum(axis=0), dcounts.sum(axis=0), int(pchanged.sum()), inertia


def sqdist_to_assigned(XT: np.ndarray, centers: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Squared distance (float64) of every point to the centre it is assigned to."""
    out = np.zeros(XT.shape[1])
    parallel_for(_impl()._sqdist_to_assigned, _n_chunks(XT.shape[1]), XT, centers, labels, out)
    return out


def min_sqdist_update(
    XT: np.ndarray, point: np.ndarray, closest: np.ndarray, out: np.ndarray
) -> float:
    """out = min(closest, |x - point|^2) in float64; returns out.sum(). Used by k-means++."""
    partial = np.zeros(_n_chunks(XT.shape[1]))
    parallel_for(_impl()._min_sqdist_update, len(partial), XT, point, closest, out, partial)
    return float(partial.sum())
