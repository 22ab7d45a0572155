"""Model runners: a seglab / torchvision module or an ONNX model as one batch -> probabilities function."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class _OnnxRunner:
    """An onnxruntime session called like a module on CPU tensors."""

    def __init__(self, session) -> None:
        self.session = session
        inp = session.get_inputs()[0]
        self.input_name = inp.name
        c = inp.shape[1] if len(inp.shape) == 4 else None
        self.in_channels = c if isinstance(c, int) else None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        out = self.session.run(None, {self.input_name: x.cpu().numpy().astype(np.float32)})[0]
        return torch.from_numpy(out)


def load_onnx(path: str | os.PathLike, device: str = "cpu"):
    """An ``onnxruntime.InferenceSession`` for ``path`` (CUDA provider when asked and present)."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise ValueError("ONNX models need onnxruntime: pip install 'seglab[onnx]'") from None
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ONNX model not found: {path}")
    providers = ["CPUExecutionProvider"]
    if str(device).startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    try:
        return ort.InferenceSession(str(path), providers=providers)
    except Exception as exc:
        raise ValueError(f"{path} is not an ONNX model onnxruntime can load: {exc}") from None


def model_in_channels(model: nn.Module) -> int | None:
    """The input channels a model expects, where it says (None otherwise)."""
    declared = getattr(model, "in_channels", None)
    if isinstance(declared, int):
        return declared
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            return m.in_channels
    return None


def logits_of(out: Any) -> torch.Tensor:
    """The logits tensor of a model's output: a tensor, torchvision's dict ("out"), or the first
    element of a tuple/list."""
    if isinstance(out, dict):
        if "out" not in out:
            raise ValueError(f"the model returned a dict without an 'out' entry: {list(out)}")
        out = out["out"]
    elif isinstance(out, (tuple, list)):
        out = out[0]
    if not isinstance(out, torch.Tensor) or out.dim() != 4:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"the model must return (B, K, h, w) logits, got {shape}")
    return out


def make_runner(model, device: torch.device, amp: bool) -> tuple[Callable, int | None]:
    """(function: (B, C, h, w) CPU float batch -> (B, K, h, w) CPU float32 probabilities,
    the number of input channels the model expects, if known)."""
    if isinstance(model, (str, os.PathLike)):
        model = load_onnx(model, str(device))
    if hasattr(model, "get_inputs") and hasattr(model, "run"):  # an onnxruntime session
        runner = _OnnxRunner(model)
        forward, channels = runner, runner.in_channels
    elif isinstance(model, nn.Module):
        from ..models.sliding import as_dense

        model = as_dense(model)
        channels = model_in_channels(model)

        def forward(x: torch.Tensor) -> torch.Tensor:
            x = x.to(device, non_blocking=True)
            dtype = torch.bfloat16 if device.type == "cpu" else torch.float16
            with torch.autocast(device.type, dtype=dtype, enabled=amp):
                return logits_of(model(x)).float()

    else:
        raise ValueError(
            f"model must be an nn.Module, an ONNX file or an onnxruntime session, got {type(model)}"
        )

    def run(x: torch.Tensor) -> torch.Tensor:
        logits = logits_of(forward(x))
        if logits.shape[-2:] != x.shape[-2:]:  # lower-resolution logits: back to the tile
            logits = F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)
        if logits.shape[1] == 1:  # one logit per pixel: a binary model
            p = torch.sigmoid(logits)
            return torch.cat([1 - p, p], 1).cpu()
        return logits.softmax(1).cpu()

    return run, channels
