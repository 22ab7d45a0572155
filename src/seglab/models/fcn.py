"""FCN-32s, FCN-16s and FCN-8s (Long, Shelhamer & Darrell, CVPR 2015).

VGG16 with its classifier "convolutionalised" (fc6 a 7x7 convolution, fc7 a 1x1), a 1x1 class
scorer, and upsampling by transpose convolutions initialised to bilinear interpolation:

* FCN-32s: score_fr -> 32x up (fixed bilinear).
* FCN-16s: score_fr -> 2x up (learned) + score of pool4 (zero-initialised) -> 16x up (fixed).
* FCN-8s:  ... + 2x up (learned) + score of pool3 (zero-initialised) -> 8x up (fixed).

As in the paper's reference code, the first convolution pads by 100 and the skips are cropped at
the offsets (5, 9; final 19 / 27 / 31) that bring any input back at its own size: no resizing.
With a ResNet backbone the same skips come from layer2/3/4 (stride 8/16/32); the input is padded
to a multiple of 32 and the output cropped back.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from .._constraints import Interval, Options
from ._blocks import bilinear_upsampler, check_input, pad_to_multiple, scaled, vgg16_layers
from .backbones import load_encoder, read_state_dict, resnet_mapping, vgg_mapping
from .registry import register_model

_POOL3, _POOL4 = 17, 24  # end of the pool3 / pool4 stages in VGG16's feature list

_FCN_PAPER = "Long, Shelhamer & Darrell, CVPR 2015"
_FCN_INPUTS = "any H x W (pads 100, crops back)"
_FCN_CONSTRAINTS = {
    "backbone": Options(("vgg16", "resnet18", "resnet34", "resnet50", "resnet101")),
    "width": Interval(float, 0, None, "neither"),
}


class FCN(nn.Module):
    """FCN on VGG16 (``variant`` "32s", "16s" or "8s"). Output (B, num_classes, H, W) logits.
    ``width`` < 1 thins every layer (for quick experiments; pretrained weights need 1)."""

    def __init__(
        self,
        num_classes: int = 21,
        in_channels: int = 3,
        variant: str = "8s",
        dropout: float = 0.5,
        width: float = 1.0,
    ) -> None:
        super().__init__()
        if variant not in ("32s", "16s", "8s"):
            raise ValueError(f"variant must be '32s', '16s' or '8s', got {variant!r}")
        self.variant, self.in_channels, self.width = variant, in_channels, width
        pool = lambda: nn.MaxPool2d(2, 2, ceil_mode=True)  # noqa: E731 - Caffe's rounding
        self.features = nn.Sequential(
            *vgg16_layers(in_channels, False, pool, first_padding=100, width=width)
        )
        c3, c4, c5, fc = (scaled(c, width) for c in (256, 512, 512, 4096))
        self.fc6 = nn.Conv2d(c5, fc, 7)
        self.fc7 = nn.Conv2d(fc, fc, 1)
        self.drop = nn.Dropout2d(dropout)
        self.score_fr = nn.Conv2d(fc, num_classes, 1)
        if variant == "32s":
            self.upscore = bilinear_upsampler(num_classes, 32, learnable=False)
        else:
            self.score_pool4 = nn.Conv2d(c4, num_classes, 1)
            self.upscore2 = bilinear_upsampler(num_classes, 2, learnable=True)
        if variant == "16s":
            self.upscore16 = bilinear_upsampler(num_classes, 16, learnable=False)
        if variant == "8s":
            self.score_pool3 = nn.Conv2d(c3, num_classes, 1)
            self.upscore_pool4 = bilinear_upsampler(num_classes, 2, learnable=True)
            self.upscore8 = bilinear_upsampler(num_classes, 8, learnable=False)
        for name in ("score_fr", "score_pool4", "score_pool3"):  # new scorers start at zero
            if hasattr(self, name):
                nn.init.zeros_(getattr(self, name).weight)
                nn.init.zeros_(getattr(self, name).bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The layer's (or network's) output for ``x``; see the class docstring."""
        check_input(x, self.in_channels, f"FCN-{self.variant}")
        h, w = x.shape[-2:]
        pool3 = self.features[:_POOL3](x)
        pool4 = self.features[_POOL3:_POOL4](pool3)
        pool5 = self.features[_POOL4:](pool4)
        fc = self.drop(F.relu(self.fc6(pool5)))
        fc = self.drop(F.relu(self.fc7(fc)))
        score = self.score_fr(fc)
        if self.variant == "32s":
            return self.upscore(score)[:, :, 19 : 19 + h, 19 : 19 + w]
        up = self.upscore2(score)
        s4 = self.score_pool4(pool4)[:, :, 5 : 5 + up.shape[2], 5 : 5 + up.shape[3]]
        fuse = up + s4
        if self.variant == "16s":
            return self.upscore16(fuse)[:, :, 27 : 27 + h, 27 : 27 + w]
        up = self.upscore_pool4(fuse)
        s3 = self.score_pool3(pool3)[:, :, 9 : 9 + up.shape[2], 9 : 9 + up.shape[3]]
        return self.upscore8(up + s3)[:, :, 31 : 31 + h, 31 : 31 + w]

    def load_backbone(self, weights: Any) -> dict[str, list[str]]:
        """Load torchvision VGG16 weights into features, fc6 and fc7 (the 1000-way classifier is
        dropped). Returns the load report."""
        if self.width != 1.0:
            raise ValueError("pretrained VGG16 weights need width=1.0")
        sd = read_state_dict(weights)
        return load_encoder(self, sd, vgg_mapping(self, with_classifier=True), ("classifier.6",))


class FCNResNet(nn.Module):
    """The FCN skip architecture on a torchvision ResNet (layer2/3/4 at stride 8/16/32)."""

    def __init__(
        self,
        num_classes: int = 21,
        in_channels: int = 3,
        variant: str = "8s",
        backbone: str = "resnet50",
    ) -> None:
        super().__init__()
        if variant not in ("32s", "16s", "8s"):
            raise ValueError(f"variant must be '32s', '16s' or '8s', got {variant!r}")
        if backbone not in ("resnet18", "resnet34", "resnet50", "resnet101"):
            raise ValueError(
                f"unknown backbone {backbone!r}; expected vgg16, resnet18, resnet34, resnet50 or resnet101"
            )
        self.variant, self.in_channels = variant, in_channels
        net = getattr(torchvision.models, backbone)(weights=None)
        if in_channels != 3:
            net.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
        net.fc = nn.Identity()
        self.backbone = nn.ModuleDict(
            {
                n: getattr(net, n)
                for n in ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")
            }
        )
        expansion = 4 if backbone in ("resnet50", "resnet101") else 1
        c2, c3, c4 = 128 * expansion, 256 * expansion, 512 * expansion
        self.score_fr = nn.Conv2d(c4, num_classes, 1)
        if variant == "32s":
            self.upscore = bilinear_upsampler(num_classes, 32, learnable=False, padded=True)
        else:
            self.score_pool4 = nn.Conv2d(c3, num_classes, 1)
            self.upscore2 = bilinear_upsampler(num_classes, 2, learnable=True, padded=True)
            nn.init.zeros_(self.score_pool4.weight)
            nn.init.zeros_(self.score_pool4.bias)
        if variant == "16s":
            self.upscore16 = bilinear_upsampler(num_classes, 16, learnable=False, padded=True)
        if variant == "8s":
            self.score_pool3 = nn.Conv2d(c2, num_classes, 1)
            self.upscore_pool4 = bilinear_upsampler(num_classes, 2, learnable=True, padded=True)
            self.upscore8 = bilinear_upsampler(num_classes, 8, learnable=False, padded=True)
            nn.init.zeros_(self.score_pool3.weight)
            nn.init.zeros_(self.score_pool3.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The layer's (or network's) output for ``x``; see the class docstring."""
        check_input(x, self.in_channels, f"FCN-{self.variant}")
        x, h, w = pad_to_multiple(x, 32)
        b = self.backbone
        y = b["maxpool"](b["relu"](b["bn1"](b["conv1"](x))))
        c2 = b["layer2"](b["layer1"](y))
        c3 = b["layer3"](c2)
        score = self.score_fr(b["layer4"](c3))
        if self.variant == "32s":
            out = self.upscore(score)
        else:
            fuse = self.upscore2(score) + self.score_pool4(c3)
            if self.variant == "16s":
                out = self.upscore16(fuse)
            else:
                out = self.upscore8(self.upscore_pool4(fuse) + self.score_pool3(c2))
        return out[:, :, :h, :w]

    def load_backbone(self, weights: Any) -> dict[str, list[str]]:
        """Load torchvision ResNet weights into the backbone (``fc`` dropped)."""
        return load_encoder(self, read_state_dict(weights), resnet_mapping(self), ("fc.",))


def _fcn(
    variant: str,
    num_classes: int,
    in_channels: int,
    backbone: str,
    weights_backbone: Any,
    **kw: Any,
) -> nn.Module:
    if backbone == "vgg16":
        model: nn.Module = FCN(num_classes, in_channels, variant, **kw)
    else:
        model = FCNResNet(num_classes, in_channels, variant, backbone, **kw)
    if weights_backbone is not None:
        model.load_backbone(weights_backbone)
    return model


@register_model(32, _FCN_INPUTS, _FCN_PAPER, 134.0, 21, constraints=_FCN_CONSTRAINTS)
def fcn32s(
    num_classes: int = 21,
    in_channels: int = 3,
    backbone: str = "vgg16",
    weights_backbone: Any = None,
    **kw: Any,
) -> nn.Module:
    """FCN-32s: one 32x upsampling of the class scores."""
    return _fcn("32s", num_classes, in_channels, backbone, weights_backbone, **kw)


@register_model(16, _FCN_INPUTS, _FCN_PAPER, 134.0, 21, constraints=_FCN_CONSTRAINTS)
def fcn16s(
    num_classes: int = 21,
    in_channels: int = 3,
    backbone: str = "vgg16",
    weights_backbone: Any = None,
    **kw: Any,
) -> nn.Module:
    """FCN-16s: FCN-32s plus the pool4 skip."""
    return _fcn("16s", num_classes, in_channels, backbone, weights_backbone, **kw)


@register_model(8, _FCN_INPUTS, _FCN_PAPER, 134.0, 21, constraints=_FCN_CONSTRAINTS)
def fcn8s(
    num_classes: int = 21,
    in_channels: int = 3,
    backbone: str = "vgg16",
    weights_backbone: Any = None,
    **kw: Any,
) -> nn.Module:
    """FCN-8s: FCN-16s plus the pool3 skip (the paper's best)."""
    return _fcn("8s", num_classes, in_channels, backbone, weights_backbone, **kw)
