"""From cluster labels to regions: connected components, and merging of regions that are too small.

Clustering in feature space says nothing about connectivity: one k-means cluster can be scattered
over the image in hundreds of specks. :func:`connected_regions` splits every cluster into its
connected pieces and absorbs the pieces smaller than ``min_size`` into a neighbour, as the EDISON
mean-shift system does with its minimum region area.
"""

from __future__ import annotations

import heapq

import numpy as np

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
    """Number the connected pieces of equal label 0..R-1 in raster order; returns (regions, R).

    ``connectivity`` 1: 4-neighbours, 2: 8-neighbours (as ``skimage.measure.label``, which a
    test checks this against)."""
    from ._region_kernels import connect_chained

    labels = _check_labels(labels)
    connectivity = _check_connectivity(connectivity)
    shifted = labels.astype(np.int64) - labels.min()
    if shifted.max() >= 2**53:  # float64 would round such labels: use their ranks
        shifted = np.unique(labels, return_inverse=True)[1].reshape(labels.shape)
    values = shifted.astype(np.float64)[:, :, None]
    regions, n = connect_chained(values, 0.5, connectivity == 2)
    return regions.reshape(labels.shape), int(n)


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
    labels : ndarray of shape (H, W)
        (H, W) integer cluster labels.
    min_region_size : int
        regions with fewer pixels are merged into the neighbour they share the most
        border with, smallest first, until every region has at least ``min_region_size``
        pixels (unless it is the only region).
    connectivity : {1, 2}
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


def _adjacent_pairs(labels: np.ndarray) -> np.ndarray:
    """(E, 2) pairs of 4-adjacent regions, each pair once, smaller label first."""
    a = np.concatenate([labels[:, :-1].ravel(), labels[:-1, :].ravel()])
    b = np.concatenate([labels[:, 1:].ravel(), labels[1:, :].ravel()])
    return _unique_pairs(a, b, int(labels.max()) + 1)


def _unique_pairs(a: np.ndarray, b: np.ndarray, n: int) -> np.ndarray:
    keep = a != b
    lo, hi = np.minimum(a[keep], b[keep]), np.maximum(a[keep], b[keep])
    key = np.unique(lo.astype(np.int64) * n + hi)  # one sort of integers, not of rows
    return np.stack([key // n, key % n], axis=1)


def _join(n: int, edges: np.ndarray, modes: np.ndarray, counts: np.ndarray):
    """Merge the regions that ``edges`` connect (transitively); modes become count-weighted
    means. Returns each old region's new label (numbered in order of the old labels), and the
    new modes and counts."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    graph = coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n, n))
    _, comp = connected_components(graph, directed=False)
    _, first = np.unique(comp, return_index=True)  # renumber by each group's first region
    order = np.empty(len(first), np.int64)
    order[np.argsort(first)] = np.arange(len(first))
    new = order[comp]
    m = len(first)
    new_counts = np.bincount(new, weights=counts, minlength=m)
    new_modes = (
        np.stack([np.bincount(new, weights=counts * col, minlength=m) for col in modes.T], axis=1)
        / new_counts[:, None]
    )
    return new, new_modes, new_counts


def fuse_regions(
    values: np.ndarray,
    bandwidth: np.ndarray | float,
    min_region_size: int = 0,
    threshold: float = 1.0,
    fuse_distance: float = 0.5,
    lightness: bool = False,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Regions of a mean-shift filtered image, as EDISON forms them (Comaniciu & Meer 2002,
    section 5; EDISON's ``msImageProcessor::Segment``).

    1. *Connect*: 8-adjacent pixels whose filtered range values differ by less than
       ``threshold`` feature units in every channel, from the pixel they are reached from, form a
       region; its mode is the range value of its first pixel (raster order).
    2. *Transitive closure*, twice: 4-adjacent regions whose modes lie within ``fuse_distance``
       range bandwidths join; modes become pixel-count-weighted means. With ``lightness`` (a
       colour space whose first channel is L*), differences in L* count twice above L* = 80, as
       EDISON does.
    3. *Pruning*: until no region is smaller than ``min_region_size`` pixels, each small region
       joins the adjacent region with the nearest mode.

    Parameters
    ----------
    values : ndarray of shape (H, W, C)
        Each pixel's filtered range value (its mode), in feature units.
    bandwidth : float or ndarray of shape (C,)
        The range bandwidth(s), in the same units.

    Returns
    -------
    labels : ndarray of shape (H, W)
        Region ids 0..R-1 (in raster order of each region's first pixel).
    modes : ndarray of shape (R, C)
        Each region's mode.
    n_connected : int
        Regions after step 1 (before fusing and pruning).
    """
    from ._region_kernels import connect_chained

    h, w, c = values.shape
    values = np.ascontiguousarray(values, dtype=np.float64)
    scale = np.broadcast_to(np.asarray(bandwidth, np.float64), (c,))
    labels = connect_chained(values, float(threshold), True)[0].reshape(h, w)
    n = int(labels.max()) + 1
    first = np.full(n, h * w, np.int64)
    np.minimum.at(first, labels.ravel(), np.arange(h * w))
    modes = values.reshape(-1, c)[first]
    counts = np.bincount(labels.ravel(), minlength=n).astype(np.float64)
    n_connected = n
    edges = _adjacent_pairs(labels)  # between the connected regions, once
    current = np.arange(n)  # each connected region's current region

    def merge(accepted: np.ndarray) -> None:
        nonlocal current, modes, counts, n, pairs
        new, modes, counts = _join(n, accepted, modes, counts)
        current, n = new[current], len(counts)
        pairs = _unique_pairs(current[edges[:, 0]], current[edges[:, 1]], n)

    pairs = edges
    for _ in range(2):
        d2 = (((modes[pairs[:, 0]] - modes[pairs[:, 1]]) / scale) ** 2).sum(axis=1)
        if lightness:  # EDISON counts L* differences 4x (squared) from a bright region's side
            l2 = ((modes[pairs[:, 0], 0] - modes[pairs[:, 1], 0]) / scale[0]) ** 2
            darker = np.minimum(modes[pairs[:, 0], 0], modes[pairs[:, 1], 0])
            d2 = d2 + np.where(darker > 80, 3 * l2, 0.0)  # either side may accept the pair
        near = pairs[d2 < fuse_distance**2]
        if len(near):
            merge(near)
    while n > 1 and counts.min() < min_region_size:
        both = np.concatenate([pairs, pairs[:, ::-1]])
        both = both[counts[both[:, 0]] < min_region_size]
        dist = (((modes[both[:, 0]] - modes[both[:, 1]]) / scale) ** 2).sum(axis=1)
        order = np.lexsort((dist, both[:, 0]))  # per small region, its nearest neighbour first
        both = both[order]
        keep = np.r_[True, both[1:, 0] != both[:-1, 0]]
        merge(both[keep])
    labels = current[labels]
    return labels, modes, n_connected
