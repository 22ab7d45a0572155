"""U-Net (Ronneberger, Fischer & Brox, MICCAI 2015).

A contracting path (two 3x3 convolutions + ReLU, then 2x2 max pooling, channels doubling from
``width``) and an expanding path (2x2 up-convolution halving the channels, concatenation with the
encoder map of the same level, two 3x3 convolutions), then a 1x1 class scorer.

* ``padding="valid"``: the original. Convolutions are unpadded, so the output is smaller than the
  input (572x572 -> 388x388) and each skip is centre-cropped to the decoder map. The input must be
  a size every pooling divides evenly; :func:`valid_output_size` says what comes out.
* ``padding="same"`` (default): padded convolutions; the input is zero-padded to a multiple of
  2**depth internally and the output cropped back to H x W.

``upsampling`` is "transpose" (the paper's up-convolution), "bilinear" or "nearest" (resize, then
a 1x1 convolution to halve the channels). Weights start from He (Kaiming) normal, as the paper.
"""

from __future__ import annotations

import torch
from torch import nn

from .._constraints import Interval, Options
from ._blocks import check_input, pad_to_multiple
from .registry import register_model


def _double_conv(cin: int, cout: int, pad: int, batch_norm: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for c in (cin, cout):
        layers.append(nn.Conv2d(c, cout, 3, padding=pad, bias=not batch_norm))
        if batch_norm:
            layers.append(nn.BatchNorm2d(cout))
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def valid_output_size(size: int, depth: int = 4) -> int | None:
    """Output side of a valid-padding U-Net for an input side ``size`` (None if some pooling
    would see an odd or empty map)."""
    s = size
    for _ in range(depth):
        s -= 4
        if s <= 0 or s % 2:
            return None
        s //= 2
    s -= 4
    if s <= 0:
        return None
    for _ in range(depth):
        s = s * 2 - 4
    return s


class UNet(nn.Module):
    """U-Net; see the module docstring for ``padding`` and ``upsampling``."""

    def __init__(
        self,
        num_classes: int = 2,
        in_channels: int = 3,
        depth: int = 4,
        width: int = 64,
        padding: str = "same",
        upsampling: str = "transpose",
        batch_norm: bool = False,
    ) -> None:
        super().__init__()
        if padding not in ("same", "valid"):
            raise ValueError(f"padding must be 'same' or 'valid', got {padding!r}")
        if upsampling not in ("transpose", "bilinear", "nearest"):
            raise ValueError(
                f"upsampling must be 'transpose', 'bilinear' or 'nearest', got {upsampling!r}"
            )
        if depth < 1 or width < 1:
            raise ValueError("depth and width must be >= 1")
        self.in_channels, self.depth, self.padding = in_channels, depth, padding
        pad = 1 if padding == "same" else 0
        chans = [width * 2**i for i in range(depth + 1)]
        self.down = nn.ModuleList()
        c = in_channels
        for ch in chans:
            self.down.append(_double_conv(c, ch, pad, batch_norm))
            c = ch
        self.pool = nn.MaxPool2d(2)
        self.up = nn.ModuleList()
        self.dec = nn.ModuleList()
        for ch in reversed(chans[:-1]):
            if upsampling == "transpose":
                self.up.append(nn.ConvTranspose2d(ch * 2, ch, 2, stride=2))
            else:
                self.up.append(
                    nn.Sequential(
                        nn.Upsample(scale_factor=2, mode=upsampling), nn.Conv2d(ch * 2, ch, 1)
                    )
                )
            self.dec.append(_double_conv(ch * 2, ch, pad, batch_norm))
        self.head = nn.Conv2d(width, num_classes, 1)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The layer's (or network's) output for ``x``; see the class docstring."""
        check_input(x, self.in_channels, "U-Net")
        h, w = x.shape[-2:]
        if self.padding == "same":
            x, h, w = pad_to_multiple(x, 2**self.depth)
        elif valid_output_size(h, self.depth) is None or valid_output_size(w, self.depth) is None:
            ok = [
                s for s in range(max(h, w) - 40, max(h, w) + 40) if valid_output_size(s, self.depth)
            ]
            raise ValueError(
                f"a valid-padding U-Net of depth {self.depth} cannot take a {h}x{w} input: every "
                f"pooling needs an even map. Sides that work near {max(h, w)}: {ok[:6]} "
                f"(e.g. 572 -> 388); or use padding='same'"
            )
        skips = []
        for i, block in enumerate(self.down):
            x = block(x)
            if i < self.depth:
                skips.append(x)
                x = self.pool(x)
        for up, dec, skip in zip(self.up, self.dec, reversed(skips), strict=True):
            x = up(x)
            dh = (skip.shape[2] - x.shape[2]) // 2
            dw = (skip.shape[3] - x.shape[3]) // 2
            skip = skip[:, :, dh : dh + x.shape[2], dw : dw + x.shape[3]]  # centre crop (valid)
            x = dec(torch.cat([skip, x], dim=1))
        out = self.head(x)
        return out[:, :, :h, :w] if self.padding == "same" else out


@register_model(
    16,
    "same: any H x W (pads to 16); valid: 572 -> 388",
    "Ronneberger et al., MICCAI 2015",
    31.0,
    2,
    constraints={
        "depth": Interval(int, 1),
        "width": Interval(int, 1),
        "padding": Options(("same", "valid")),
        "upsampling": Options(("transpose", "bilinear", "nearest")),
        "batch_norm": bool,
    },
)
def unet(num_classes: int = 2, in_channels: int = 3, **options) -> UNet:
    """U-Net; ``padding="same"`` (output = input size, default) or ``"valid"`` (the original)."""
    if options.get("weights_backbone") is not None:
        raise ValueError("U-Net has no pretrained backbone; weights_backbone is not supported")
    options.pop("weights_backbone", None)
    return UNet(num_classes, in_channels, **options)
