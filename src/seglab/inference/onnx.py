"""ONNX export, checked against PyTorch by onnxruntime on two sizes."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .._checks import model_device
from .runners import load_onnx, logits_of, model_in_channels


def export_onnx(
    model: nn.Module,
    path: str | os.PathLike,
    in_channels: int | None = None,
    sizes: Sequence[tuple[int, int]] = ((256, 256), (320, 416)),
    opset: int = 17,
    check: bool = True,
    atol: float | None = None,
) -> dict:
    """Write ``model`` as ONNX with dynamic batch, height and width (input ``image``
    (B, C, H, W) float32, output ``logits`` (B, K, H, W)), atomically.

    With ``check`` (the default) onnxruntime runs the file on two different sizes and the result
    is compared with PyTorch; returns ``{"sizes": ..., "max_abs_diff": [...]}`` and raises
    ``ValueError`` if a difference exceeds ``atol`` (default 1e-3 for logits; 0.05 for Mask
    R-CNN, whose boxes are in pixels). Mask R-CNN exports through torchvision's traceable path
    (opset >= 11): one (3, H, W) image in, ``boxes``, ``labels``, ``scores``, ``masks`` out. A
    patch classifier is exported as its fully convolutional twin. The TorchScript exporter is used
    where torch has it (fast, no extra package); otherwise ``torch.export`` (needs onnxscript).
    """
    from ..models import is_instance_model
    from ..models.sliding import as_dense

    if not isinstance(model, nn.Module):
        raise ValueError(f"export_onnx needs an nn.Module, got {type(model).__name__}")
    sizes = [tuple(int(v) for v in s) for s in sizes]
    if not sizes:
        raise ValueError("export_onnx needs at least one (height, width) in sizes")
    was_training = model.training
    dev = model_device(model)
    try:
        if is_instance_model(model):  # boxes in pixels, scores and mask probabilities
            write, compare = _detection_export(model.eval(), dev, sizes, max(opset, 11))
            atol = 0.05 if atol is None else atol
        else:
            net = as_dense(model).eval()
            c = in_channels or model_in_channels(net) or 3
            write, compare = _logits_export(_LogitsOnly(net).eval(), dev, c, sizes, opset)
            atol = 1e-3 if atol is None else atol
        return _export_checked(Path(path), write, compare if check else None, sizes, atol)
    finally:
        model.train(was_training)


def _export_checked(path: Path, write: Callable, compare: Callable | None, sizes, atol) -> dict:
    """Export to a temporary file, compare onnxruntime with PyTorch on each size, then rename
    into place: a failed export or check leaves nothing behind."""
    import warnings

    from ..io import file_mode

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".onnx", dir=path.parent)
    os.fchmod(fd, file_mode())  # mkstemp's 0600 is not what the user's umask asks for
    os.close(fd)
    report: dict = {"path": str(path), "sizes": [list(s) for s in sizes], "max_abs_diff": []}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the tracer's notes on Python control flow
            write(tmp)
        if compare is not None:
            session = load_onnx(tmp)
            for i, size in enumerate(sizes):
                report["max_abs_diff"].append(compare(session, i, size, report))
            if max(report["max_abs_diff"]) > atol:
                raise ValueError(
                    f"onnxruntime and PyTorch differ by up to {max(report['max_abs_diff']):.3g} "
                    f"(> {atol}) on sizes {sizes}"
                )
        os.chmod(tmp, file_mode())  # the exporter may have written a new file
        os.replace(tmp, path)
        tmp = None
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
    return report


def _logits_export(wrapped: nn.Module, dev, c: int, sizes, opset: int):
    """(write, compare) for a module returning (B, K, H, W) logits. ``wrapped`` is in eval mode:
    the exporter restores the mode it found afterwards."""

    def write(tmp: str) -> None:
        example = (torch.rand(1, c, *sizes[0], device=dev),)
        names = {"input_names": ["image"], "output_names": ["logits"]}
        try:
            axes = {0: "batch", 2: "height", 3: "width"}
            torch.onnx.export(
                wrapped,
                example,
                tmp,
                dynamo=False,
                dynamic_axes={"image": axes, "logits": axes},
                opset_version=opset,
                **names,
            )
        except (TypeError, RuntimeError, AttributeError, ImportError):
            from torch.export import Dim

            dims = {0: Dim("batch", max=4096), 2: Dim("height"), 3: Dim("width")}
            torch.onnx.export(
                wrapped,
                example,
                tmp,
                dynamo=True,
                dynamic_shapes=(dims,),
                opset_version=max(opset, 18),
                **names,
            )

    def compare(session, i: int, size, report: dict) -> float:
        x = torch.rand(1 + i, c, *size, generator=torch.Generator().manual_seed(i))
        with torch.inference_mode():
            ref = wrapped(x.to(dev)).float().cpu().numpy()
        got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
        if got.shape != ref.shape:
            raise ValueError(
                f"the exported model returns {got.shape} for input {tuple(x.shape)}, "
                f"PyTorch {ref.shape}: this model does not export with dynamic sizes"
            )
        return float(np.abs(got - ref).max())

    return write, compare


_DETECTION_OUTPUTS = ["boxes", "labels", "scores", "masks"]


def _detection_export(model: nn.Module, dev, sizes, opset: int):
    """(write, compare) for Mask R-CNN through torchvision's traceable path: input ``image``
    (3, H, W) float in [0, 1], one image, any H and W; outputs ``boxes`` (N, 4), ``labels``,
    ``scores``, ``masks`` (N, 1, H, W), N varying. The comparison on a random image requires the
    same detections scoring >= 0.3 (lower ones are near-ties that rounding may swap, in proposal
    ranking and NMS) and returns the largest difference of their boxes (pixels), scores and mask
    probabilities; both detection counts go to ``report["detections"]``."""

    def write(tmp: str) -> None:
        torch.onnx.export(
            model,
            ([torch.rand(3, *sizes[0], device=dev)],),
            tmp,
            dynamo=False,
            opset_version=opset,
            input_names=["image"],
            output_names=_DETECTION_OUTPUTS,
            dynamic_axes={"image": [1, 2], "boxes": [0], "labels": [0], "scores": [0]}
            | {"masks": [0, 1, 2, 3]},
        )

    def compare(session, i: int, size, report: dict) -> float:
        x = torch.rand(3, *size, generator=torch.Generator().manual_seed(i))
        with torch.inference_mode():
            ref = {k: v.float().cpu().numpy() for k, v in model([x.to(dev)])[0].items()}
        got = dict(zip(_DETECTION_OUTPUTS, session.run(None, {"image": x.numpy()}), strict=True))
        report.setdefault("detections", []).append([len(ref["scores"]), len(got["scores"])])
        sure = [np.argsort(-d["scores"])[: int((d["scores"] >= 0.3).sum())] for d in (ref, got)]
        if len(sure[0]) != len(sure[1]):
            raise ValueError(
                f"onnxruntime finds {len(sure[1])} objects scoring >= 0.3 on a {size} image, "
                f"PyTorch {len(sure[0])}"
            )
        if not len(sure[0]):
            return 0.0
        return max(
            float(np.abs(got[k][sure[1]] - ref[k][sure[0]]).max()) for k in _DETECTION_OUTPUTS
        )

    return write, compare


class _LogitsOnly(nn.Module):
    """Exports the logits tensor of models that return a dict (torchvision)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return logits_of(self.model(x))
