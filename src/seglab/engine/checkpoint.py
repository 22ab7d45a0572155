"""Checkpoints: saved atomically, loaded without running code (``weights_only=True``).

A checkpoint is a dict with the model's state, the config it was trained with and its class map;
a training checkpoint adds the optimiser, scheduler, scaler and RNG states, the epoch and the best
validation score, so that a run resumes exactly where its last completed epoch ended.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import torch
from torch import nn

from .._checks import resolve_device
from ..data import ClassMap
from ..io import atomic_write_bytes
from ..models import build

#: The files a training run writes into its folder (what --overwrite replaces).
RUN_FILES = ("last.pt", "best.pt", "metrics.csv", "metrics.jsonl")


def save_checkpoint(path: str | os.PathLike, state: dict) -> None:
    """Write ``state`` to ``path`` atomically (a kill mid-write leaves the old file)."""
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Load a seglab checkpoint (``weights_only=True``: no code runs from the file).

    Older checkpoints kept the best score under ``best_miou``; it is read as ``best_score``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ValueError(f"{path} is not a seglab checkpoint ({first[:200]})") from None
    if not isinstance(ckpt, dict) or "model" not in ckpt or "config" not in ckpt:
        raise ValueError(f"{path} is not a seglab checkpoint (no model/config inside)")
    if "best_miou" in ckpt:
        ckpt.setdefault("best_score", ckpt.pop("best_miou"))
    return ckpt


def model_from_checkpoint(ckpt: dict) -> tuple[nn.Module, ClassMap]:
    """The network a checkpoint holds, with its weights, and its class map."""
    cfg = ckpt["config"]
    class_map = ClassMap.from_dict(ckpt["class_map"])
    model = build(
        cfg["model"]["name"], num_classes=class_map.num_classes, **cfg["model"]["options"]
    )
    load_state(model, ckpt["model"], cfg["model"]["name"])
    return model, class_map


def load_state(model: nn.Module, state: dict, name: str) -> None:
    """``model.load_state_dict(state)``, with a one-line error when they do not fit."""
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())[:300]  # one line
        raise ValueError(f"the checkpoint does not fit a {name} model: {detail}") from None


def load_model(checkpoint: str | os.PathLike, device: str = "auto") -> tuple[nn.Module, ClassMap]:
    """Load a checkpoint's network in eval mode on ``device``, with its class map."""
    model, class_map = model_from_checkpoint(load_checkpoint(checkpoint))
    return model.to(resolve_device(device)).eval(), class_map
