"""The k-means algorithms behind :class:`seglab.cluster.KMeans`: k-means++ seeding, Lloyd's
iteration with Hamerly's bounds on the compiled kernels, a weighted Lloyd for sample weights, and
the same iteration in PyTorch for GPUs."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from .._checks import check_positive_int
from . import _kmeans_kernels as K


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


class Transposed(NamedTuple):
    """X in the (D, N) layout the kernels read, with what the same pass measured."""

    XT: np.ndarray
    variance: float  # mean per-feature variance
    total: np.ndarray  # sum of the points (D,), float64


def _transpose(X: np.ndarray) -> Transposed:
    """The (D, N) layout the kernels read, the mean per-feature variance and the sum of the
    points (one pass)."""
    XT = np.empty(X.shape[::-1], dtype=X.dtype)
    n_bad, variance, total = K.prepare(X, XT)
    if n_bad:
        raise ValueError(f"X contains {n_bad} NaN or infinite values; expected finite numbers")
    return Transposed(XT, float(variance), total)


def kmeans_plusplus(
    X: np.ndarray,
    n_clusters: int,
    random_state: Any = None,
    *,
    sample_weight: np.ndarray | None = None,
) -> np.ndarray:
    """Greedy k-means++ seeding (Arthur & Vassilvitskii 2007, with scikit-learn's 2 + log K local
    trials): each new centre is drawn with probability proportional to the (weighted) squared
    distance to the nearest centre so far, keeping the best of a few draws. Returns (K, D) float64
    centres. ``random_state``: None, an int, a ``RandomState`` or a ``Generator``."""
    from ._estimator import as_generator, check_array

    X = check_array(X)
    weight = None if sample_weight is None else check_weights(sample_weight, X.shape[0])
    n_clusters = check_positive_int(n_clusters, "n_clusters")
    return _kmeans_plusplus(X, _transpose(X).XT, n_clusters, as_generator(random_state), weight)


def check_weights(sample_weight: Any, n: int) -> np.ndarray:
    """Sample weights as float64 of length n: finite, >= 0, not all 0."""
    w = np.asarray(sample_weight, dtype=np.float64)
    if w.ndim == 0:
        w = np.full(n, float(w))
    if w.shape != (n,):
        raise ValueError(f"sample_weight has shape {w.shape}; expected ({n},), one per sample")
    if not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        raise ValueError("sample_weight must be finite, >= 0 and not all zero")
    return w


def _draw(cum: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Indices drawn with probability proportional to the increments of ``cum`` (the same
    indices for weights w as for rows repeated w times)."""
    return np.minimum(np.searchsorted(cum, u * cum[-1], side="right"), len(cum) - 1)


def _kmeans_plusplus(
    X: np.ndarray,
    XT: np.ndarray,
    n_clusters: int,
    rng: np.random.Generator,
    weight: np.ndarray | None = None,
) -> np.ndarray:
    """:func:`kmeans_plusplus` on checked data X and its transpose XT (made once per fit)."""
    n, d = X.shape
    centers = np.empty((n_clusters, d), dtype=np.float64)
    n_local = 2 + int(np.log(n_clusters))
    first = int(_draw(np.cumsum(np.ones(n) if weight is None else weight), rng.random(1))[0])
    centers[0] = X[first]
    closest = np.empty(n)
    K.min_sqdist_update(XT, centers[0], np.full(n, np.inf), closest)
    trial = np.empty(n)
    best_closest = np.empty(n)
    for c in range(1, n_clusters):
        cum = np.cumsum(closest if weight is None else closest * weight)
        if cum[-1] <= 0:  # fewer distinct points than clusters: any point will do
            centers[c] = X[int(rng.integers(n))]
            continue
        cand = _draw(cum, rng.random(n_local))
        best_pot, best = np.inf, int(cand[0])
        for ci in cand:
            pot = K.min_sqdist_update(XT, X[ci].astype(np.float64), closest, trial)
            if weight is not None:
                pot = float((trial * weight).sum())
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


def _assign(
    XT: np.ndarray,
    centers: np.ndarray,
    labels: np.ndarray,
    want_sums: bool = False,
    want_inertia: bool = False,
):
    """Nearest centre of every point, written into ``labels`` (no bounds kept); returns the
    kernel's (sums, counts, n_changed, inertia)."""
    cd, R, A = _kernel_centers(XT, centers)
    return K.assign(XT, cd, centers, R, A, labels, want_sums, want_inertia)


def lloyd(
    X: np.ndarray,
    centers: np.ndarray,
    max_iter: int,
    tol: float,
    algorithm: str = "hamerly",
    *,
    prepared: Transposed | None = None,
) -> dict[str, Any]:
    """Run k-means from ``centers`` (absolute ``tol`` on the total squared centre shift).

    ``prepared`` is :func:`_transpose` of X (made here when not given). Returns a dict with centers, labels,
    inertia, n_iter and inertia_history (lloyd only).
    """
    X = _check_data(X)
    if prepared is None:
        prepared = _transpose(X)
    XT = prepared.XT
    n = X.shape[0]
    centers = np.array(centers, dtype=np.float64)
    labels = np.full(n, -1, dtype=np.int32)
    history: list[float] = []
    n_iter = 0
    if algorithm == "lloyd":
        for _ in range(max_iter):
            sums, counts, changed, inertia = _assign(XT, centers, labels, True, True)
            history.append(inertia)
            _relocate_empty(X, XT, centers, labels, sums, counts)
            new = _means(sums, counts, centers)
            shift = float(((new - centers) ** 2).sum())
            centers = new
            n_iter += 1
            if changed == 0 or shift <= tol:
                break
        inertia = _assign(XT, centers, labels, want_inertia=True)[3]
        return _result(centers, labels, inertia, n_iter, history)
    # Hamerly's bounds as one slack per point; decrements cumulative, per cluster
    key = np.empty(n, dtype=np.float32)
    decrement = np.zeros(len(centers))
    half_sep = _half_separation(centers)
    # the first E-step is a Hamerly step where every bound fails, from all points in cluster 0
    # (one kernel less to compile on the default path)
    labels[:] = 0
    key[:] = -np.inf
    sums = np.zeros_like(centers)
    sums[0] = prepared.total
    counts = np.zeros(len(centers), dtype=np.int64)
    counts[0] = n
    cd, R, A = _kernel_centers(XT, centers)
    dsums, dcounts, _, _ = K.hamerly_step(XT, cd, centers, R, A, labels, key, decrement, half_sep)
    sums += dsums
    counts += dcounts
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
        dsums, dcounts, changed, _ = K.hamerly_step(
            XT, cd, centers, R, A, labels, key, decrement, half_sep
        )
        sums += dsums
        counts += dcounts
    # final E-step so that the labels belong to the returned centres (exact, bounded; when
    # nothing moved, every bound holds and only the inertia is computed), with the inertia
    cd, R, A = _kernel_centers(XT, centers)
    *_, inertia = K.hamerly_step(XT, cd, centers, R, A, labels, key, decrement, half_sep, True)
    return _result(centers, labels, inertia, n_iter, history)


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
            _relocate_empty(X, _transpose(X).XT, c.cpu().numpy(), lab_np, s_np, c_np)
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


def lloyd_weighted(
    X: np.ndarray, weight: np.ndarray, centers: np.ndarray, max_iter: int, tol: float
) -> dict[str, Any]:
    """Lloyd's iteration with sample weights (numpy, float64): centres are weighted means, the
    inertia a weighted sum; the same stopping rule as :func:`lloyd`, so integer weights give
    the result of rows repeated that many times."""
    centers = np.array(centers, dtype=np.float64)
    X64 = np.asarray(X, dtype=np.float64)
    k = len(centers)
    labels = np.full(X.shape[0], -1, dtype=np.int64)
    history: list[float] = []
    n_iter = 0
    for _ in range(max_iter):
        new_labels, d2 = _nearest(X64, centers)
        changed = int((new_labels != labels).sum())
        labels = new_labels
        history.append(float((weight * d2).sum()))
        totals = np.bincount(labels, weight, minlength=k)
        sums = np.stack(
            [np.bincount(labels, weight * X64[:, j], minlength=k) for j in range(X.shape[1])], 1
        )
        for e in np.flatnonzero(totals == 0):  # an empty cluster takes the farthest point
            far = int(np.argmax(np.where(totals[labels] > weight, d2, -1.0)))
            old = labels[far]
            totals[old] -= weight[far]
            sums[old] -= weight[far] * X64[far]
            labels[far], totals[e], sums[e], d2[far] = e, weight[far], weight[far] * X64[far], 0.0
        new = _means(sums, totals, centers)
        shift = float(((new - centers) ** 2).sum())
        centers = new
        n_iter += 1
        if changed == 0 or shift <= tol:
            break
    labels, d2 = _nearest(X64, centers)
    return _result(centers, labels.astype(np.int32), float((weight * d2).sum()), n_iter, history)


def _nearest(
    X: np.ndarray, centers: np.ndarray, chunk: int = 65536
) -> tuple[np.ndarray, np.ndarray]:
    """Nearest centre of each row and its squared distance (exact, in chunks)."""
    labels = np.empty(X.shape[0], dtype=np.int64)
    d2 = np.empty(X.shape[0])
    for s in range(0, X.shape[0], chunk):
        diff = ((X[s : s + chunk, None, :] - centers[None]) ** 2).sum(2)
        labels[s : s + chunk] = diff.argmin(1)
        d2[s : s + chunk] = diff[np.arange(len(diff)), labels[s : s + chunk]]
    return labels, d2
