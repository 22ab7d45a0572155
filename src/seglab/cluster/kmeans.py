"""K-means clustering, and k-means segmentation of images.

The lecture's algorithm: pick K centres, give every point to its nearest centre, move each centre
to the mean of its points, repeat until nothing moves. It minimises the inertia
``sum_i sum_{x in C_i} |x - c_i|^2`` and converges, but only to a local minimum, hence the restarts
(``n_init``) and the careful k-means++ seeding.

:class:`KMeans` follows scikit-learn's estimator conventions and its Lloyd iteration exactly (same
stopping rule: labels unchanged, or total squared centre shift <= ``tol`` times the mean feature
variance). By default it runs Hamerly's (2010) bounds, which return the same labels as plain Lloyd
while skipping the distance computations that cannot change a label: after the first few
iterations most points are settled, which is where the speed comes from.
"""

from __future__ import annotations

import numbers
import warnings
from typing import Any

import numpy as np

from .._checks import check_positive_int, device_name
from ..features import pixel_features, resolve_spatial_weight
from ..image import check_image
from . import _kmeans_kernels as K
from .regions import _split_and_merge

_ALGORITHMS = ("auto", "lloyd", "hamerly")


def _as_rng(random_state: Any) -> np.random.Generator:
    if isinstance(random_state, np.random.Generator):
        return random_state
    if random_state is None or isinstance(random_state, numbers.Integral):
        return np.random.default_rng(random_state)
    raise ValueError(
        f"random_state must be None, an int or a numpy Generator, got {random_state!r}"
    )


def _check_n_clusters(n_clusters: Any) -> int:
    return check_positive_int(n_clusters, "n_clusters")


def _check_data(X: Any) -> np.ndarray:
    """X as a C-contiguous float32 (kept) or float64 (anything else numeric) 2-d array."""
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"X must be a 2-d (n_samples, n_features) array, got shape {X.shape}")
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(f"X is empty (shape {X.shape}); expected at least one sample and feature")
    if not (np.issubdtype(X.dtype, np.floating) or np.issubdtype(X.dtype, np.integer)):
        raise ValueError(f"X must be numeric, got dtype {X.dtype}")
    dtype = np.float32 if X.dtype == np.float32 else np.float64
    return np.ascontiguousarray(X, dtype=dtype)


def _transpose(X: np.ndarray) -> tuple[np.ndarray, float]:
    """The (D, N) layout the kernels read, and the mean per-feature variance (one pass)."""
    XT = np.empty(X.shape[::-1], dtype=X.dtype)
    n_bad, variance = K.prepare(X, XT)
    if n_bad:
        raise ValueError(f"X contains {n_bad} NaN or infinite values; expected finite numbers")
    return XT, float(variance)


def kmeans_plusplus(X: np.ndarray, n_clusters: int, rng: np.random.Generator) -> np.ndarray:
    """Greedy k-means++ seeding (Arthur & Vassilvitskii 2007, with scikit-learn's 2 + log K local
    trials): each new centre is drawn with probability proportional to the squared distance to the
    nearest centre so far, keeping the best of a few draws. Returns (K, D) float64 centres."""
    X = _check_data(X)
    return _kmeans_plusplus(X, _transpose(X)[0], n_clusters, rng)


def _kmeans_plusplus(
    X: np.ndarray, XT: np.ndarray, n_clusters: int, rng: np.random.Generator
) -> np.ndarray:
    """:func:`kmeans_plusplus` on checked data X and its transpose XT (made once per fit)."""
    n, d = X.shape
    centers = np.empty((n_clusters, d), dtype=np.float64)
    n_local = 2 + int(np.log(n_clusters))
    first = int(rng.integers(n))
    centers[0] = X[first]
    closest = np.empty(n)
    K.min_sqdist_update(XT, centers[0], np.full(n, np.inf), closest)
    trial = np.empty(n)
    best_closest = np.empty(n)
    for c in range(1, n_clusters):
        cum = np.cumsum(closest)
        if cum[-1] <= 0:  # fewer distinct points than clusters: any point will do
            centers[c] = X[int(rng.integers(n))]
            continue
        cand = np.minimum(np.searchsorted(cum, rng.random(n_local) * cum[-1]), n - 1)
        best_pot, best = np.inf, int(cand[0])
        for ci in cand:
            pot = K.min_sqdist_update(XT, X[ci].astype(np.float64), closest, trial)
            if pot < best_pot:
                best_pot, best = pot, int(ci)
                trial, best_closest = best_closest, trial
        closest, best_closest = best_closest, closest
        centers[c] = X[best]
    return centers


def _relocate_empty(X, XT, centers_used, labels, sums, counts) -> int:
    """Give each empty cluster the point farthest from its centre (as scikit-learn does).

    Modifies labels, sums and counts in place; returns the number of clusters re-seeded.
    """
    empty = np.flatnonzero(counts == 0)
    if len(empty) == 0:
        return 0
    d2 = K.sqdist_to_assigned(XT, centers_used, labels)
    far = np.argsort(d2)[::-1]
    n_done = 0
    for idx in far:
        if n_done == len(empty):
            break
        old = labels[idx]
        if counts[old] <= 1:
            continue
        e = empty[n_done]
        x = X[idx].astype(np.float64)
        sums[old] -= x
        counts[old] -= 1
        sums[e] = x
        counts[e] = 1
        labels[idx] = e
        n_done += 1
    return n_done


def _means(sums: np.ndarray, counts: np.ndarray, previous: np.ndarray) -> np.ndarray:
    out = previous.copy()
    nz = counts > 0
    out[nz] = sums[nz] / counts[nz, None]
    return out


def _kernel_centers(XT: np.ndarray, centers: np.ndarray) -> tuple[np.ndarray, float, float]:
    """The centres as the kernels take them: in the data's dtype, and the error terms."""
    R, A = K.error_terms(XT.dtype, centers)
    return centers.astype(XT.dtype), R, A


def _assign(XT: np.ndarray, centers: np.ndarray, labels: np.ndarray, want_sums: bool = False):
    """Nearest centre of every point, written into ``labels`` (no bounds kept); returns the
    kernel's (sums, counts, n_changed)."""
    cd, R, A = _kernel_centers(XT, centers)
    no_key = np.empty(0, dtype=np.float32)
    return K.assign(XT, cd, centers, R, A, labels, no_key, np.zeros(len(centers)), want_sums)


def lloyd(
    X: np.ndarray,
    centers: np.ndarray,
    max_iter: int,
    tol: float,
    algorithm: str = "hamerly",
    *,
    XT: np.ndarray | None = None,
) -> dict[str, Any]:
    """Run k-means from ``centers`` (absolute ``tol`` on the total squared centre shift).

    ``XT`` is X transposed (made here when not given). Returns a dict with centers, labels,
    inertia, n_iter and inertia_history (lloyd only).
    """
    X = _check_data(X)
    if XT is None:
        XT, _ = _transpose(X)
    n = X.shape[0]
    centers = np.array(centers, dtype=np.float64)
    labels = np.full(n, -1, dtype=np.int32)
    history: list[float] = []
    n_iter = 0
    if algorithm == "lloyd":
        for _ in range(max_iter):
            sums, counts, changed = _assign(XT, centers, labels, want_sums=True)
            history.append(float(K.inertia(XT, centers, labels)))
            _relocate_empty(X, XT, centers, labels, sums, counts)
            new = _means(sums, counts, centers)
            shift = float(((new - centers) ** 2).sum())
            centers = new
            n_iter += 1
            if changed == 0 or shift <= tol:
                break
        _assign(XT, centers, labels)
        return _result(centers, labels, K.inertia(XT, centers, labels), n_iter, history)
    # Hamerly's bounds as one slack per point; decrements cumulative, per cluster
    key = np.empty(n, dtype=np.float32)
    decrement = np.zeros(len(centers))
    half_sep = _half_separation(centers)
    cd, R, A = _kernel_centers(XT, centers)
    sums, counts, _ = K.assign(XT, cd, centers, R, A, labels, key, half_sep, True)
    changed = n
    while True:
        if _relocate_empty(X, XT, centers, labels, sums, counts):
            key[:] = -np.inf  # bounds are void: the next step recomputes every point
        new = _means(sums, counts, centers)
        shift = np.sqrt(((new - centers) ** 2).sum(axis=1))
        centers = new
        n_iter += 1
        new_sep = _half_separation(centers)
        drop = np.subtract(
            half_sep, new_sep, out=np.zeros_like(half_sep), where=np.isfinite(half_sep)
        )
        decrement += shift + np.maximum(_largest_other(shift), np.maximum(drop, 0.0))
        half_sep = new_sep
        if (n_iter > 1 and changed == 0) or float((shift**2).sum()) <= tol or n_iter >= max_iter:
            break
        cd, R, A = _kernel_centers(XT, centers)
        dsums, dcounts, changed = K.hamerly_step(
            XT, cd, centers, R, A, labels, key, decrement, half_sep
        )
        sums += dsums
        counts += dcounts
    # final E-step so that the labels belong to the returned centres (exact, bounded)
    if changed != 0:
        cd, R, A = _kernel_centers(XT, centers)
        K.hamerly_step(XT, cd, centers, R, A, labels, key, decrement, half_sep)
    return _result(centers, labels, K.inertia(XT, centers, labels), n_iter, history)


def _largest_other(values: np.ndarray) -> np.ndarray:
    """For each index, the largest of the other values (0 when there is none)."""
    if len(values) == 1:
        return np.zeros(1)
    order = np.argsort(values)
    out = np.full(len(values), values[order[-1]])
    out[order[-1]] = values[order[-2]]
    return out


def _half_separation(centers: np.ndarray) -> np.ndarray:
    """Half the distance from each centre to its nearest other centre (Hamerly's s(j))."""
    if len(centers) == 1:
        return np.full(1, np.inf)
    cc = np.sqrt(((centers[:, None, :] - centers[None, :, :]) ** 2).sum(axis=2))
    np.fill_diagonal(cc, np.inf)
    return 0.5 * cc.min(axis=1)


def _result(centers, labels, inertia, n_iter, history) -> dict[str, Any]:
    return {
        "centers": centers,
        "labels": labels,
        "inertia": float(inertia),
        "n_iter": n_iter,
        "inertia_history": history,
    }


def lloyd_torch(
    X: np.ndarray,
    centers: np.ndarray,
    max_iter: int,
    tol: float,
    device: str = "cuda",
    chunk: int = 1 << 18,
) -> dict[str, Any]:
    """The same Lloyd iteration in PyTorch, for GPUs: chunked distances, never the full N x K."""
    import torch

    Xt = torch.as_tensor(X, device=device)
    c = torch.as_tensor(centers, dtype=torch.float64, device=device)
    n, k = Xt.shape[0], c.shape[0]
    labels = torch.full((n,), -1, dtype=torch.int64, device=device)
    history: list[float] = []
    n_iter = 0

    def e_step(c: torch.Tensor, want_sums: bool):
        sums = torch.zeros_like(c)
        counts = torch.zeros(k, dtype=torch.int64, device=device)
        inertia = torch.zeros((), dtype=torch.float64, device=device)
        changed = torch.zeros((), dtype=torch.int64, device=device)
        for start in range(0, n, chunk):
            xc = Xt[start : start + chunk].double()
            d2 = ((xc[:, None, :] - c[None, :, :]) ** 2).sum(dim=2)
            dmin, lab = d2.min(dim=1)
            changed += (labels[start : start + chunk] != lab).sum()
            labels[start : start + chunk] = lab
            inertia += dmin.sum()
            if want_sums:
                sums.index_add_(0, lab, xc)
                counts += torch.bincount(lab, minlength=k)
        return sums, counts, float(inertia), int(changed)

    for _ in range(max_iter):
        sums, counts, inertia, changed = e_step(c, True)
        history.append(inertia)
        if bool((counts == 0).any()):
            lab_np = labels.cpu().numpy().astype(np.int32)
            s_np, c_np = sums.cpu().numpy(), counts.cpu().numpy()
            _relocate_empty(X, _transpose(X)[0], c.cpu().numpy(), lab_np, s_np, c_np)
            labels.copy_(torch.as_tensor(lab_np, device=device))
            sums, counts = (
                torch.as_tensor(s_np, device=device),
                torch.as_tensor(c_np, device=device),
            )
        new = torch.where((counts > 0)[:, None], sums / counts.clamp(min=1)[:, None].double(), c)
        shift = float(((new - c) ** 2).sum())
        c = new
        n_iter += 1
        if changed == 0 or shift <= tol:
            break
    _, _, inertia, _ = e_step(c, False)
    return {
        "centers": c.cpu().numpy(),
        "labels": labels.cpu().numpy().astype(np.int32),
        "inertia": inertia,
        "n_iter": n_iter,
        "inertia_history": history,
    }


class KMeans:
    """K-means clustering of an (N, D) array, with scikit-learn's parameters and attributes.

    Parameters
    ----------
    n_clusters
        K, the number of clusters.
    init
        "k-means++" (default), "random" (K distinct samples) or a (K, D) array of centres.
    n_init
        number of restarts, the best inertia kept; "auto" is 1 for k-means++ or an array,
        10 for "random" (as scikit-learn).
    max_iter
        iteration limit of each run.
    tol
        relative tolerance: stop when the total squared centre shift is <= tol times the mean
        per-feature variance of X.
    random_state
        seed (int), numpy Generator, or None.
    algorithm
        "auto" / "hamerly" (exact, with distance bounds) or "lloyd" (plain iteration,
        records ``inertia_history_``). Both give the same labels.
    device
        "cpu" (compiled, multi-threaded), "cuda" (PyTorch on the GPU) or "auto".

    Attributes
    ----------
    cluster_centers_ : ndarray of shape (K, D)
        The centres.
    labels_ : ndarray of shape (N,)
        Each sample's cluster.
    inertia_ : float
        Sum of squared distances of the samples to their centres (the objective).
    n_iter_ : int
        Iterations of the best run.
    inertia_history_ : list of float
        Per-iteration inertia of the best run when algorithm="lloyd" or on a GPU, else empty.
    """

    def __init__(
        self,
        n_clusters: int = 8,
        *,
        init: str | np.ndarray = "k-means++",
        n_init: int | str = "auto",
        max_iter: int = 300,
        tol: float = 1e-4,
        random_state: int | np.random.Generator | None = None,
        algorithm: str = "auto",
        device: str = "cpu",
    ) -> None:
        self.n_clusters = n_clusters
        self.init = init
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state
        self.algorithm = algorithm
        self.device = device

    def _check_params(self, X: np.ndarray) -> tuple[int, int, str]:
        k = _check_n_clusters(self.n_clusters)
        if isinstance(self.init, str):
            if self.init not in ("k-means++", "random"):
                raise ValueError(
                    f"init must be 'k-means++', 'random' or a (K, D) array, got {self.init!r}"
                )
        else:
            init = np.asarray(self.init, dtype=np.float64)
            if init.shape != (k, X.shape[1]):
                raise ValueError(
                    f"init array has shape {init.shape}; expected (n_clusters, n_features) = "
                    f"({k}, {X.shape[1]})"
                )
            if not np.all(np.isfinite(init)):
                raise ValueError("init array contains NaN or infinite values")
        if self.n_init == "auto":
            n_init = 10 if isinstance(self.init, str) and self.init == "random" else 1
        elif isinstance(self.n_init, numbers.Integral) and self.n_init >= 1:
            n_init = int(self.n_init)
        else:
            raise ValueError(f"n_init must be 'auto' or an integer >= 1, got {self.n_init!r}")
        if not isinstance(self.init, str) and n_init > 1:
            warnings.warn("init is an explicit array: running once (n_init=1)", stacklevel=3)
            n_init = 1
        if not isinstance(self.max_iter, numbers.Integral) or self.max_iter < 1:
            raise ValueError(f"max_iter must be an integer >= 1, got {self.max_iter!r}")
        if not np.isfinite(self.tol) or self.tol < 0:
            raise ValueError(f"tol must be a finite number >= 0, got {self.tol!r}")
        if self.algorithm not in _ALGORITHMS:
            raise ValueError(f"algorithm must be one of {_ALGORITHMS}, got {self.algorithm!r}")
        return k, n_init, device_name(self.device)

    def fit(self, X: Any, y: Any = None) -> KMeans:
        """Cluster X (N, D); ``y`` is ignored (scikit-learn API)."""
        X = _check_data(X)
        k, n_init, device = self._check_params(X)
        if k > X.shape[0]:
            raise ValueError(
                f"n_clusters={k} is greater than the number of samples ({X.shape[0]}); "
                "choose n_clusters <= n_samples"
            )
        rng = _as_rng(self.random_state)
        XT, variance = _transpose(X)
        tol = variance * float(self.tol)
        algorithm = "hamerly" if self.algorithm == "auto" else self.algorithm
        best = None
        for _ in range(n_init):
            if isinstance(self.init, str) and self.init == "k-means++":
                centers = _kmeans_plusplus(X, XT, k, rng)
            elif isinstance(self.init, str):
                centers = X[rng.choice(X.shape[0], k, replace=False)].astype(np.float64)
            else:
                centers = np.array(self.init, dtype=np.float64)
            if device == "cpu":
                run = lloyd(X, centers, int(self.max_iter), tol, algorithm, XT=XT)
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

    def _check_fitted(self) -> None:
        if not hasattr(self, "cluster_centers_"):
            raise ValueError("this KMeans is not fitted yet; call fit(X) first")

    def predict(self, X: Any) -> np.ndarray:
        """Index of the nearest centre for each row of X."""
        self._check_fitted()
        X = _check_data(X)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {X.shape[1]} features; this KMeans was fitted on {self.n_features_in_}"
            )
        return self._labels_and_inertia(X)[0].astype(np.int64)

    def fit_predict(self, X: Any, y: Any = None) -> np.ndarray:
        return self.fit(X).labels_

    def score(self, X: Any, y: Any = None) -> float:
        """Opposite of the inertia of X under the fitted centres (higher is better)."""
        self._check_fitted()
        X = _check_data(X)
        return -self._labels_and_inertia(X)[1]

    def _labels_and_inertia(self, X: np.ndarray) -> tuple[np.ndarray, float]:
        """Nearest fitted centre of each row of X, and the inertia."""
        XT, _ = _transpose(X)
        centers = self.cluster_centers_.astype(np.float64)
        labels = np.full(X.shape[0], -1, dtype=np.int32)
        _assign(XT, centers, labels)
        return labels, float(K.inertia(XT, centers, labels))

    def __repr__(self) -> str:
        return f"KMeans(n_clusters={self.n_clusters!r}, init={self.init if isinstance(self.init, str) else 'array'!r})"


class KMeansSegmenter:
    """Segment an image by k-means on per-pixel features (default: colour + position, "lab+xy").

    Parameters
    ----------
    n_clusters
        number of clusters K.
    features
        feature spec for :func:`seglab.features.pixel_features`.
    spatial_weight
        colour units per pixel of distance (0 ignores position), or "auto"
        (default): 25 / image diagonal, i.e. crossing the image counts as 25 Lab units.
    min_region_size
        if > 0, split clusters into connected regions and merge regions smaller
        than this into the neighbour they share most border with; ``labels_`` keeps cluster ids
        (the merged speck takes its neighbour's cluster), ``regions_`` numbers the regions.
    weights
        extra per-group feature weights (see ``pixel_features``).
    init, n_init, max_iter, tol, random_state, algorithm, device
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
        init: str | np.ndarray = "k-means++",
        n_init: int | str = "auto",
        max_iter: int = 300,
        tol: float = 1e-4,
        random_state: int | np.random.Generator | None = None,
        algorithm: str = "auto",
        device: str = "cpu",
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

    def fit(self, image: Any) -> KMeansSegmenter:
        """Cluster the pixels of ``image`` (gray, RGB or RGBA array)."""
        k = _check_n_clusters(self.n_clusters)
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
        ).fit(X)
        labels = self.kmeans_.labels_.reshape(h, w)
        self.labels_, self.regions_, self.n_regions_ = self._postprocess(labels)
        self.cluster_centers_ = self.kmeans_.cluster_centers_
        self.inertia_ = self.kmeans_.inertia_
        self.n_iter_ = self.kmeans_.n_iter_
        return self

    def fit_predict(self, image: Any) -> np.ndarray:
        return self.fit(image).labels_

    def predict(self, image: Any) -> np.ndarray:
        """Label another image with the fitted centres (same features and post-processing)."""
        if not hasattr(self, "kmeans_"):
            raise ValueError("this KMeansSegmenter is not fitted yet; call fit(image) first")
        X, (h, w) = self._features(image)
        labels = self.kmeans_.predict(X).reshape(h, w)
        return self._postprocess(labels)[0]
