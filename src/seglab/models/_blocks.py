"""Blocks shared by several architectures, written once."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..nn import bilinear_kernel

# VGG16's convolutional configuration ("D"): channels, "M" for a pooling layer.
VGG16_CFG: list[int | str] = [
    64,
    64,
    "M",
    128,
    128,
    "M",
    256,
    256,
    256,
    "M",
    512,
    512,
    512,
    "M",
    512,
    512,
    512,
    "M",
]


def scaled(channels: int, width: float) -> int:
    """``channels * width``, at least 1: thin versions of the paper nets for tests and demos."""
    return max(1, round(channels * width))


def vgg16_layers(
    in_channels: int,
    batch_norm: bool,
    pool: Callable[[], nn.Module],
    first_padding: int = 1,
    width: float = 1.0,
) -> list[nn.Module]:
    """VGG16's feature layers in torchvision's order (so a torchvision state dict's
    ``features.N`` keys fit ``nn.Sequential(*layers)`` one to one); ``pool`` makes each pooling
    layer, ``first_padding`` pads the first convolution (FCN uses 100) and ``width`` scales the
    channels (1 = the paper's)."""
    layers: list[nn.Module] = []
    c = in_channels
    for v in VGG16_CFG:
        if v == "M":
            layers.append(pool())
            continue
        out = scaled(int(v), width)
        layers.append(nn.Conv2d(c, out, 3, padding=first_padding if not layers else 1))
        if batch_norm:
            layers.append(nn.BatchNorm2d(out))
        layers.append(nn.ReLU(inplace=True))
        c = out
    return layers


def conv_bn_relu(cin: int, cout: int, kernel: int = 3, padding: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, padding=padding), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


def bilinear_upsampler(
    channels: int, factor: int, learnable: bool, padded: bool = False
) -> nn.ConvTranspose2d:
    """A transpose convolution initialised to bilinear interpolation by ``factor`` (kernel
    2*factor, stride factor), as FCN's upsampling layers; ``learnable=False`` freezes it.
    ``padded`` adds padding factor/2 so that n pixels become exactly n*factor."""
    layer = nn.ConvTranspose2d(
        channels,
        channels,
        2 * factor,
        stride=factor,
        padding=factor // 2 if padded else 0,
        bias=False,
    )
    with torch.no_grad():
        layer.weight.copy_(bilinear_kernel(channels, channels, 2 * factor))
    layer.weight.requires_grad_(learnable)
    return layer


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, int, int]:
    """Zero-pad the bottom and right of ``x`` to a multiple of ``multiple``; returns the padded
    tensor and the original height and width to crop back to. (No branch on the size: an
    exported ONNX graph then pads every input size correctly.)"""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    return F.pad(x, (0, pw, 0, ph)), h, w


def check_input(x: torch.Tensor, in_channels: int, name: str) -> None:
    if x.dim() != 4 or x.shape[1] != in_channels:
        raise ValueError(
            f"{name} expects a (B, {in_channels}, H, W) tensor, got shape {tuple(x.shape)}"
        )


def load_matching(model: nn.Module, state: dict) -> list[str]:
    """Load every tensor of ``state`` whose name and shape fit ``model``; the others (a classifier
    for another number of classes, say) keep their fresh initialisation. Returns the names of
    the model's tensors that were not loaded."""
    own = model.state_dict()
    fits = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(fits, strict=False)
    return sorted(k for k in own if k not in fits)
