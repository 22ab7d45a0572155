"""Boundary scores: the Berkeley segmentation benchmark's precision, recall and F-measure.

:func:`boundary_f1` follows the benchmark (Martin et al., PAMI 2004; the BSDS500 code of
Arbeláez et al., 2011) step by step: boundaries of a segmentation as its ``seg2bdry`` draws them,
the machine's boundary map thinned to one pixel (``bwmorph(..., 'thin', inf)``, here scikit-image's
``thin``, the same algorithm), each machine pixel matched to at most one true pixel and each true
pixel to at most one machine pixel (``correspondPixels``) within ``max_dist`` times the image
diagonal, and the counts summed over several human segmentations: a machine pixel is right if it
matches a pixel of any human, recall counts every human's pixels.

:func:`boundary_f1_nearest` is the fast, looser score that earlier versions called by the
benchmark's name: every boundary pixel within a fixed distance of the other map counts,
many-to-one, so a double or ragged edge is not penalised: an upper bound of the one-to-one score
at the same distance.
"""

from __future__ import annotations

import numpy as np

from ._labels import truths_of


def boundaries(labels: np.ndarray) -> np.ndarray:
    """Pixels whose right or lower neighbour has another label (thin, one-sided boundaries): what
    the overlays draw."""
    labels = np.asarray(labels)
    edge = np.zeros(labels.shape, bool)
    edge[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    edge[:-1, :] |= labels[:-1, :] != labels[1:, :]
    return edge


def seg2bdry(labels: np.ndarray) -> np.ndarray:
    """The boundary map of a segmentation at its own size, as the benchmark's
    ``seg2bdry(seg, 'imageSize')`` draws it: a pixel is on a boundary when the 2 x 2 block it
    starts holds more than one label; in the last row and column, when its right (lower)
    neighbour differs."""
    s = np.asarray(labels)
    out = np.zeros(s.shape, bool)
    right = s[:, :-1] != s[:, 1:]  # (H, W-1)
    down = s[:-1, :] != s[1:, :]  # (H-1, W)
    out[:-1, :-1] = right[:-1] | right[1:] | down[:, :-1] | down[:, 1:]
    out[-1, :-1] = right[-1]
    out[:-1, -1] = down[:, -1]
    return out


def correspond_pixels(pred_map: np.ndarray, truth_map: np.ndarray, radius: float):
    """One-to-one matching of two boundary maps: the largest set of (machine, true) pixel pairs
    no farther apart than ``radius`` pixels, each pixel in at most one pair (the benchmark's
    ``correspondPixels`` solves the same assignment with a large cost for unmatched pixels, which
    makes the number of pairs as large as it can be). Returns the boolean maps of matched pixels
    ``(pred_matched, truth_matched)``."""
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import maximum_bipartite_matching

    pred_map, truth_map = np.asarray(pred_map, bool), np.asarray(truth_map, bool)
    h, w = pred_map.shape
    py, px = np.nonzero(pred_map)
    index = np.full(truth_map.shape, -1, np.int64)
    index[truth_map] = np.arange(int(truth_map.sum()))
    r = int(np.floor(radius))
    rows, cols = [], []
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            if dy * dy + dx * dx > radius * radius:
                continue
            y, x = py + dy, px + dx
            inside = (y >= 0) & (y < h) & (x >= 0) & (x < w)
            j = np.full(py.shape, -1, np.int64)
            j[inside] = index[y[inside], x[inside]]
            hit = np.nonzero(j >= 0)[0]
            rows.append(hit)
            cols.append(j[hit])
    n1, n2 = py.size, int(truth_map.sum())
    pred_matched = np.zeros(pred_map.shape, bool)
    truth_matched = np.zeros(truth_map.shape, bool)
    if n1 == 0 or n2 == 0:
        return pred_matched, truth_matched
    rows_, cols_ = np.concatenate(rows), np.concatenate(cols)
    graph = csr_matrix((np.ones(rows_.size, np.int8), (rows_, cols_)), shape=(n1, n2))
    match = maximum_bipartite_matching(graph, perm_type="column")  # row i -> column or -1
    matched_rows = np.nonzero(match >= 0)[0]
    pred_matched[py[matched_rows], px[matched_rows]] = True
    ty, tx = np.nonzero(truth_map)
    truth_matched[ty[match[matched_rows]], tx[match[matched_rows]]] = True
    return pred_matched, truth_matched


def boundary_counts(
    truth, pred, max_dist: float = 0.0075, *, ignore_index: int | None = None, thin: bool = True
) -> dict[str, int]:
    """The benchmark's four counts for one image, which sum over images (for a dataset's
    precision and recall, or the best threshold at ODS): ``matched_pred`` of ``pred_pixels``
    machine boundary pixels are right; ``matched_truth`` of ``truth_pixels`` true ones (summed
    over the truths) are found. Boundaries that touch ``ignore_index`` pixels count nowhere."""
    from scipy import ndimage
    from skimage.morphology import thin as thin_map

    truths, pred = truths_of(truth, pred)
    valid = np.ones(pred.shape, bool)
    if ignore_index is not None:
        for t in truths:
            valid &= ~ndimage.binary_dilation(t == ignore_index, iterations=1)
    machine = seg2bdry(pred) & valid
    if thin:
        machine = thin_map(machine)
    radius = max_dist * float(np.hypot(*pred.shape))
    accepted = np.zeros(pred.shape, bool)
    matched_truth = truth_pixels = 0
    for t in truths:
        human = seg2bdry(t) & valid
        pred_matched, truth_matched = correspond_pixels(machine, human, radius)
        accepted |= pred_matched
        matched_truth += int(truth_matched.sum())
        truth_pixels += int(human.sum())
    return {
        "matched_pred": int(accepted.sum()),
        "pred_pixels": int(machine.sum()),
        "matched_truth": matched_truth,
        "truth_pixels": truth_pixels,
    }


def scores_from_counts(counts: dict) -> dict[str, float]:
    """Precision, recall and F from :func:`boundary_counts` (one image's, or summed). Where a map
    is empty, its side scores 1 (nothing claimed wrongly, nothing missed) rather than the
    benchmark's 0 for 0/0; both empty gives F = 1."""
    p = counts["matched_pred"] / counts["pred_pixels"] if counts["pred_pixels"] else 1.0
    r = counts["matched_truth"] / counts["truth_pixels"] if counts["truth_pixels"] else 1.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {"precision": p, "recall": r, "f1": f}


def boundary_f1(
    truth, pred, max_dist: float = 0.0075, *, ignore_index: int | None = None
) -> dict[str, float]:
    """The Berkeley benchmark's boundary precision, recall and F-measure of a segmentation.

    Parameters
    ----------
    truth : array of int, or list of them
        One segmentation or several human segmentations of the image (labels: any integers).
    pred : array of int
        The segmentation to score, of the same shape.
    max_dist : float
        Matching distance as a fraction of the image diagonal (the benchmark's 0.0075: 4.3 pixels
        at 481 x 321).
    ignore_index : int, optional
        A truth label whose pixels (and boundaries touching them) count nowhere.

    Returns
    -------
    dict
        ``precision``, ``recall``, ``f1`` and the counts of :func:`boundary_counts`; NaN scores
        when every truth pixel is ignored.
    """
    truths, pred = truths_of(truth, pred)
    if ignore_index is not None and all((t == ignore_index).all() for t in truths):
        nan = float("nan")
        return {"precision": nan, "recall": nan, "f1": nan}
    counts = boundary_counts(truths, pred, max_dist, ignore_index=ignore_index)
    return scores_from_counts(counts) | counts


def boundary_f1_nearest(
    truth, pred, tolerance: float = 2.0, ignore_index: int | None = None
) -> dict[str, float]:
    """A fast, loose boundary F: a boundary pixel of either map counts when the other map has one
    within ``tolerance`` pixels, many-to-one (no one-to-one matching, no thinning, one truth). An
    upper bound of :func:`boundary_f1` at the same distance, not the benchmark's score."""
    from scipy import ndimage

    (truth,), pred = truths_of(truth, pred)
    valid = np.ones(truth.shape, bool)
    if ignore_index is not None:
        if (truth == ignore_index).all():
            nan = float("nan")
            return {"precision": nan, "recall": nan, "f1": nan}
        valid = ~ndimage.binary_dilation(truth == ignore_index, iterations=1)
    bt = boundaries(truth) & valid
    bp = boundaries(pred) & valid
    if not bt.any() and not bp.any():
        return {"precision": 1.0, "recall": 1.0, "f1": 1.0}
    if not bt.any() or not bp.any():
        return {"precision": float(not bp.any()), "recall": float(not bt.any()), "f1": 0.0}
    near_truth = ndimage.distance_transform_edt(~bt) <= tolerance
    near_pred = ndimage.distance_transform_edt(~bp) <= tolerance
    precision = float((bp & near_truth).sum() / bp.sum())
    recall = float((bt & near_pred).sum() / bt.sum())
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}
