"""From cluster labels to regions: connected components, and merging of regions that are too small.

Clustering in feature space says nothing about connectivity: one k-means cluster can be scattered
over the image in hundreds of specks. :func:`connected_regions` splits every cluster into its
connected pieces and absorbs the pieces smaller than ``min_size`` into a neighbour, as the EDISON
mean-shift system does with its minimum region area.
"""

from __future__ import annotations

import heapq

import numpy as np
from skimage.measure import label as _sk_label

from .._checks import check_positive_int


def _check_labels(labels: np.ndarray) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"labels must be a 2-d (H, W) array, got shape {labels.shape}")
    if labels.size == 0:
        raise ValueError("labels is empty; expected at least one pixel")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be integers, got dtype {labels.dtype}")
    return labels


def _check_connectivity(connectivity: int) -> int:
    if connectivity not in (1, 2):
        raise ValueError(
            f"connectivity must be 1 (4-neighbours) or 2 (8-neighbours), got {connectivity!r}"
        )
    return connectivity


def label_regions(labels: np.ndarray, connectivity: int = 1) -> tuple[np.ndarray, int]:
    """Number the connected pieces of equal label 0..R-1 in raster order; returns (regions, R)."""
    labels = _check_labels(labels)
    connectivity = _check_connectivity(connectivity)
    # shift so that no value equals skimage's background marker
    shifted = labels.astype(np.int64) - labels.min() + 1
    regions, n = _sk_label(shifted, background=0, connectivity=connectivity, return_num=True)
    return (regions - 1).astype(np.int64), int(n)


def region_adjacency(regions: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Edges (a, b, border) between 4-adjacent regions, a < b, border = shared pixel edges."""
    pairs = []
    for a, b in (
        (regions[:, :-1], regions[:, 1:]),
        (regions[:-1, :], regions[1:, :]),
    ):
        diff = a != b
        lo = np.minimum(a[diff], b[diff])
        hi = np.maximum(a[diff], b[diff])
        pairs.append(lo * n + hi)
    codes = np.concatenate(pairs)
    uniq, counts = np.unique(codes, return_counts=True)
    return uniq // n, uniq % n, counts


def merge_small_regions(
    regions: np.ndarray,
    n: int,
    min_size: int,
    region_features: np.ndarray | None = None,
) -> np.ndarray:
    """Merge every region smaller than ``min_size`` into a neighbour, smallest regions first.

    The neighbour chosen is the one sharing the longest border, or, when ``region_features``
    ((R, F) mean feature of each region) is given, the most similar one (nearest mean; the
    border breaks ties). Features of merged regions are updated as size-weighted means.

    Returns ``parent`` (R,): for every input region, the input region it was merged into (itself if
    it survived). A region with no neighbour (the whole image) is kept whatever its size.
    """
    sizes = np.bincount(regions.ravel(), minlength=n).astype(np.int64)
    parent = np.arange(n)
    if min_size <= 1 or n <= 1 or sizes.min() >= min_size:
        return parent
    a, b, w = region_adjacency(regions, n)
    adj: list[dict[int, int]] = [{} for _ in range(n)]
    for ai, bi, wi in zip(a.tolist(), b.tolist(), w.tolist(), strict=True):
        adj[ai][bi] = wi
        adj[bi][ai] = wi
    # plain Python lists: regions have few neighbours, and per-call numpy overhead would dominate
    feats = None if region_features is None else np.asarray(region_features, float).tolist()
    heap = [(int(sizes[r]), r) for r in range(n) if sizes[r] < min_size]
    heapq.heapify(heap)
    sizes_l = sizes.tolist()
    while heap:
        size, r = heapq.heappop(heap)
        if parent[r] != r or size != sizes_l[r] or size >= min_size or not adj[r]:
            continue
        if feats is None:
            t = max(adj[r].items(), key=lambda item: (item[1], -item[0]))[0]
        else:
            fr = feats[r]
            t = min(
                adj[r].items(),
                key=lambda item: (
                    sum((a - b) * (a - b) for a, b in zip(feats[item[0]], fr, strict=True)),
                    -item[1],
                    item[0],
                ),
            )[0]
            st, sr = sizes_l[t], sizes_l[r]
            feats[t] = [(a * st + b * sr) / (st + sr) for a, b in zip(feats[t], fr, strict=True)]
        # absorb r into t
        sizes_l[t] += sizes_l[r]
        parent[r] = t
        for nb, wt in adj[r].items():
            del adj[nb][r]
            if nb != t:
                adj[t][nb] = adj[t].get(nb, 0) + wt
                adj[nb][t] = adj[nb].get(t, 0) + wt
        adj[r] = {}
        if sizes_l[t] < min_size:
            heapq.heappush(heap, (sizes_l[t], t))
    # path-compress so that every region points at its final survivor
    for r in range(n):
        root = r
        while parent[root] != root:
            root = parent[root]
        parent[r] = root
    return parent


def relabel_raster(regions: np.ndarray) -> tuple[np.ndarray, int]:
    """Renumber region ids 0..R-1 in order of first appearance in raster order."""
    flat = regions.ravel()
    uniq, first = np.unique(flat, return_index=True)
    order = np.argsort(first)
    lut = np.empty(int(uniq.max()) + 1, dtype=np.int64)
    lut[uniq[order]] = np.arange(len(uniq))
    return lut[regions], len(uniq)


def connected_regions(
    labels: np.ndarray,
    min_region_size: int = 0,
    connectivity: int = 1,
) -> np.ndarray:
    """Split clusters into connected regions and merge the small ones.

    Parameters
    ----------
    labels
        (H, W) integer cluster labels.
    min_region_size
        regions with fewer pixels are merged into the neighbour they share the most
        border with, smallest first, until every region has at least ``min_region_size``
        pixels (unless it is the only region).
    connectivity
        1 for 4-connected regions, 2 for 8-connected.

    Returns
    -------
    ndarray of shape (H, W)
        int64 region ids 0..R-1, numbered in raster order of their first pixel.
    """
    regions, _ = _split_and_merge(labels, min_region_size, connectivity)
    return regions


def _split_and_merge(
    labels: np.ndarray, min_size: int, connectivity: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Regions after merging, and the original label carried by each final region."""
    labels = _check_labels(labels)
    min_size = check_positive_int(min_size, "min_region_size", minimum=0)
    regions, n = label_regions(labels, connectivity)
    parent = merge_small_regions(regions, n, min_size)
    # each region's original label: the label of any of its pixels
    first_pixel = np.full(n, -1, dtype=np.int64)
    flat = regions.ravel()
    first_pixel[flat[::-1]] = np.arange(flat.size - 1, -1, -1)
    label_of_region = labels.ravel()[first_pixel]
    final, _ = relabel_raster(parent[regions])
    carried = np.empty(int(final.max()) + 1, dtype=labels.dtype)
    carried[final.ravel()] = label_of_region[parent[regions].ravel()]
    return final, carried
