"""Mean-shift clustering (Comaniciu & Meer 2002); images: :mod:`seglab.cluster.meanshift_image`.

The lecture's algorithm: put a window on a point, move the window to the (kernel-weighted) mean of
the data inside it, repeat until it stops moving. The window climbs the density of the data to a
*mode*; the points whose windows reach the same mode form its *attraction basin*, a cluster.
The only parameter is the window size, the bandwidth.

Kernels (the weight of a data point at distance r from the window centre, r in bandwidths):

============  =====================  ==========================================================
kernel        weight                 window
============  =====================  ==========================================================
flat          1                      r <= 1 (scikit-learn's and the lecture's "window")
epanechnikov  1 - r^2                r <= 1
gaussian      exp(-r^2 / 2)          r <= 3 (truncated where the weight is 1.1 % of the peak)
============  =====================  ==========================================================

Every point is iterated until its shift is below ``tol`` bandwidths: each reported mode is a fixed
point of its kernel (the weighted mean of the data in its window is the mode itself, to ``tol``);
the flat kernel reaches it exactly, since its window stops changing. Nothing is approximated:
the speed comes from looking only at the data near the window (a cell grid for generic data, the
pixel grid for images) and from stopping each point as soon as it has converged.
"""

from __future__ import annotations

import warnings
from typing import Any, ClassVar

import numpy as np

from .._checks import check_positive_int
from .._constraints import Interval, Options, validate
from ._estimator import EstimatorMixin, check_array, check_features
from ._meanshift_common import EPANECHNIKOV, FLAT, GAUSSIAN

#: EDISON's threshold for joining neighbouring filtered pixels (feature units, every channel).
CONNECT = 1.0

KERNELS = {"flat": FLAT, "epanechnikov": EPANECHNIKOV, "gaussian": GAUSSIAN}
SUPPORT = {"flat": 1.0, "epanechnikov": 1.0, "gaussian": 3.0}
_GRID_MAX_DIM = 6  # 3^D neighbour cells: beyond this, every seed scans every point


def _kdtree():
    """scipy's k-d tree, imported when a neighbour search is made (a tenth of a second)."""
    from scipy.spatial import cKDTree

    return cKDTree


def _check_kernel(kernel: Any) -> str:
    if kernel not in KERNELS:
        raise ValueError(f"unknown kernel {kernel!r}; expected one of {', '.join(KERNELS)}")
    return kernel


def _check_positive(name: str, value: Any) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a positive number, got {value!r}") from None
    if not np.isfinite(v) or v <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return v


def _check_points(X: Any, name: str = "X") -> np.ndarray:
    """X as a C-contiguous float64 (N, D) array of finite numbers (scikit-learn's wording)."""
    return np.ascontiguousarray(check_array(X, name, "MeanShift"), dtype=np.float64)


def estimate_bandwidth(
    X: Any, quantile: float = 0.3, n_samples: int | None = None, random_state: int | None = 0
) -> float:
    """A bandwidth from the data: the mean distance of each point to its k-th nearest neighbour,
    k = quantile * n (itself included), as scikit-learn's ``estimate_bandwidth``."""
    X = _check_points(X)
    if not 0.0 < quantile <= 1.0:
        raise ValueError(f"quantile must be in (0, 1], got {quantile}")
    if n_samples is not None and n_samples < X.shape[0]:
        X = X[np.random.default_rng(random_state).permutation(X.shape[0])[:n_samples]]
    if X.shape[0] < 2:
        raise ValueError(
            f"n_samples={X.shape[0]}: a bandwidth is estimated from distances between samples; "
            "give at least 2 samples, or bandwidth= explicitly"
        )
    k = max(1, int(X.shape[0] * quantile))
    dist, _ = _kdtree()(X).query(X, k=k)
    dist = dist.reshape(X.shape[0], -1)
    bw = float(dist[:, -1].mean())
    if bw <= 0:
        raise ValueError(
            "estimated bandwidth is 0 (too many identical points); give bandwidth= explicitly"
        )
    return bw


def bin_seeds(X: np.ndarray, bin_size: float, min_bin_freq: int = 1) -> np.ndarray:
    """Seeds on a grid of side ``bin_size``: the occupied bins with at least ``min_bin_freq``
    points (scikit-learn's ``bin_seeding``), far fewer seeds than points."""
    bins, counts = np.unique(np.round(X / bin_size), axis=0, return_counts=True)
    seeds = bins[counts >= min_bin_freq] * bin_size
    if len(seeds) == 0:
        raise ValueError(
            f"no bin holds min_bin_freq={min_bin_freq} points; lower it or the bandwidth"
        )
    return seeds


def shift_to_modes(
    Xn: np.ndarray, seeds: np.ndarray, kernel: str, max_iter: int, tol: float, brute: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run every seed to convergence on bandwidth-normalised data; returns (points, n_iter,
    number of data points in the final window)."""
    s = seeds.shape[0]
    out = np.empty((s, Xn.shape[1]))
    n_iter = np.zeros(s, dtype=np.int64)
    counts = np.zeros(s, dtype=np.int64)
    from . import _meanshift_kernels as MS  # numba: imported when points are shifted

    kid, support = KERNELS[kernel], SUPPORT[kernel]
    if brute or Xn.shape[1] > _GRID_MAX_DIM:
        MS.shift_points_brute(Xn, seeds, kid, support, max_iter, tol, out, n_iter, counts)
        return out, n_iter, counts
    cell = np.floor(Xn / support).astype(np.int64)
    order = np.lexsort(cell.T[::-1])
    cells, starts = np.unique(cell[order], axis=0, return_index=True)
    offsets = np.append(starts, len(order)).astype(np.int64)
    MS.shift_points(
        Xn, seeds, order, offsets, cells, kid, support, max_iter, tol, out, n_iter, counts
    )
    return out, n_iter, counts


def suppress_near_modes(points: np.ndarray, counts: np.ndarray, radius: float) -> np.ndarray:
    """Keep one mode per neighbourhood: visit the modes from the most populated window down and
    drop every other mode within ``radius`` of a kept one (scikit-learn's rule)."""
    keys = np.column_stack([counts, points])
    order = np.lexsort(keys.T[::-1])[::-1]  # by count, then coordinates, descending
    pts = points[order]
    tree = _kdtree()(pts)
    keep = np.ones(len(pts), dtype=bool)
    for i in range(len(pts)):
        if keep[i]:
            nbrs = tree.query_ball_point(pts[i], radius)
            keep[nbrs] = False
            keep[i] = True
    return pts[keep]


class MeanShift(EstimatorMixin):
    """Mean-shift clustering of an (N, D) array, with scikit-learn's parameters and attributes.

    Parameters
    ----------
    bandwidth : float, optional
        window radius; None estimates it with :func:`estimate_bandwidth`.
    kernel : {"flat", "epanechnikov", "gaussian"}
        "flat" (default), "epanechnikov" or "gaussian" (see the module docstring).
    seeds : ndarray of shape (S, D), optional
        (S, D) starting points; default every data point.
    bin_seeding : bool
        start from the occupied cells of a grid of side ``bandwidth`` instead.
    min_bin_freq : int
        with bin_seeding, the fewest points a cell needs to seed.
    cluster_all : bool
        label every point by its nearest mode; if False, points farther than the
        bandwidth from every mode get -1.
    max_iter : int
        iteration limit per seed; tol: stop when the shift is below ``tol`` bandwidths.
    merge_distance : float
        modes closer than this, in bandwidths, are one (default 1, scikit-learn's rule). The
        same word as in :class:`~seglab.cluster.MeanShiftSegmenter`, whose modes are compared in
        colour only, so its bandwidth there is the range bandwidth (default 0.5, EDISON's).

    Attributes
    ----------
    cluster_centers_ : ndarray of shape (M, D)
        The modes, most populated first.
    labels_ : ndarray of shape (N,)
        Each sample's mode.
    n_iter_ : int
        The most iterations any seed took.
    """

    def __init__(
        self,
        bandwidth: float | None = None,
        *,
        kernel: str = "flat",
        seeds: np.ndarray | None = None,
        bin_seeding: bool = False,
        min_bin_freq: int = 1,
        cluster_all: bool = True,
        max_iter: int = 300,
        tol: float = 1e-3,
        merge_distance: float = 1.0,
    ) -> None:
        self.bandwidth = bandwidth
        self.kernel = kernel
        self.seeds = seeds
        self.bin_seeding = bin_seeding
        self.min_bin_freq = min_bin_freq
        self.cluster_all = cluster_all
        self.max_iter = max_iter
        self.tol = tol
        self.merge_distance = merge_distance

    #: What each parameter accepts (seglab._constraints, as scikit-learn's).
    _parameter_constraints: ClassVar[dict] = {
        "bandwidth": (Interval(float, 0, None, "neither"), None),
        "kernel": Options(tuple(KERNELS)),
        "seeds": (np.ndarray, list, None),
        "bin_seeding": bool,
        "min_bin_freq": Interval(int, 1),
        "cluster_all": bool,
        "max_iter": Interval(int, 1),
        "tol": Interval(float, 0, None, "neither"),
        "merge_distance": Interval(float, 0, None, "neither"),
    }

    def fit(self, X: Any, y: Any = None) -> MeanShift:
        """Find the modes of X (N, D) and each sample's mode; ``y`` is ignored."""
        validate(self.get_params(deep=False), self._parameter_constraints)
        X = _check_points(X)
        kernel, max_iter, tol = self.kernel, int(self.max_iter), float(self.tol)
        merge = float(self.merge_distance)
        bw = estimate_bandwidth(X) if self.bandwidth is None else float(self.bandwidth)
        if self.seeds is not None:
            seeds = _check_points(self.seeds)
            if seeds.shape[1] != X.shape[1]:
                raise ValueError(f"seeds have {seeds.shape[1]} features; X has {X.shape[1]}")
        elif self.bin_seeding:
            seeds = bin_seeds(X, bw, check_positive_int(self.min_bin_freq, "min_bin_freq", 1))
        else:
            seeds = X
        points, n_iter, counts = shift_to_modes(X / bw, seeds / bw, kernel, max_iter, tol)
        found = counts > 0
        if not found.any():
            raise ValueError("no seed has any data point within its window; increase the bandwidth")
        modes = suppress_near_modes(points[found], counts[found], merge) * bw
        if len(modes) == X.shape[0] and X.shape[0] > 1:
            warnings.warn(
                f"every point is its own mode: bandwidth {bw:g} is smaller than the spacing of the "
                "data; increase it (estimate_bandwidth gives a starting value)",
                stacklevel=2,
            )
        self.bandwidth_ = bw
        self.cluster_centers_ = modes
        self.n_iter_ = int(n_iter.max())
        self.labels_ = self._assign(X)
        self.n_features_in_ = X.shape[1]
        return self

    def _assign(self, X: np.ndarray) -> np.ndarray:
        dist, idx = _kdtree()(self.cluster_centers_).query(X)
        labels = idx.astype(np.int64)
        if not self.cluster_all:
            labels[dist > self.bandwidth_] = -1
        return labels

    def predict(self, X: Any) -> np.ndarray:
        """Label of the nearest mode for each row of X."""
        self._check_fitted()
        X = _check_points(X)
        check_features(self, X)
        return self._assign(X)

    def fit_predict(self, X: Any, y: Any = None) -> np.ndarray:
        """:meth:`fit`, then the labels of X."""
        return self.fit(X).labels_


def mean_shift_paths(
    X: Any,
    seeds: Any,
    bandwidth: float,
    kernel: str = "flat",
    max_iter: int = 300,
    tol: float = 1e-3,
) -> list[np.ndarray]:
    """The trajectory of each seed (a list of (T, D) arrays), for pictures and teaching.

    Plain numpy, every point against every seed: meant for a few hundred points.
    """
    X = _check_points(X) / _check_positive("bandwidth", bandwidth)
    kid, support = KERNELS[_check_kernel(kernel)], SUPPORT[kernel]
    paths = []
    for s in _check_points(seeds) / bandwidth:
        path = [s]
        for _ in range(max_iter):
            r2 = ((X - path[-1]) ** 2).sum(axis=1)
            inside = r2 <= support**2
            if not inside.any():
                break
            w = {
                FLAT: np.ones_like(r2),
                EPANECHNIKOV: 1 - r2,
                GAUSSIAN: np.exp(-0.5 * r2),
            }[kid][inside]
            new = (w[:, None] * X[inside]).sum(axis=0) / w.sum()
            path.append(new)
            if ((new - path[-2]) ** 2).sum() <= tol**2:
                break
        paths.append(np.array(path) * bandwidth)
    return paths
