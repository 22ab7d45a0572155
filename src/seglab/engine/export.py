"""Export a checkpoint's network to ONNX with what a user of the file needs beside it."""

from __future__ import annotations

import os
from pathlib import Path

from .. import io
from ..inference import export_onnx
from ..models import is_instance_model
from .checkpoint import load_checkpoint, model_from_checkpoint


def export_checkpoint(
    checkpoint: str | os.PathLike,
    path: str | os.PathLike,
    opset: int = 17,
    overwrite: bool = False,
) -> dict:
    """Export a seglab checkpoint's network to ``path`` (see :func:`export_onnx`) and write
    ``path`` with ``.json``: the model, its classes, the input and output convention, and the
    sizes checked with their largest difference from PyTorch. Returns the check's report.

    An existing file (the model or its ``.json``) is replaced only with ``overwrite``.
    """

    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a folder; give the .onnx file to write")
    for parent in path.parents:
        if parent.exists() and not parent.is_dir():
            raise ValueError(f"`out` {path}: {parent} is a file, not a folder")
    for target in (path, path.with_suffix(".json")):
        if target.exists() and not overwrite:
            raise ValueError(
                f"{target} exists; pass `overwrite=True` to replace it, or another `out`"
            )

    ckpt = load_checkpoint(checkpoint)
    model, class_map = model_from_checkpoint(ckpt)
    report = export_onnx(model, path, opset=opset)
    if is_instance_model(model):
        spec = {
            "input": "image: float32 (3, H, W), RGB scaled to [0, 1], one image; any H, W",
            "output": "boxes (N, 4) xyxy, labels (N,), scores (N,), masks (N, 1, H, W)",
        }
    else:
        spec = {
            "input": "image: float32 (B, 3, H, W), RGB scaled to [0, 1]; any B, H, W",
            "output": "logits: float32 (B, classes, H, W)",
        }
    io.write_json(
        Path(path).with_suffix(".json"),
        {
            "model": ckpt["config"]["model"]["name"],
            "classes": list(class_map.names),
            **spec,
            "checked_sizes": report["sizes"],
            "max_abs_diff": report["max_abs_diff"],
        },
    )
    return report
