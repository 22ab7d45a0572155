"""Scores of partitions, whatever their label names: what clusterings are judged by.

The adjusted Rand index and the variation of information compare two labellings; the Berkeley
benchmark's region measures (Arbeláez et al., TPAMI 2011) compare a segmentation with one or
several human segmentations of the same image: segmentation covering, the probabilistic Rand
index, and the variation of information averaged over the humans.
"""

from __future__ import annotations

import numpy as np

from ._labels import truths_of
from .boundaries import boundary_f1


def _paired(truth: np.ndarray, pred: np.ndarray, ignore_index: int | None):
    """The labels of the pixels that count (ignore pixels of the truth dropped), as int64."""
    keep = np.ones(truth.shape, bool) if ignore_index is None else truth != ignore_index
    return truth[keep].astype(np.int64).ravel(), pred[keep].astype(np.int64).ravel()


def _contingency(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Counts of each (label of a, label of b) pair that occurs; the sizes of a's and b's
    segments."""
    _, ia = np.unique(a, return_inverse=True)
    _, ib = np.unique(b, return_inverse=True)
    ia, ib = ia.ravel(), ib.ravel()
    nb = int(ib.max()) + 1 if ib.size else 1
    return np.bincount(ia * nb + ib), np.bincount(ia), np.bincount(ib)


def _pairs(x) -> float:
    x = np.asarray(x, np.float64)
    return float((x * (x - 1) / 2).sum())


def adjusted_rand_index(truth, pred, ignore_index: int | None = None) -> float:
    """Adjusted Rand index of two labellings (Hubert & Arabie 1985): 1 for the same partition
    (label names do not matter), about 0 for a random one; scikit-learn's
    ``adjusted_rand_score``. Pixels whose truth is ``ignore_index`` are left out; NaN when no
    pixel is left."""
    (t,), pred = truths_of(truth, pred)
    a, b = _paired(t, pred, ignore_index)
    n = a.size
    if n == 0:
        return float("nan")
    if n == 1:
        return 1.0
    pairs, sa, sb = _contingency(a, b)
    index, sum_a, sum_b = _pairs(pairs), _pairs(sa), _pairs(sb)
    expected = sum_a * sum_b / (n * (n - 1) / 2)
    top = (sum_a + sum_b) / 2
    if top == expected:  # both partitions trivial (one cluster each, or all singletons)
        return 1.0
    return (index - expected) / (top - expected)


def rand_index(truth, pred, ignore_index: int | None = None) -> float:
    """Rand index: the fraction of pixel pairs that both labellings put together or both apart
    (scikit-learn's ``rand_score``); NaN when no pixel counts."""
    (t,), pred = truths_of(truth, pred)
    a, b = _paired(t, pred, ignore_index)
    n = a.size
    if n < 2:
        return float("nan") if n == 0 else 1.0
    pairs, sa, sb = _contingency(a, b)
    disagree = _pairs(sa) + _pairs(sb) - 2 * _pairs(pairs)
    return 1.0 - disagree / (n * (n - 1) / 2)


def _vi(truth: np.ndarray, pred: np.ndarray, ignore_index: int | None) -> float:
    a, b = _paired(truth, pred, ignore_index)
    if a.size == 0:
        return float("nan")
    pairs, sa, sb = _contingency(a, b)
    n = float(a.size)

    def entropy(counts):
        p = counts[counts > 0] / n
        return float(-(p * np.log2(p)).sum())

    return 2 * entropy(pairs) - entropy(sa) - entropy(sb)


def variation_of_information(truth, pred, ignore_index: int | None = None) -> float:
    """Variation of information H(T|P) + H(P|T) in bits (Meila 2007; scikit-image's
    ``variation_of_information`` summed): 0 for the same partition, larger is worse. With several
    truths (a list), the mean over them, as the Berkeley benchmark reports it. NaN when no pixel
    counts."""
    truths, pred = truths_of(truth, pred)
    values = [_vi(t, pred, ignore_index) for t in truths]
    return float("nan") if any(np.isnan(values)) else float(np.mean(values))


def probabilistic_rand_index(truth, pred, ignore_index: int | None = None) -> float:
    """Probabilistic Rand index (Unnikrishnan et al., 2007) of ``pred`` against one or several
    truths: the fraction of pixel pairs on which ``pred`` agrees with the humans, each pair
    weighted by how many of them put it together. It equals the mean over the truths of the Rand
    index, which is how the Berkeley benchmark computes it."""
    truths, pred = truths_of(truth, pred)
    values = [rand_index(t, pred, ignore_index) for t in truths]
    return float("nan") if any(np.isnan(values)) else float(np.mean(values))


def covering_counts(truth, pred, ignore_index: int | None = None) -> tuple[float, float]:
    """``(sum over truths and their regions R of |R| * best IoU of R with a region of pred,
    sum of the truths' pixels)``: the counts behind :func:`segmentation_covering`, which sum over
    images for a dataset's covering."""
    truths, pred = truths_of(truth, pred)
    covered = total = 0.0
    for t in truths:
        a, b = _paired(t, pred, ignore_index)
        if a.size == 0:
            continue
        _, ia = np.unique(a, return_inverse=True)
        _, ib = np.unique(b, return_inverse=True)
        ia, ib = ia.ravel(), ib.ravel()
        na, nb = int(ia.max()) + 1, int(ib.max()) + 1
        inter = np.bincount(ia * nb + ib, minlength=na * nb).reshape(na, nb).astype(np.float64)
        size_a, size_b = inter.sum(1), inter.sum(0)
        iou = inter / (size_a[:, None] + size_b[None, :] - inter)
        covered += float((size_a * iou.max(1)).sum())
        total += float(a.size)
    return covered, total


def segmentation_covering(truth, pred, ignore_index: int | None = None) -> float:
    """Covering of the truth by ``pred`` (Arbeláez et al., 2011): each true region R counts with
    its size times its best overlap (IoU) with a region of ``pred``, over the truth's pixels; with
    several truths, their counts are summed, as the Berkeley benchmark sums them. 1 when ``pred``
    reproduces the truth; NaN when no pixel counts."""
    covered, total = covering_counts(truth, pred, ignore_index)
    return covered / total if total else float("nan")


def partition_scores(
    truth, pred, ignore_index: int | None = None, max_dist: float = 0.0075
) -> dict[str, float]:
    """What any segmentation can be scored by, classes or not: adjusted Rand index, variation of
    information, segmentation covering, probabilistic Rand index and the Berkeley boundary
    F-measure (``boundary_f1``) against the truth. NaN everywhere when no truth pixel counts."""
    truths, pred = truths_of(truth, pred)
    return {
        "adjusted_rand_index": adjusted_rand_index(truths[0], pred, ignore_index),
        "variation_of_information": variation_of_information(truths, pred, ignore_index),
        "segmentation_covering": segmentation_covering(truths, pred, ignore_index),
        "probabilistic_rand_index": probabilistic_rand_index(truths, pred, ignore_index),
        "boundary_f1": boundary_f1(truths, pred, max_dist, ignore_index=ignore_index)["f1"],
    }
