"""Losses for segmentation: cross-entropy with an ignore index and class weights, soft Dice, their
sum, and binary versions. Every loss takes (B, C, H, W) logits and (B, H, W) integer targets
(binary: (B, 1, H, W) or (B, H, W) logits and 0/1 targets), and ignores pixels whose target is
``ignore_index``, so loss, metrics and pictures agree on what is ignored.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def median_frequency_weights(pixel_counts, image_counts=None) -> torch.Tensor:
    """Median-frequency balancing (Eigen & Fergus; used by SegNet and the Tiramisu):
    ``w_c = median(freq) / freq_c`` with ``freq_c`` = pixels of class c divided by the pixels of
    the images where c appears (all pixels if ``image_counts`` is not given). Absent classes get 0.
    """
    counts = np.asarray(pixel_counts, dtype=np.float64)
    totals = counts.sum() if image_counts is None else np.asarray(image_counts, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        freq = np.where(counts > 0, counts / totals, 0.0)
    present = freq > 0
    if not present.any():
        raise ValueError("no class has any pixel; cannot compute class weights")
    weights = np.zeros_like(freq)
    weights[present] = np.median(freq[present]) / freq[present]
    return torch.tensor(weights, dtype=torch.float32)


def _check(logits: torch.Tensor, target: torch.Tensor) -> None:
    if logits.dim() != 4:
        raise ValueError(f"logits must be (B, C, H, W), got shape {tuple(logits.shape)}")
    if target.shape != (logits.shape[0], *logits.shape[2:]):
        raise ValueError(
            f"target shape {tuple(target.shape)} does not match logits {tuple(logits.shape)}: expected (B, H, W)"
        )


class CrossEntropyLoss(nn.Module):
    """Pixel-wise cross-entropy, averaged over the non-ignored pixels, with optional class weights."""

    def __init__(self, weight: torch.Tensor | None = None, ignore_index: int = 255) -> None:
        super().__init__()
        self.ignore_index = ignore_index
        self.register_buffer(
            "weight", None if weight is None else torch.as_tensor(weight, dtype=torch.float32)
        )

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The layer's (or network's) output for ``x``; see the class docstring."""
        _check(logits, target)
        return F.cross_entropy(
            logits, target.long(), weight=self.weight, ignore_index=self.ignore_index
        )


class DiceLoss(nn.Module):
    """Soft Dice loss, ``1 - mean_c (2 |P_c T_c| + s) / (|P_c| + |T_c| + s)`` with softmax
    probabilities P, one-hot targets T, over the non-ignored pixels of the batch; classes absent
    from both are left out of the mean."""

    def __init__(self, ignore_index: int = 255, smooth: float = 1.0) -> None:
        super().__init__()
        self.ignore_index, self.smooth = ignore_index, smooth

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The layer's (or network's) output for ``x``; see the class docstring."""
        _check(logits, target)
        c = logits.shape[1]
        valid = (target != self.ignore_index).unsqueeze(1)
        prob = logits.float().softmax(dim=1) * valid
        onehot = (
            F.one_hot(torch.where(valid[:, 0], target.long(), 0), c).permute(0, 3, 1, 2) * valid
        )
        dims = (0, 2, 3)
        inter = (prob * onehot).sum(dims)
        denom = prob.sum(dims) + onehot.sum(dims)
        dice = (2 * inter + self.smooth) / (denom + self.smooth)
        present = onehot.sum(dims) > 0
        return 1 - (dice[present].mean() if present.any() else dice.mean())


class CEDiceLoss(nn.Module):
    """Cross-entropy plus ``dice_weight`` times soft Dice."""

    def __init__(
        self, weight: torch.Tensor | None = None, ignore_index: int = 255, dice_weight: float = 1.0
    ) -> None:
        super().__init__()
        self.ce = CrossEntropyLoss(weight, ignore_index)
        self.dice = DiceLoss(ignore_index)
        self.dice_weight = dice_weight

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The layer's (or network's) output for ``x``; see the class docstring."""
        return self.ce(logits, target) + self.dice_weight * self.dice(logits, target)


def _binary(logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if logits.dim() == 4 and logits.shape[1] == 1:
        logits = logits[:, 0]
    if logits.shape != target.shape:
        raise ValueError(
            f"binary logits {tuple(logits.shape)} and target {tuple(target.shape)} differ in shape"
        )
    return logits, target


class BinaryCEDiceLoss(nn.Module):
    """Binary cross-entropy on logits plus ``dice_weight`` times soft Dice of the foreground;
    targets 0/1, ``ignore_index`` pixels left out."""

    def __init__(
        self, ignore_index: int = 255, dice_weight: float = 1.0, pos_weight: float | None = None
    ) -> None:
        super().__init__()
        self.ignore_index, self.dice_weight = ignore_index, dice_weight
        self.pos_weight = None if pos_weight is None else torch.tensor(float(pos_weight))

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The layer's (or network's) output for ``x``; see the class docstring."""
        logits, target = _binary(logits, target)
        valid = target != self.ignore_index
        if not valid.any():
            return logits.sum() * 0.0
        x, y = logits[valid].float(), target[valid].float()
        pw = None if self.pos_weight is None else self.pos_weight.to(x.device)
        bce = F.binary_cross_entropy_with_logits(x, y, pos_weight=pw)
        p = torch.sigmoid(x)
        dice = 1 - (2 * (p * y).sum() + 1) / (p.sum() + y.sum() + 1)
        return bce + self.dice_weight * dice
