"""Pretrained encoder weights: torchvision's enums or a local state-dict file, mapped onto
seglab's encoders. Nothing is downloaded unless a torchvision weights enum is given (which
downloads through torchvision, as torchvision's own builders do)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn


def read_state_dict(weights: Any) -> dict[str, torch.Tensor]:
    """A state dict from a torchvision ``WeightsEnum`` member, a file path, or a dict."""
    if isinstance(weights, dict):
        return weights
    if isinstance(weights, (str, os.PathLike)):
        path = Path(weights)
        if not path.exists():
            raise FileNotFoundError(f"weights file not found: {path}")
        sd = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
            sd = sd["state_dict"]
        if not isinstance(sd, dict):
            raise ValueError(f"{path} does not hold a state dict")
        return sd
    if hasattr(weights, "get_state_dict"):
        return weights.get_state_dict(progress=True)
    raise ValueError(
        "weights_backbone must be a torchvision weights enum (e.g. VGG16_Weights.IMAGENET1K_V1), "
        f"a path to a saved state dict, or a dict; got {type(weights).__name__}"
    )


def load_encoder(
    model: nn.Module,
    source: dict[str, torch.Tensor],
    mapping: dict[str, str],
    dropped_prefixes: tuple[str, ...],
) -> dict[str, list[str]]:
    """Copy ``source[k]`` into the model parameter/buffer ``mapping[k]`` (reshaping linear layers
    into convolutions where the shapes say so). Keys under ``dropped_prefixes`` (the source's
    classifier, say) are dropped on purpose. Returns {"loaded", "missing", "unexpected",
    "dropped"}; raises ValueError on a shape mismatch or if anything is missing or unexpected."""
    target = dict(model.state_dict())
    report: dict[str, list[str]] = {"loaded": [], "missing": [], "unexpected": [], "dropped": []}
    new_state = {}
    for key, value in source.items():
        if key.startswith(dropped_prefixes):
            report["dropped"].append(key)
            continue
        dest = mapping.get(key)
        if dest is None or dest not in target:
            report["unexpected"].append(key)
            continue
        want = target[dest].shape
        if value.shape != want:
            if value.numel() != target[dest].numel():
                raise ValueError(
                    f"{key}: shape {tuple(value.shape)} cannot fill {dest} of shape {tuple(want)}"
                )
            value = value.reshape(want)
        new_state[dest] = value
        report["loaded"].append(dest)
    report["missing"] = sorted(set(mapping.values()) - set(report["loaded"]))
    if report["missing"] or report["unexpected"]:
        raise ValueError(
            f"backbone weights do not fit: missing {report['missing'][:5]}, unexpected {report['unexpected'][:5]}"
        )
    model.load_state_dict(new_state, strict=False)
    return report


def vgg_mapping(
    model: nn.Module, prefix: str = "features", with_classifier: bool = False
) -> dict[str, str]:
    """torchvision VGG keys -> the model's keys: ``features.N.*`` one to one; with
    ``with_classifier``, fc6/fc7 take ``classifier.0``/``classifier.3`` (linear to convolution)."""
    mapping = {}
    for key in model.state_dict():
        if key.startswith(prefix + "."):
            mapping["features." + key[len(prefix) + 1 :]] = key
    if with_classifier:
        for src, dst in (("classifier.0", "fc6"), ("classifier.3", "fc7")):
            mapping[f"{src}.weight"] = f"{dst}.weight"
            mapping[f"{src}.bias"] = f"{dst}.bias"
    return mapping


def resnet_mapping(model: nn.Module, prefix: str = "backbone") -> dict[str, str]:
    """torchvision ResNet keys -> ``backbone.*`` (the classifier ``fc`` is dropped)."""
    return {
        key[len(prefix) + 1 :]: key for key in model.state_dict() if key.startswith(prefix + ".")
    }
