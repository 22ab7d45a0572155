"""FC-DenseNet, "the one hundred layers Tiramisu" (Jégou et al., CVPR Workshops 2017).

A first 3x3 convolution (48 maps), then dense blocks (each layer BN-ReLU-3x3 conv-dropout adds
``growth_rate`` maps and sees everything before it) separated by transitions down (BN-ReLU-1x1
conv-dropout-2x2 max pool). On the way up, a 3x3 stride-2 transpose convolution upsamples **only
the maps the previous dense block created** (not its input, which would explode the width), and
the skip from the encoder is concatenated. A 1x1 convolution scores the classes.

Variants (layers per block, growth): 56 = 4 per block, 12; 67 = 5 per block, 16;
103 = 4, 5, 7, 10, 12 | 15 | 12, 10, 7, 5, 4 with 16. Inputs are zero-padded to a multiple of 32
and the output cropped back. Weights start from He uniform, as the paper.

``memory_efficient=True`` (Pleiss et al., "Memory-efficient implementation of DenseNets", 2017;
torchvision's ``densenet(memory_efficient=True)``) keeps no concatenation for the backward pass:
each dense layer's concatenation + batch norm + ReLU + convolution is recomputed during backward
(gradient checkpointing), so the saved activations grow linearly with depth instead of
quadratically. The recomputation uses the batch statistics without touching the running
statistics, which are updated once, in the forward pass, exactly as ``nn.BatchNorm2d`` would:
gradients and running statistics equal the plain model's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from .._constraints import Interval
from ._blocks import check_input, pad_to_multiple
from .registry import register_model

_PAPER = "Jégou et al., CVPRW 2017"
_INPUTS = "any H x W (pads to 32)"
_CONSTRAINTS = {
    "layers": (tuple, list),
    "growth_rate": Interval(int, 1),
    "first_channels": Interval(int, 1),
    "dropout": Interval(float, 0, 1, "left"),
    "memory_efficient": bool,
}


class _DenseLayer(nn.Sequential):
    """BN-ReLU-3x3 conv-dropout over the concatenation of all earlier maps (given as a list)."""

    def __init__(self, cin: int, growth: int, dropout: float, memory_efficient: bool) -> None:
        super().__init__(
            nn.BatchNorm2d(cin),
            nn.ReLU(inplace=True),
            nn.Conv2d(cin, growth, 3, padding=1),
            nn.Dropout2d(dropout),
        )
        self.memory_efficient = memory_efficient

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:  # type: ignore[override]
        norm, _, conv, drop = self
        grads = torch.is_grad_enabled() and any(f.requires_grad for f in features)
        if not (self.memory_efficient and self.training and grads):
            return drop(conv(F.relu(norm(torch.cat(features, 1)))))
        _update_running_stats(norm, features)
        return drop(checkpoint(self._recomputed, *features, use_reentrant=False))

    def _recomputed(self, *features: torch.Tensor) -> torch.Tensor:
        """Concatenation, batch norm with the batch's statistics (running ones untouched), ReLU,
        convolution: what backward recomputes instead of keeping."""
        norm, conv = self[0], self[2]
        x = F.batch_norm(
            torch.cat(features, 1), None, None, norm.weight, norm.bias, True, 0.0, norm.eps
        )
        return conv(F.relu(x))


@torch.no_grad()
def _update_running_stats(norm: nn.BatchNorm2d, features: list[torch.Tensor]) -> None:
    """What ``nn.BatchNorm2d`` does to its running statistics in training, done once per forward
    pass (channels are independent, so each earlier map's statistics are computed apart)."""
    if not norm.track_running_stats:
        return
    var, mean = zip(
        *(torch.var_mean(f, dim=(0, 2, 3), unbiased=True) for f in features), strict=True
    )
    norm.num_batches_tracked.add_(1)
    m = norm.momentum if norm.momentum is not None else 1.0 / float(norm.num_batches_tracked)
    norm.running_mean.mul_(1 - m).add_(torch.cat(mean).to(norm.running_mean.dtype), alpha=m)
    norm.running_var.mul_(1 - m).add_(torch.cat(var).to(norm.running_var.dtype), alpha=m)


class _DenseBlock(nn.Module):
    """Returns (all maps: input + new, new maps only)."""

    def __init__(
        self, cin: int, n_layers: int, growth: int, dropout: float, memory_efficient: bool = False
    ) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            _DenseLayer(cin + i * growth, growth, dropout, memory_efficient)
            for i in range(n_layers)
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = [x]
        for layer in self.layers:
            features.append(layer(features))
        return torch.cat(features, dim=1), torch.cat(features[1:], dim=1)


class FCDenseNet(nn.Module):
    """FC-DenseNet with ``layers`` per block (down blocks, bottleneck, up blocks);
    ``memory_efficient`` recomputes each dense layer's input in backward (see the module doc)."""

    def __init__(
        self,
        num_classes: int = 11,
        in_channels: int = 3,
        layers: tuple[int, ...] = (4, 5, 7, 10, 12, 15, 12, 10, 7, 5, 4),
        growth_rate: int = 16,
        first_channels: int = 48,
        dropout: float = 0.2,
        memory_efficient: bool = False,
    ) -> None:
        super().__init__()
        if len(layers) % 2 != 1:
            raise ValueError("layers needs an odd length: down blocks, the bottleneck, up blocks")
        self.in_channels = in_channels
        n_pool = len(layers) // 2
        self.n_pool = n_pool
        self.first = nn.Conv2d(in_channels, first_channels, 3, padding=1)
        c = first_channels
        self.down_blocks, self.trans_down = nn.ModuleList(), nn.ModuleList()
        skip_channels = []
        for i in range(n_pool):
            self.down_blocks.append(
                _DenseBlock(c, layers[i], growth_rate, dropout, memory_efficient)
            )
            c += layers[i] * growth_rate
            skip_channels.append(c)
            self.trans_down.append(
                nn.Sequential(
                    nn.BatchNorm2d(c),
                    nn.ReLU(inplace=True),
                    nn.Conv2d(c, c, 1),
                    nn.Dropout2d(dropout),
                    nn.MaxPool2d(2),
                )
            )
        self.bottleneck = _DenseBlock(c, layers[n_pool], growth_rate, dropout, memory_efficient)
        self.trans_up, self.up_blocks = nn.ModuleList(), nn.ModuleList()
        for i in range(n_pool):
            keep = layers[n_pool + i] * growth_rate  # the maps the previous block created
            self.trans_up.append(
                nn.ConvTranspose2d(keep, keep, 3, stride=2, padding=1, output_padding=1)
            )
            c = keep + skip_channels[-1 - i]
            block = _DenseBlock(c, layers[n_pool + i + 1], growth_rate, dropout, memory_efficient)
            self.up_blocks.append(block)
        c += layers[-1] * growth_rate
        self.head = nn.Conv2d(c, num_classes, 1)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.kaiming_uniform_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The layer's (or network's) output for ``x``; see the class docstring."""
        check_input(x, self.in_channels, "FC-DenseNet")
        x, h, w = pad_to_multiple(x, 2**self.n_pool)
        x = self.first(x)
        skips = []
        for block, down in zip(self.down_blocks, self.trans_down, strict=True):
            x, _ = block(x)
            skips.append(x)
            x = down(x)
        _, new = self.bottleneck(x)
        for up, block, skip in zip(self.trans_up, self.up_blocks, reversed(skips), strict=True):
            x = torch.cat([up(new), skip], dim=1)
            x, new = block(x)
        return self.head(x)[:, :, :h, :w]


def _no_backbone(options: dict) -> dict:
    if options.pop("weights_backbone", None) is not None:
        raise ValueError(
            "FC-DenseNet has no pretrained backbone; weights_backbone is not supported"
        )
    return options


@register_model(32, _INPUTS, _PAPER, 1.5, 11, constraints=_CONSTRAINTS)
def fc_densenet56(num_classes: int = 11, in_channels: int = 3, **options) -> FCDenseNet:
    """FC-DenseNet56: 4 layers per block, growth rate 12 (about 1.5 M parameters)."""
    return FCDenseNet(num_classes, in_channels, (4,) * 11, 12, **_no_backbone(options))


@register_model(32, _INPUTS, _PAPER, 3.5, 11, constraints=_CONSTRAINTS)
def fc_densenet67(num_classes: int = 11, in_channels: int = 3, **options) -> FCDenseNet:
    """FC-DenseNet67: 5 layers per block, growth rate 16 (about 3.5 M parameters)."""
    return FCDenseNet(num_classes, in_channels, (5,) * 11, 16, **_no_backbone(options))


@register_model(32, _INPUTS, _PAPER, 9.4, 11, constraints=_CONSTRAINTS)
def fc_densenet103(num_classes: int = 11, in_channels: int = 3, **options) -> FCDenseNet:
    """FC-DenseNet103, the Tiramisu: 4-5-7-10-12 | 15 | 12-10-7-5-4, growth 16 (9.4 M)."""
    return FCDenseNet(
        num_classes,
        in_channels,
        (4, 5, 7, 10, 12, 15, 12, 10, 7, 5, 4),
        16,
        **_no_backbone(options),
    )
