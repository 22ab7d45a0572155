"""Per-class scores of label maps: the FCN paper's confusion-matrix metrics and binary scores."""

from __future__ import annotations

import numpy as np
import torch

from .._checks import check_positive_int


def _as_label_tensor(x, name: str) -> torch.Tensor:
    """Integer labels as an int64 tensor (numpy arrays of any integer dtype, or tensors)."""
    if isinstance(x, torch.Tensor):
        if x.is_floating_point() or x.is_complex():
            raise ValueError(f"{name} must hold integer class labels, got {x.dtype}")
        return x.long()
    x = np.asarray(x)
    if not (np.issubdtype(x.dtype, np.integer) or x.dtype == np.bool_):
        raise ValueError(f"{name} must hold integer class labels, got {x.dtype}")
    return torch.from_numpy(x.astype(np.int64))


def binary_scores(truth: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """IoU, Dice, precision and recall of a boolean prediction against a boolean truth (the
    foreground class of :class:`ConfusionMatrix`).

    Empty prediction and empty target together count as a perfect score (1.0) rather than 0/0.
    """
    truth = np.asarray(truth, dtype=bool)
    pred = np.asarray(pred, dtype=bool)
    cm = ConfusionMatrix(2, ignore_index=None)
    cm.update(truth, pred)
    m = cm.compute()
    pick = {"iou": "iou", "dice": "dice", "precision": "precision", "recall": "accuracy"}
    return {k: 1.0 if np.isnan(m[v][1]) else float(m[v][1]) for k, v in pick.items()}


class ConfusionMatrix:
    """Accumulates an (num_classes x num_classes) confusion matrix over batches and gives the FCN
    paper's four metrics (Long et al. 2015, section 4) and per-class scores.

    ``n[i, j]`` counts pixels of true class i predicted as j. Pixels whose truth is
    ``ignore_index`` count nowhere. Updates accept numpy arrays or torch tensors of integer labels
    with equal shapes; tensors stay on their device (the matrix lives where the first update was).

    ``compute()`` returns, with t_i = sum_j n_ij and IoU_i = n_ii / (t_i + sum_j n_ji - n_ii):

    * ``pixel_accuracy`` = sum_i n_ii / sum_i t_i
    * ``mean_accuracy`` = mean over classes present in the target of n_ii / t_i
    * ``mean_iou`` = mean of IoU_i over classes present in the target or the prediction
    * ``fw_iou`` = sum_i t_i IoU_i / sum_i t_i
    * ``iou``, ``accuracy`` (recall), ``precision``, ``dice``: one value per class, NaN where the
      class is absent from both target and prediction (it is left out of the means, not counted
      as 0 or 1), and ``confusion``, the matrix itself.
    """

    def __init__(self, num_classes: int, ignore_index: int | None = 255) -> None:
        check_positive_int(num_classes, "num_classes")
        if ignore_index is not None and 0 <= ignore_index < num_classes:
            raise ValueError(f"ignore_index {ignore_index} is one of the {num_classes} classes")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.reset()

    def reset(self) -> None:
        """Forget every update."""
        self._matrix = None

    def update(self, truth, pred) -> None:
        """Add a batch: ``truth`` and ``pred``, integer labels of the same shape."""
        target, pred = _as_label_tensor(truth, "truth"), _as_label_tensor(pred, "prediction")
        target = target.to(pred.device)
        if pred.shape != target.shape:
            raise ValueError(
                f"truth shape {tuple(target.shape)} does not match prediction shape {tuple(pred.shape)}"
            )
        k = self.num_classes
        if self.ignore_index is not None:
            keep = target != self.ignore_index
            pred, target = pred[keep], target[keep]
        bad = (target < 0) | (target >= k)
        if bad.any():
            raise ValueError(
                f"truth value {int(target[bad][0])} is neither a class (0..{k - 1}) nor the "
                f"ignore index {self.ignore_index}; map the truth's ids to 0..{k - 1} "
                "(seglab.data.ClassMap) or raise num_classes"
            )
        bad = (pred < 0) | (pred >= k)
        if bad.any():
            raise ValueError(f"prediction value {int(pred[bad][0])} is not a class (0..{k - 1})")
        counts = torch.bincount(target.reshape(-1) * k + pred.reshape(-1), minlength=k * k).reshape(
            k, k
        )
        self._matrix = (
            counts if self._matrix is None else self._matrix + counts.to(self._matrix.device)
        )

    @property
    def matrix(self) -> np.ndarray:
        """The confusion matrix as int64 numpy (rows: truth, columns: prediction)."""
        if self._matrix is None:
            return np.zeros((self.num_classes, self.num_classes), dtype=np.int64)
        return self._matrix.cpu().numpy().astype(np.int64)

    def compute(self) -> dict:
        """The metrics of the matrix so far (see the class docstring)."""
        n = self.matrix.astype(np.float64)
        tp = np.diag(n)
        t = n.sum(axis=1)  # pixels of each true class
        p = n.sum(axis=0)  # pixels predicted as each class
        union = t + p - tp
        total = t.sum()
        with np.errstate(invalid="ignore", divide="ignore"):
            iou = np.where(union > 0, tp / union, np.nan)
            acc = np.where(t > 0, tp / t, np.nan)
            prec = np.where(p > 0, tp / p, np.where(union > 0, 0.0, np.nan))
            dice = np.where(union > 0, 2 * tp / (t + p), np.nan)
        present = union > 0
        return {
            "pixel_accuracy": float(tp.sum() / total) if total else float("nan"),
            "mean_accuracy": float(np.nanmean(acc)) if np.any(t > 0) else float("nan"),
            "mean_iou": float(np.nanmean(iou)) if present.any() else float("nan"),
            "fw_iou": float((t[present] * iou[present]).sum() / total) if total else float("nan"),
            "iou": iou.tolist(),
            "accuracy": acc.tolist(),
            "precision": prec.tolist(),
            "dice": dice.tolist(),
            "confusion": self.matrix.tolist(),
        }
