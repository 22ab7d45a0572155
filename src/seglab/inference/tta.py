"""Test-time augmentation: flips and scales averaged in probability space."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F


def parse_tta(tta) -> tuple[list[str], list[float]]:
    """``("hflip", "vflip", (0.75, 1.0, 1.25))`` -> (flips, scales); also a comma-separated
    string such as ``"hflip,0.75,1.25"``. The identity (no flip, scale 1) is always included."""
    if tta is None or tta == ():
        return [], [1.0]
    if isinstance(tta, str):
        tta = [t.strip() for t in tta.split(",") if t.strip()]
    flips, scales = [], []
    for item in tta:
        if isinstance(item, str) and item in ("hflip", "vflip"):
            flips.append(item)
        elif isinstance(item, (int, float)) and not isinstance(item, bool):
            scales.append(float(item))
        elif isinstance(item, (tuple, list)):
            scales.extend(float(s) for s in item)
        else:
            try:
                scales.append(float(item))
            except (TypeError, ValueError):
                raise ValueError(
                    f"unknown test-time augmentation {item!r}: use 'hflip', 'vflip' or scales "
                    "such as (0.75, 1.0, 1.25)"
                ) from None
    if any(not math.isfinite(s) or s <= 0 for s in scales):
        raise ValueError(f"TTA scales must be positive numbers, got {scales}")
    scales = sorted(set(scales) | {1.0})
    return sorted(set(flips)), scales


def with_tta(run: Callable, flips: list[str], scales: list[float]) -> Callable:
    """Average the probabilities over every (scale, flip) combination, each mapped back."""
    if not flips and scales == [1.0]:
        return run
    combos = list(itertools.product(scales, [None, *flips]))

    def tta_run(x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        total = None
        for scale, flip in combos:
            xi = x
            if scale != 1.0:
                size = (max(1, round(h * scale)), max(1, round(w * scale)))
                xi = F.interpolate(xi, size=size, mode="bilinear", align_corners=False)
            dims = {"hflip": [-1], "vflip": [-2], None: None}[flip]
            if dims:
                xi = xi.flip(dims)
            p = run(xi)
            if dims:
                p = p.flip(dims)
            if scale != 1.0:
                p = F.interpolate(p, size=(h, w), mode="bilinear", align_corners=False)
            total = p if total is None else total + p
        return total / len(combos)

    return tta_run
