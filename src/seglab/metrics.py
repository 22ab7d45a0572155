"""Segmentation metrics. One definition each, used by tests, benchmarks and (later) training."""

from __future__ import annotations

import numpy as np


def binary_scores(pred: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """IoU, Dice, precision and recall of a boolean prediction against a boolean target.

    Empty prediction and empty target together count as a perfect score (1.0) rather than 0/0.
    """
    pred = np.asarray(pred, dtype=bool)
    target = np.asarray(target, dtype=bool)
    if pred.shape != target.shape:
        raise ValueError(
            f"prediction shape {pred.shape} does not match target shape {target.shape}"
        )
    tp = int(np.count_nonzero(pred & target))
    fp = int(np.count_nonzero(pred & ~target))
    fn = int(np.count_nonzero(~pred & target))

    def ratio(a: int, b: int) -> float:
        return 1.0 if b == 0 else a / b

    return {
        "iou": ratio(tp, tp + fp + fn),
        "dice": ratio(2 * tp, 2 * tp + fp + fn),
        "precision": ratio(tp, tp + fp),
        "recall": ratio(tp, tp + fn),
    }
