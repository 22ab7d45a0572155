"""SegNet (Badrinarayanan, Kendall & Cipolla, TPAMI 2017) and DeconvNet (Noh, Hong & Han,
ICCV 2015): a VGG16 encoder whose max-pooling layers remember their switches, and a mirrored
decoder that unpools with those switches (values go back where the maxima were) and densifies the
sparse maps with convolutions (SegNet) or transpose convolutions (DeconvNet).

Unpooling takes the size of the map that was pooled, so any H x W comes back at its own size
with no padding.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .._constraints import Interval
from ..nn import MaxPool2dWithSwitches, MaxUnpool2d
from ._blocks import check_input, conv_bn_relu, scaled, vgg16_layers
from .backbones import load_encoder, read_state_dict, vgg_mapping
from .registry import register_model

# decoder channels, block 5 down to block 1: (in, out) of each layer
_DECODER = [
    [(512, 512), (512, 512), (512, 512)],
    [(512, 512), (512, 512), (512, 256)],
    [(256, 256), (256, 256), (256, 128)],
    [(128, 128), (128, 64)],
    [(64, 64), (64, 64)],
]


class _SwitchEncoder(nn.Module):
    """VGG16-BN features (torchvision's layout and keys) with switch-recording pooling."""

    def __init__(self, in_channels: int, width: float = 1.0) -> None:
        super().__init__()
        self.features = nn.Sequential(
            *vgg16_layers(in_channels, True, lambda: MaxPool2dWithSwitches(2, 2), width=width)
        )

    def forward(self, x: torch.Tensor):
        switches, sizes = [], []
        for layer in self.features:
            if isinstance(layer, MaxPool2dWithSwitches):
                sizes.append(x.shape[-2:])
                x, idx = layer(x)
                switches.append(idx)
            else:
                x = layer(x)
        return x, switches, sizes


class _VGGEncoderNet(nn.Module):
    """Shared by SegNet and DeconvNet: loading torchvision VGG16-BN weights into the encoder."""

    width: float

    def load_backbone(self, weights: Any) -> dict[str, list[str]]:
        """Load torchvision VGG16-BN weights into the encoder (classifier dropped)."""
        if self.width != 1.0:
            raise ValueError("pretrained VGG16-BN weights need width=1.0")
        return load_encoder(
            self, read_state_dict(weights), vgg_mapping(self, "encoder.features"), ("classifier.",)
        )


class SegNet(_VGGEncoderNet):
    """SegNet: decoder of 3x3 convolutions + BN + ReLU after each switch unpooling; the last
    convolution gives the class scores. Output (B, num_classes, H, W) logits."""

    def __init__(self, num_classes: int = 21, in_channels: int = 3, width: float = 1.0) -> None:
        super().__init__()
        self.in_channels, self.width = in_channels, width
        self.encoder = _SwitchEncoder(in_channels, width)
        self.unpool = MaxUnpool2d(2, 2)
        blocks = []
        for bi, block in enumerate(_DECODER):
            layers = [conv_bn_relu(scaled(cin, width), scaled(cout, width)) for cin, cout in block]
            if bi == len(_DECODER) - 1:  # the very last layer scores the classes
                layers[-1] = nn.Conv2d(scaled(block[-1][0], width), num_classes, 3, padding=1)
            blocks.append(nn.Sequential(*layers))
        self.decoder = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The layer's (or network's) output for ``x``; see the class docstring."""
        check_input(x, self.in_channels, "SegNet")
        y, switches, sizes = self.encoder(x)
        for block, idx, size in zip(self.decoder, reversed(switches), reversed(sizes), strict=True):
            y = block(self.unpool(y, idx, size))
        return y


def _deconv_bn_relu(cin: int, cout: int, kernel: int = 3, padding: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.ConvTranspose2d(cin, cout, kernel, padding=padding),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class DeconvNet(_VGGEncoderNet):
    """DeconvNet: VGG16-BN encoder, fc6 (7x7, 4096) and fc7 (1x1, 4096) as convolutions, a 7x7
    deconvolution back to 512 channels, then the mirrored unpooling + deconvolution decoder and a
    1x1 class scorer. fc6 pads by 3 so that inputs other than 224x224 keep their spatial layout
    (the paper's 224x224 crops give the same computation). Output (B, num_classes, H, W)."""

    def __init__(self, num_classes: int = 21, in_channels: int = 3, width: float = 1.0) -> None:
        super().__init__()
        self.in_channels, self.width = in_channels, width
        self.encoder = _SwitchEncoder(in_channels, width)
        c5, fc = scaled(512, width), scaled(4096, width)
        self.fc6 = conv_bn_relu(c5, fc, 7, 3)
        self.fc7 = conv_bn_relu(fc, fc, 1, 0)
        self.deconv_fc6 = _deconv_bn_relu(fc, c5, 7, 3)
        self.unpool = MaxUnpool2d(2, 2)
        self.decoder = nn.ModuleList(
            nn.Sequential(*[_deconv_bn_relu(scaled(i, width), scaled(o, width)) for i, o in block])
            for block in _DECODER
        )
        self.score = nn.Conv2d(scaled(64, width), num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The layer's (or network's) output for ``x``; see the class docstring."""
        check_input(x, self.in_channels, "DeconvNet")
        y, switches, sizes = self.encoder(x)
        y = self.deconv_fc6(self.fc7(self.fc6(y)))
        for block, idx, size in zip(self.decoder, reversed(switches), reversed(sizes), strict=True):
            y = block(self.unpool(y, idx, size))
        return self.score(y)


_WIDTH = {"width": Interval(float, 0, None, "neither")}


@register_model(
    32,
    "any H x W (unpooling restores sizes)",
    "Badrinarayanan et al., TPAMI 2017",
    29.5,
    21,
    constraints=_WIDTH,
)
def segnet(
    num_classes: int = 21, in_channels: int = 3, weights_backbone: Any = None, width: float = 1.0
) -> SegNet:
    """SegNet with a VGG16-BN encoder (``weights_backbone``: VGG16_BN weights or a file;
    ``width`` < 1 makes a thin version for quick experiments)."""
    return _with_backbone(SegNet(num_classes, in_channels, width), weights_backbone)


@register_model(
    32,
    "any H x W (unpooling restores sizes)",
    "Noh, Hong & Han, ICCV 2015",
    252.0,
    21,
    constraints=_WIDTH,
)
def deconvnet(
    num_classes: int = 21, in_channels: int = 3, weights_backbone: Any = None, width: float = 1.0
) -> DeconvNet:
    """DeconvNet with a VGG16-BN encoder (``weights_backbone``: VGG16_BN weights or a file;
    ``width`` < 1 makes a thin version for quick experiments)."""
    return _with_backbone(DeconvNet(num_classes, in_channels, width), weights_backbone)


def _with_backbone(model, weights: Any):
    if weights is not None:
        model.load_backbone(weights)
    return model
