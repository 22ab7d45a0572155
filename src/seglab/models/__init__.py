"""Segmentation networks, one module per architecture, built by name from one registry
(:mod:`seglab.models.registry`: each builder registers itself with ``@register_model``).

>>> from seglab.models import build, list_models
>>> model = build("fcn8s", num_classes=21)            # VGG16 FCN-8s
>>> model = build("unet", num_classes=2, padding="valid")  # the original U-Net

Every model maps a (B, in_channels, H, W) tensor to (B, num_classes, H, W) logits for any H x W
(the valid-padding U-Net returns its documented smaller output), except ``patch_classifier``, the
sliding-window baseline, which classifies (B, C, P, P) patches (see :mod:`seglab.models.sliding`).
"""

from __future__ import annotations

from ._blocks import load_matching
from .fc_densenet import FCDenseNet, fc_densenet56, fc_densenet67, fc_densenet103
from .fcn import FCN, FCNResNet, fcn8s, fcn16s, fcn32s
from .mask_rcnn import is_instance_model, mask_rcnn
from .registry import (
    ModelInfo,
    build,
    count_parameters,
    list_models,
    model_info,
    model_table,
    register,
    register_model,
)
from .segnet import DeconvNet, SegNet, deconvnet, segnet
from .sliding import PatchClassifier, patch_classifier
from .unet import UNet, unet, valid_output_size

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
    "load_matching",
    "mask_rcnn",
    "model_info",
    "model_table",
    "patch_classifier",
    "register",
    "register_model",
    "segnet",
    "unet",
    "valid_output_size",
]
