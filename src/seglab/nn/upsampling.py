"""In-network upsampling: the layers a fully convolutional network uses to get back to pixels.

Each layer is a plain ``nn.Module``; the docstrings draw what it does to a 2x2 input with scale 2::

    input        nearest          bed of nails      max unpool (switches from pooling)
    1 2          1 1 2 2          1 0 2 0           0 0 2 0      (each value goes back to
    3 4          1 1 2 2          0 0 0 0           1 0 0 0       where its maximum was)
                 3 3 4 4          3 0 4 0           0 0 0 4
                 3 3 4 4          0 0 0 0           0 3 0 0
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .._checks import check_positive_int


def _pair(v: int | tuple[int, int]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _check_scale(scale: int) -> int:
    check_positive_int(scale, "scale")
    return scale


def _check_input(x: torch.Tensor, name: str) -> None:
    if x.dim() != 4:
        raise ValueError(f"{name} expects a (B, C, H, W) tensor, got shape {tuple(x.shape)}")


class _ScaledUnpool(nn.Module):
    """Base of the parameter-free unpooling layers: an integer scale factor."""

    def __init__(self, scale: int = 2) -> None:
        super().__init__()
        self.scale = _check_scale(scale)

    def extra_repr(self) -> str:
        return f"scale={self.scale}"


class NearestUnpool(_ScaledUnpool):
    """Nearest-neighbour unpooling: every value is copied into its ``scale x scale`` block.

    ::

        1 2   ->   1 1 2 2
        3 4        1 1 2 2
                   3 3 4 4
                   3 3 4 4
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The layer's (or network's) output for ``x``; see the class docstring."""
        _check_input(x, "NearestUnpool")
        return x.repeat_interleave(self.scale, dim=2).repeat_interleave(self.scale, dim=3)


class BedOfNailsUnpool(_ScaledUnpool):
    """ "Bed of nails" unpooling: each value goes to the **top-left** corner of its block, zeros
    elsewhere.

    ::

        1 2   ->   1 0 2 0
        3 4        0 0 0 0
                   3 0 4 0
                   0 0 0 0
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The layer's (or network's) output for ``x``; see the class docstring."""
        _check_input(x, "BedOfNailsUnpool")
        b, c, h, w = x.shape
        out = x.new_zeros(b, c, h * self.scale, w * self.scale)
        out[:, :, :: self.scale, :: self.scale] = x
        return out


class MaxPool2dWithSwitches(nn.Module):
    """Max pooling that also returns the "switches": the flat index (within each H x W plane of
    the input) of the position each maximum came from, for :class:`MaxUnpool2d` to use later
    (DeconvNet, SegNet). Returns ``(pooled, switches)``, like ``nn.MaxPool2d(return_indices=True)``.

    ::

        1 5 | 2 0        5 2    switches: (0,1) (0,2)
        0 2 | 1 0   ->   3 4              (2,0) (3,3)
        ----+----
        3 0 | 0 1
        0 1 | 2 4
    """

    def __init__(
        self,
        kernel_size: int | tuple[int, int] = 2,
        stride: int | tuple[int, int] | None = None,
        padding: int | tuple[int, int] = 0,
        ceil_mode: bool = False,
    ) -> None:
        super().__init__()
        self.kernel_size = _pair(kernel_size)
        self.stride = _pair(stride if stride is not None else kernel_size)
        self.padding = _pair(padding)
        self.ceil_mode = ceil_mode

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The layer's (or network's) output for ``x``; see the class docstring."""
        _check_input(x, "MaxPool2dWithSwitches")
        return F.max_pool2d(
            x,
            self.kernel_size,
            self.stride,
            self.padding,
            ceil_mode=self.ceil_mode,
            return_indices=True,
        )

    def extra_repr(self) -> str:
        """Extra text for the layer's repr."""
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxUnpool2d(nn.Module):
    """Max unpooling: each value is put back where its maximum was (the switches recorded by
    :class:`MaxPool2dWithSwitches`), zeros elsewhere.

    ::

        5 2   switches   ->   0 5 2 0
        3 4                   0 0 0 0
                              3 0 0 0
                              0 0 0 4

    ``output_size`` (H, W) restores odd sizes that pooling rounded down; by default the size is
    ``(H - 1) * stride - 2 * padding + kernel_size``.
    """

    def __init__(
        self,
        kernel_size: int | tuple[int, int] = 2,
        stride: int | tuple[int, int] | None = None,
        padding: int | tuple[int, int] = 0,
    ) -> None:
        super().__init__()
        self.kernel_size = _pair(kernel_size)
        self.stride = _pair(stride if stride is not None else kernel_size)
        self.padding = _pair(padding)

    def forward(
        self, x: torch.Tensor, switches: torch.Tensor, output_size: tuple[int, int] | None = None
    ) -> torch.Tensor:
        """The layer's (or network's) output for ``x``; see the class docstring."""
        _check_input(x, "MaxUnpool2d")
        if switches.shape != x.shape:
            raise ValueError(
                f"switches shape {tuple(switches.shape)} does not match input {tuple(x.shape)}"
            )
        b, c, h, w = x.shape
        if output_size is None:
            output_size = tuple(
                (n - 1) * s - 2 * p + k
                for n, s, p, k in zip(
                    (h, w), self.stride, self.padding, self.kernel_size, strict=True
                )
            )
        oh, ow = output_size[-2], output_size[-1]
        tracing = torch.jit.is_tracing() or torch.compiler.is_compiling()
        if not tracing:  # sizes stay symbolic when exported (ONNX), so check only when eager
            oh, ow = int(oh), int(ow)
            if switches.numel() and int(switches.max()) >= oh * ow:
                raise ValueError(f"switches point outside an output of size {(oh, ow)}")
        out = x.new_zeros(b, c, oh * ow)
        out.scatter_(2, switches.flatten(2), x.flatten(2))
        return out.view(b, c, oh, ow)

    def extra_repr(self) -> str:
        """Extra text for the layer's repr."""
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class TransposeConv2d(nn.Module):
    """Transpose convolution ("deconvolution"), written from its definition.

    Every input value scales a copy of the kernel; the copies are laid down ``stride`` apart and
    summed where they overlap; ``padding`` then crops that many rows and columns from each border
    and ``output_padding`` adds rows/columns at the bottom/right. With a 3x3 kernel, stride 2::

        a b   ->   a·K placed at (0,0), b·K at (0,2), c·K at (2,0), d·K at (2,2), overlaps summed
        c d        (a 5x5 output before cropping)

    It is the adjoint of ``nn.Conv2d`` with the same weight: ``<conv(x), y> = <x, convT(y)>``.
    Takes ``nn.ConvTranspose2d``'s arguments and has the same parameters (``weight`` of shape
    (in_channels, out_channels // groups, kH, kW), ``bias``), so state dicts move between them.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        output_padding: int | tuple[int, int] = 0,
        groups: int = 1,
        bias: bool = True,
        dilation: int | tuple[int, int] = 1,
        padding_mode: str = "zeros",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if padding_mode != "zeros":
            raise ValueError(
                "TransposeConv2d supports padding_mode='zeros' only (as nn.ConvTranspose2d)"
            )
        if in_channels % groups or out_channels % groups:
            raise ValueError("in_channels and out_channels must be divisible by groups")
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size = _pair(kernel_size)
        self.stride = _pair(stride)
        self.padding = _pair(padding)
        self.output_padding = _pair(output_padding)
        self.dilation = _pair(dilation)
        for op, s, d in zip(self.output_padding, self.stride, self.dilation, strict=True):
            if op >= max(s, d):
                raise ValueError("output_padding must be smaller than either stride or dilation")
        factory = {"device": device, "dtype": dtype}
        self.weight = nn.Parameter(
            torch.empty(in_channels, out_channels // groups, *self.kernel_size, **factory)
        )
        self.bias = nn.Parameter(torch.empty(out_channels, **factory)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The same initialisation as ``nn.ConvTranspose2d``."""
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in = self.weight.shape[1] * self.kernel_size[0] * self.kernel_size[1]
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
            nn.init.uniform_(self.bias, -bound, bound)

    def output_shape(self, h: int, w: int) -> tuple[int, int]:
        """The (H, W) this layer produces from an (H, W) input."""
        return tuple(
            (n - 1) * s - 2 * p + d * (k - 1) + op + 1
            for n, s, p, d, k, op in zip(
                (h, w),
                self.stride,
                self.padding,
                self.dilation,
                self.kernel_size,
                self.output_padding,
                strict=True,
            )
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The layer's (or network's) output for ``x``; see the class docstring."""
        _check_input(x, "TransposeConv2d")
        b, cin, h, w = x.shape
        if cin != self.in_channels:
            raise ValueError(
                f"TransposeConv2d expects {self.in_channels} input channels, got {cin}"
            )
        (kh, kw), (sh, sw), (dh, dw) = self.kernel_size, self.stride, self.dilation
        (ph, pw), (oph, opw) = self.padding, self.output_padding
        g = self.groups
        cout_g = self.out_channels // g
        # the full (uncropped) output, with room for output_padding beyond it
        fh = (h - 1) * sh + dh * (kh - 1) + 1
        fw = (w - 1) * sw + dw * (kw - 1) + 1
        full = x.new_zeros(b, g, cout_g, fh + oph, fw + opw)
        xg = x.view(b, g, cin // g, h, w)
        wg = self.weight.view(g, cin // g, cout_g, kh, kw)
        for i in range(kh):
            for j in range(kw):
                # every input value times kernel tap (i, j), landing stride apart
                contrib = torch.einsum("bgchw,gco->bgohw", xg, wg[:, :, :, i, j])
                full[
                    :,
                    :,
                    :,
                    i * dh : i * dh + (h - 1) * sh + 1 : sh,
                    j * dw : j * dw + (w - 1) * sw + 1 : sw,
                ] += contrib
        oh, ow = self.output_shape(h, w)
        out = full[:, :, :, ph : ph + oh, pw : pw + ow].reshape(b, self.out_channels, oh, ow)
        if self.bias is not None:
            out = out + self.bias.view(1, -1, 1, 1)
        return out

    def extra_repr(self) -> str:
        """Extra text for the layer's repr."""
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
            f"padding={self.padding}, output_padding={self.output_padding}, groups={self.groups}"
        )


def bilinear_kernel(in_channels: int, out_channels: int, kernel_size: int) -> torch.Tensor:
    """FCN's bilinear upsampling weight for a transpose convolution: channel c to channel c gets
    the separable tent filter, other pairs zero. Shape (in_channels, out_channels, k, k); with
    kernel 2s and stride s (padding s/2) the layer is bilinear interpolation by s."""
    factor = (kernel_size + 1) // 2
    center = factor - 1 if kernel_size % 2 == 1 else factor - 0.5
    og = torch.arange(kernel_size, dtype=torch.float64)
    filt1d = 1 - (og - center).abs() / factor
    filt = filt1d[:, None] * filt1d[None, :]
    weight = torch.zeros(in_channels, out_channels, kernel_size, kernel_size, dtype=torch.float64)
    for c in range(min(in_channels, out_channels)):
        weight[c, c] = filt
    return weight.float()
