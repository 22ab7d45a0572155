"""The label arrays every metric takes: integers, one truth or several, shapes that match."""

from __future__ import annotations

import numpy as np


def check_labels(labels, name: str) -> np.ndarray:
    """An integer (or boolean) label array; floats are refused rather than rounded."""
    labels = np.asarray(labels)
    if not (np.issubdtype(labels.dtype, np.integer) or labels.dtype == np.bool_):
        raise ValueError(
            f"{name} must hold integer labels, got {labels.dtype}; cast with "
            ".astype(int) if the values are whole numbers, or label the values first "
            "(np.unique(x, return_inverse=True))"
        )
    return labels


def truths_of(truth, pred) -> tuple[list[np.ndarray], np.ndarray]:
    """``truth`` as a list of label arrays (one, or several human segmentations) and ``pred``,
    each checked and of the same shape."""
    pred = check_labels(pred, "pred")
    many = isinstance(truth, (list, tuple)) and len(truth) and np.ndim(truth[0]) == pred.ndim
    truths = [check_labels(t, "truth") for t in (truth if many else [truth])]
    if not truths:
        raise ValueError("truth is an empty list; give one segmentation or several")
    for t in truths:
        if t.shape != pred.shape:
            raise ValueError(f"truth is {t.shape} but the prediction is {pred.shape}")
    return truths, pred
