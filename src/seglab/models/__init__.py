"""Segmentation networks, one module per architecture, built by name from one registry.

>>> from seglab.models import build, list_models
>>> model = build("fcn8s", num_classes=21)            # VGG16 FCN-8s
>>> model = build("unet", num_classes=2, padding="valid")  # the original U-Net

Every model maps a (B, in_channels, H, W) tensor to (B, num_classes, H, W) logits for any H x W
(the valid-padding U-Net returns its documented smaller output), except ``patch_classifier``, the
sliding-window baseline, which classifies (B, C, P, P) patches (see :mod:`seglab.models.sliding`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from .fc_densenet import FCDenseNet, fc_densenet56, fc_densenet67, fc_densenet103
from .fcn import FCN, FCNResNet, fcn8s, fcn16s, fcn32s
from .mask_rcnn import is_instance_model, mask_rcnn
from .segnet import DeconvNet, SegNet, deconvnet, segnet
from .sliding import PatchClassifier, patch_classifier
from .unet import UNet, unet, valid_output_size


@dataclass(frozen=True)
class ModelInfo:
    """What the registry knows of a model."""

    name: str
    builder: Callable[..., nn.Module]
    output_stride: int
    inputs: str
    paper: str
    paper_params: float | None  # millions, as the paper reports (at its number of classes)
    paper_classes: int


_REGISTRY: dict[str, ModelInfo] = {}


def register(info: ModelInfo) -> None:
    if info.name in _REGISTRY:
        raise ValueError(f"model {info.name!r} is already registered")
    _REGISTRY[info.name] = info


_FCN_PAPER = "Long, Shelhamer & Darrell, CVPR 2015"
for _name, _fn, _stride in (("fcn32s", fcn32s, 32), ("fcn16s", fcn16s, 16), ("fcn8s", fcn8s, 8)):
    register(
        ModelInfo(_name, _fn, _stride, "any H x W (pads 100, crops back)", _FCN_PAPER, 134.0, 21)
    )
register(
    ModelInfo(
        "deconvnet",
        deconvnet,
        32,
        "any H x W (unpooling restores sizes)",
        "Noh, Hong & Han, ICCV 2015",
        252.0,
        21,
    )
)
register(
    ModelInfo(
        "segnet",
        segnet,
        32,
        "any H x W (unpooling restores sizes)",
        "Badrinarayanan et al., TPAMI 2017",
        29.5,
        21,
    )
)
register(
    ModelInfo(
        "unet",
        unet,
        16,
        "same: any H x W (pads to 16); valid: 572 -> 388",
        "Ronneberger et al., MICCAI 2015",
        31.0,
        2,
    )
)
register(
    ModelInfo(
        "fc_densenet56",
        fc_densenet56,
        32,
        "any H x W (pads to 32)",
        "Jégou et al., CVPRW 2017",
        1.5,
        11,
    )
)
register(
    ModelInfo(
        "fc_densenet67",
        fc_densenet67,
        32,
        "any H x W (pads to 32)",
        "Jégou et al., CVPRW 2017",
        3.5,
        11,
    )
)
register(
    ModelInfo(
        "fc_densenet103",
        fc_densenet103,
        32,
        "any H x W (pads to 32)",
        "Jégou et al., CVPRW 2017",
        9.4,
        11,
    )
)
register(
    ModelInfo(
        "patch_classifier",
        patch_classifier,
        1,
        "P x P patches (P = patch_size, odd); whole images via its dense twin",
        "sliding-window baseline (Ciresan et al., NIPS 2012)",
        None,
        2,
    )
)
register(
    ModelInfo(
        "mask_rcnn",
        mask_rcnn,
        4,
        "list of (3, H, W) images; instances out (boxes, labels, scores, masks)",
        "He, Gkioxari, Dollár & Girshick, ICCV 2017",
        None,
        91,
    )
)


def list_models() -> list[str]:
    """Names of the registered models."""
    return sorted(_REGISTRY)


def model_info(name: str) -> ModelInfo:
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(list_models())}")
    return _REGISTRY[name]


def build(name: str, num_classes: int = 21, in_channels: int = 3, **options: Any) -> nn.Module:
    """Build a registered model: ``build("fcn8s", num_classes=21, backbone="vgg16")``.

    ``options`` go to the architecture (``backbone`` and ``weights_backbone`` for FCN,
    ``weights_backbone`` for SegNet/DeconvNet, ``padding``/``depth``/``width``/``upsampling`` for
    U-Net, ``dropout`` for FC-DenseNet ...).
    """
    info = model_info(name)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be an integer >= 1, got {num_classes!r}")
    if isinstance(in_channels, bool) or not isinstance(in_channels, int) or in_channels < 1:
        raise ValueError(f"in_channels must be an integer >= 1, got {in_channels!r}")
    try:
        return info.builder(num_classes=num_classes, in_channels=in_channels, **options)
    except TypeError as exc:
        raise ValueError(f"{name}: {exc}") from None


def count_parameters(name: str, num_classes: int | None = None, **options: Any) -> int:
    """Parameters of a model built on the meta device (no memory, no initialisation cost)."""
    import torch

    info = model_info(name)
    with torch.device("meta"):
        model = build(name, num_classes=num_classes or info.paper_classes, **options)
    return sum(p.numel() for p in model.parameters())


__all__ = [
    "FCN",
    "DeconvNet",
    "FCDenseNet",
    "FCNResNet",
    "ModelInfo",
    "PatchClassifier",
    "SegNet",
    "UNet",
    "build",
    "count_parameters",
    "deconvnet",
    "fc_densenet56",
    "fc_densenet67",
    "fc_densenet103",
    "fcn8s",
    "fcn16s",
    "fcn32s",
    "is_instance_model",
    "list_models",
    "mask_rcnn",
    "model_info",
    "patch_classifier",
    "register",
    "segnet",
    "unet",
    "valid_output_size",
]
