"""K-means clustering, and k-means segmentation of images.

The lecture's algorithm: pick K centres, give every point to its nearest centre, move each centre
to the mean of its points, repeat until nothing moves. It minimises the inertia
``sum_i sum_{x in C_i} |x - c_i|^2`` and converges, but only to a local minimum, hence the restarts
(``n_init``) and the careful k-means++ seeding.

:class:`KMeans` is a scikit-learn estimator (``get_params``, ``clone``, ``Pipeline``,
``GridSearchCV``, sample weights; its ``check_estimator`` passes) and follows its Lloyd iteration
exactly (same
stopping rule: labels unchanged, or total squared centre shift <= ``tol`` times the mean feature
variance). By default it runs Hamerly's (2010) bounds, which return the same labels as plain Lloyd
while skipping the distance computations that cannot change a label: after the first few
iterations most points are settled, which is where the speed comes from.
"""

from __future__ import annotations

import warnings
from typing import Any, ClassVar

import numpy as np

from .._checks import check_positive_int, device_name
from .._constraints import Interval, Options, validate
from ..features import pixel_features, resolve_spatial_weight
from ..image import check_image
from ._estimator import EstimatorMixin, as_generator, check_array, check_features
from ._kmeans_lloyd import (
    _assign,
    _kmeans_plusplus,
    _transpose,
    check_weights,
    kmeans_plusplus,
    lloyd,
    lloyd_torch,
    lloyd_weighted,
)
from .regions import _split_and_merge

__all__ = ["KMeans", "KMeansSegmenter", "kmeans_plusplus"]

_ALGORITHMS = ("auto", "lloyd", "hamerly")


_ALGORITHMS = ("auto", "lloyd", "hamerly")


#: the defaults KMeans and KMeansSegmenter share, stated once (a test keeps them equal)
_SHARED_DEFAULTS: dict[str, Any] = {
    "init": "k-means++",
    "n_init": "auto",
    "max_iter": 300,
    "tol": 1e-4,
    "random_state": None,
    "algorithm": "auto",
    "device": "cpu",
}


class KMeans(EstimatorMixin):
    """K-means clustering of an (N, D) array: a scikit-learn estimator with its parameters,
    attributes and results (same start, same labels, centres and iteration count).

    Parameters
    ----------
    n_clusters : int
        K, the number of clusters.
    init : {"k-means++", "random"} or ndarray of shape (K, D)
        The start: k-means++ seeding (default), K distinct samples, or given centres.
    n_init : int or "auto"
        Number of restarts, the best inertia kept; "auto" is 1 for k-means++ or an array,
        10 for "random" (as scikit-learn).
    max_iter : int
        Iteration limit of each run.
    tol : float
        Relative tolerance: stop when the total squared centre shift is <= tol times the mean
        per-feature variance of X.
    random_state : None, int, numpy RandomState or Generator
        The seeding's randomness.
    algorithm : {"auto", "hamerly", "lloyd"}
        "auto" / "hamerly" (exact, with distance bounds) or "lloyd" (plain iteration, records
        ``inertia_history_``). Both give the same labels.
    device : {"cpu", "cuda", "auto"}
        "cpu" (compiled, multi-threaded) or a GPU through PyTorch.

    Attributes
    ----------
    cluster_centers_ : ndarray of shape (K, D)
        The centres.
    labels_ : ndarray of shape (N,)
        Each sample's cluster.
    inertia_ : float
        Sum of (weighted) squared distances of the samples to their centres: the objective.
    n_iter_ : int
        Iterations of the best run.
    n_features_in_ : int
        D, the number of features seen in ``fit``.
    inertia_history_ : list of float
        Per-iteration inertia of the best run (algorithm="lloyd", sample weights or a GPU).
    """

    def __init__(
        self,
        n_clusters: int = 8,
        *,
        init: str | np.ndarray = _SHARED_DEFAULTS["init"],
        n_init: int | str = _SHARED_DEFAULTS["n_init"],
        max_iter: int = _SHARED_DEFAULTS["max_iter"],
        tol: float = _SHARED_DEFAULTS["tol"],
        random_state: Any = _SHARED_DEFAULTS["random_state"],
        algorithm: str = _SHARED_DEFAULTS["algorithm"],
        device: str = _SHARED_DEFAULTS["device"],
    ) -> None:
        self.n_clusters = n_clusters
        self.init = init
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state
        self.algorithm = algorithm
        self.device = device

    #: What each parameter accepts (seglab._constraints, as scikit-learn's).
    _parameter_constraints: ClassVar[dict] = {
        "n_clusters": Interval(int, 1),
        "init": (Options(("k-means++", "random")), np.ndarray, list),
        "n_init": (Options(("auto",)), Interval(int, 1)),
        "max_iter": Interval(int, 1),
        "tol": Interval(float, 0),
        "algorithm": Options(_ALGORITHMS),
        "device": str,
    }

    def _check_params(self, X: np.ndarray) -> tuple[int, int, str]:
        validate(self.get_params(deep=False), self._parameter_constraints)
        k = int(self.n_clusters)
        if not isinstance(self.init, str):
            init = np.asarray(self.init, dtype=np.float64)
            if init.shape != (k, X.shape[1]):
                raise ValueError(
                    f"init array has shape {init.shape}; expected (n_clusters, n_features) = "
                    f"({k}, {X.shape[1]})"
                )
            if not np.all(np.isfinite(init)):
                raise ValueError("init array contains NaN or infinite values")
        if isinstance(self.n_init, str):
            n_init = 10 if isinstance(self.init, str) and self.init == "random" else 1
        else:
            n_init = int(self.n_init)
        if not isinstance(self.init, str) and n_init > 1:
            warnings.warn("init is an explicit array: running once (n_init=1)", stacklevel=3)
            n_init = 1
        return k, n_init, device_name(self.device)

    def fit(self, X: Any, y: Any = None, sample_weight: Any = None) -> KMeans:
        """Cluster X (N, D); ``y`` is ignored (scikit-learn API). ``sample_weight`` (N,) weighs
        the seeding, the centres and the inertia, as scikit-learn does: an integer weight equals
        that many copies of the row."""
        # _fit's first pass over X (_transpose) refuses NaN and infinity
        X = check_array(X, estimator=type(self).__name__, check_finite=False)
        return self._fit(X, sample_weight)

    def _fit(self, X: np.ndarray, sample_weight: Any = None) -> KMeans:
        """:meth:`fit` on checked data (the segmenter's features are valid by construction)."""
        k, n_init, device = self._check_params(X)
        if k > X.shape[0]:
            raise ValueError(
                f"n_clusters={k} is greater than the number of samples ({X.shape[0]}); "
                "choose n_clusters <= n_samples"
            )
        weight = None if sample_weight is None else check_weights(sample_weight, X.shape[0])
        if weight is not None and np.all(weight == weight[0]):
            weight = None  # equal weights change nothing: the fast path
        rng = as_generator(self.random_state)
        prepared = _transpose(X)
        XT, variance = prepared.XT, prepared.variance
        if weight is not None:
            mean = weight @ X / weight.sum()
            variance = float((weight @ (X - mean) ** 2).sum() / weight.sum() / X.shape[1])
        tol = variance * float(self.tol)
        algorithm = "hamerly" if self.algorithm == "auto" else self.algorithm
        best = None
        for _ in range(n_init):
            if isinstance(self.init, str) and self.init == "k-means++":
                centers = _kmeans_plusplus(X, XT, k, rng, weight)
            elif isinstance(self.init, str):
                p = None if weight is None else weight / weight.sum()
                centers = X[rng.choice(X.shape[0], k, replace=False, p=p)].astype(np.float64)
            else:
                centers = np.array(self.init, dtype=np.float64)
            if weight is not None:
                run = lloyd_weighted(X, weight, centers, int(self.max_iter), tol)
            elif device == "cpu":
                run = lloyd(X, centers, int(self.max_iter), tol, algorithm, prepared=prepared)
            else:
                run = lloyd_torch(X, centers, int(self.max_iter), tol, device)
            if best is None or run["inertia"] < best["inertia"]:
                best = run
        assert best is not None
        n_distinct = len(np.unique(best["centers"], axis=0))
        if n_distinct < k:
            warnings.warn(
                f"only {n_distinct} distinct clusters found for n_clusters={k}: the data has "
                "fewer distinct points than clusters",
                stacklevel=2,
            )
        self.cluster_centers_ = best["centers"].astype(X.dtype)
        self.labels_ = best["labels"].astype(np.int64)
        self.inertia_ = best["inertia"]
        self.n_iter_ = best["n_iter"]
        self.inertia_history_ = best["inertia_history"]
        self.n_features_in_ = X.shape[1]
        return self

    def _checked(self, X: Any) -> np.ndarray:
        self._check_fitted()
        X = check_array(X, estimator=type(self).__name__)
        check_features(self, X)
        return X

    def predict(self, X: Any) -> np.ndarray:
        """Index of the nearest centre for each row of X."""
        return self._labels_and_inertia(self._checked(X))[0].astype(np.int64)

    def fit_predict(self, X: Any, y: Any = None, sample_weight: Any = None) -> np.ndarray:
        """:meth:`fit`, then the labels of X."""
        return self.fit(X, sample_weight=sample_weight).labels_

    def score(self, X: Any, y: Any = None, sample_weight: Any = None) -> float:
        """Opposite of the (weighted) inertia of X under the fitted centres: higher is better."""
        X = self._checked(X)
        if sample_weight is None:
            return -self._labels_and_inertia(X)[1]
        weight = check_weights(sample_weight, X.shape[0])
        labels = self._labels_and_inertia(X)[0]
        d2 = ((X.astype(np.float64) - self.cluster_centers_[labels]) ** 2).sum(1)
        return -float((weight * d2).sum())

    def _labels_and_inertia(self, X: np.ndarray) -> tuple[np.ndarray, float]:
        """Nearest fitted centre of each row of X, and the inertia."""
        XT = _transpose(X).XT
        centers = self.cluster_centers_.astype(np.float64)
        labels = np.full(X.shape[0], -1, dtype=np.int32)
        return labels, _assign(XT, centers, labels, want_inertia=True)[3]


class KMeansSegmenter(EstimatorMixin):
    """Segment an image by k-means on per-pixel features (default: colour + position, "lab+xy").

    Parameters
    ----------
    n_clusters : int
        number of clusters K: 5 (a photo's few regions), where :class:`KMeans` takes
        scikit-learn's 8; its other shared parameters have KMeans's defaults.
    features : str
        feature spec for :func:`seglab.features.pixel_features`.
    spatial_weight : float or "auto"
        colour units per pixel of distance (0 ignores position), or "auto"
        (default): 25 / image diagonal, i.e. crossing the image counts as 25 Lab units.
    min_region_size : int
        if > 0, split clusters into connected regions and merge regions smaller
        than this into the neighbour they share most border with; ``labels_`` keeps cluster ids
        (the merged speck takes its neighbour's cluster), ``regions_`` numbers the regions.
    weights : dict of str to float, optional
        extra per-group feature weights (see ``pixel_features``).
    init, n_init, max_iter, tol, random_state, algorithm, device : as in KMeans
        passed to :class:`KMeans`.

    Attributes
    ----------
    labels_ : ndarray of shape (H, W)
        Cluster ids 0..K-1.
    regions_ : ndarray of shape (H, W)
        Connected-region ids 0..R-1; ``n_regions_`` is R.
    spatial_weight_ : float
        The weight used (``predict`` reuses it, so distances keep their meaning).
    cluster_centers_ : ndarray of shape (K, D)
        Centres in feature space.
    inertia_, n_iter_ : float, int
        The objective and the iterations of the best run.
    kmeans_ : KMeans
        The fitted estimator.
    """

    def __init__(
        self,
        n_clusters: int = 5,
        features: str = "lab+xy",
        spatial_weight: float | str = "auto",
        min_region_size: int = 0,
        *,
        weights: dict[str, float] | None = None,
        init: str | np.ndarray = _SHARED_DEFAULTS["init"],
        n_init: int | str = _SHARED_DEFAULTS["n_init"],
        max_iter: int = _SHARED_DEFAULTS["max_iter"],
        tol: float = _SHARED_DEFAULTS["tol"],
        random_state: Any = _SHARED_DEFAULTS["random_state"],
        algorithm: str = _SHARED_DEFAULTS["algorithm"],
        device: str = _SHARED_DEFAULTS["device"],
    ) -> None:
        self.n_clusters = n_clusters
        self.features = features
        self.spatial_weight = spatial_weight
        self.min_region_size = min_region_size
        self.weights = weights
        self.init = init
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state
        self.algorithm = algorithm
        self.device = device

    def _features(self, image: Any) -> tuple[np.ndarray, tuple[int, int]]:
        image = check_image(image)
        X = pixel_features(image, self.features, self.spatial_weight_, self.weights)
        return X, image.shape[:2]

    def _postprocess(self, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
        regions, carried = _split_and_merge(labels, self.min_region_size)
        return carried[regions].astype(np.int64), regions, int(regions.max()) + 1

    def fit(self, image: Any, y: Any = None) -> KMeansSegmenter:
        """Cluster the pixels of ``image`` (gray, RGB or RGBA array); ``y`` is ignored."""
        k = check_positive_int(self.n_clusters, "n_clusters")
        check_positive_int(self.min_region_size, "min_region_size", minimum=0)
        image = check_image(image)
        self.spatial_weight_ = resolve_spatial_weight(self.spatial_weight, image.shape)
        X, (h, w) = self._features(image)
        if k > h * w:
            raise ValueError(
                f"n_clusters={k} is greater than the number of pixels ({h * w}); "
                "choose n_clusters <= height * width"
            )
        self.kmeans_ = KMeans(
            k,
            init=self.init,
            n_init=self.n_init,
            max_iter=self.max_iter,
            tol=self.tol,
            random_state=self.random_state,
            algorithm=self.algorithm,
            device=self.device,
        )._fit(X)
        self.n_features_in_ = X.shape[1]
        labels = self.kmeans_.labels_.reshape(h, w)
        self.labels_, self.regions_, self.n_regions_ = self._postprocess(labels)
        self.cluster_centers_ = self.kmeans_.cluster_centers_
        self.inertia_ = self.kmeans_.inertia_
        self.n_iter_ = self.kmeans_.n_iter_
        return self

    def fit_predict(self, image: Any, y: Any = None) -> np.ndarray:
        """:meth:`fit`, then the image's labels."""
        return self.fit(image).labels_

    def predict(self, image: Any) -> np.ndarray:
        """Label another image with the fitted centres (same features and post-processing)."""
        self._check_fitted()
        X, (h, w) = self._features(image)
        labels = self.kmeans_.predict(X).reshape(h, w)
        return self._postprocess(labels)[0]
