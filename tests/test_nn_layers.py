import itertools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from seglab.nn import (
    BedOfNailsUnpool,
    MaxPool2dWithSwitches,
    MaxUnpool2d,
    NearestUnpool,
    TransposeConv2d,
    bilinear_kernel,
)

GRID = [
    # kernel, stride, padding, output_padding, groups, dilation
    (k, s, p, op, g, d)
    for k, s, p, op, g, d in itertools.product(
        (1, 2, 3, 4), (1, 2, 3), (0, 1, 2), (0, 1), (1, 2), (1, 2)
    )
    if op < max(s, d) and p <= (d * (k - 1)) // 2 + 1
]


@pytest.mark.parametrize("k, s, p, op, g, d", GRID)
def test_transpose_conv_equals_torch(k, s, p, op, g, d):
    torch.manual_seed(0)
    ref = nn.ConvTranspose2d(4, 6, k, s, p, op, groups=g, dilation=d)
    ours = TransposeConv2d(4, 6, k, s, p, op, groups=g, dilation=d)
    ours.load_state_dict(ref.state_dict())  # same parameter names and shapes
    x = torch.randn(2, 4, 5, 7)
    torch.testing.assert_close(ours(x), ref(x), atol=1e-5, rtol=1e-5)
    ref.load_state_dict(ours.state_dict())


@pytest.mark.parametrize("k, s, p", [(3, 1, 1), (3, 2, 1), (4, 2, 1), (5, 3, 2)])
def test_transpose_conv_is_the_adjoint_of_conv(k, s, p):
    torch.manual_seed(1)
    conv = nn.Conv2d(3, 5, k, s, p, bias=False).double()
    x = torch.randn(2, 3, 11, 13, dtype=torch.float64)
    y = torch.randn_like(conv(x))
    # output_padding gives back the rows the strided convolution's size rounding dropped
    op = tuple(
        n - ((m - 1) * s - 2 * p + k) for n, m in zip(x.shape[-2:], y.shape[-2:], strict=True)
    )
    tc = TransposeConv2d(5, 3, k, s, p, output_padding=op, bias=False).double()
    with torch.no_grad():
        tc.weight.copy_(conv.weight)  # same tensor: (out_conv, in_conv, k, k) = (in_T, out_T, k, k)
    ty = tc(y)
    assert ty.shape == x.shape
    lhs = (conv(x) * y).sum()
    rhs = (x * ty).sum()
    assert lhs.item() == pytest.approx(rhs.item(), rel=1e-10)


def test_transpose_conv_gradients_flow():
    layer = TransposeConv2d(2, 3, 3, stride=2, padding=1, output_padding=1).double()
    x = torch.randn(1, 2, 4, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(layer, (x,))
    layer(x).sum().backward()
    assert layer.weight.grad is not None and layer.bias.grad is not None


def test_max_unpooling_restores_maxima_at_their_places():
    torch.manual_seed(2)
    x = torch.randn(2, 3, 8, 10)
    pooled, switches = MaxPool2dWithSwitches(2)(x)
    ref_pooled, ref_idx = nn.MaxPool2d(2, return_indices=True)(x)
    torch.testing.assert_close(pooled, ref_pooled)
    assert torch.equal(switches, ref_idx)
    up = MaxUnpool2d(2)(pooled, switches)
    torch.testing.assert_close(up, nn.MaxUnpool2d(2)(pooled, switches))
    blocks = up.view(2, 3, 4, 2, 5, 2)
    assert int((blocks != 0).sum(dim=(3, 5)).max()) == 1  # one value per 2x2 block
    mask = up != 0
    torch.testing.assert_close(up[mask], x[mask])  # each maximum sits where it came from
    torch.testing.assert_close(blocks.sum(dim=(3, 5)), pooled)  # the only value is the max


def test_max_unpool_output_size_restores_odd_sizes():
    x = torch.randn(1, 2, 7, 9)
    pooled, sw = MaxPool2dWithSwitches(2)(x)
    assert MaxUnpool2d(2)(pooled, sw, output_size=x.shape[-2:]).shape == x.shape


def test_nearest_and_bed_of_nails_follow_their_definitions():
    x = torch.arange(1.0, 5.0).view(1, 1, 2, 2)
    near = NearestUnpool(2)(x)
    nails = BedOfNailsUnpool(2)(x)
    assert near[0, 0].tolist() == [[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4], [3, 3, 4, 4]]
    assert nails[0, 0].tolist() == [[1, 0, 2, 0], [0, 0, 0, 0], [3, 0, 4, 0], [0, 0, 0, 0]]
    y = torch.randn(2, 3, 5, 4)
    torch.testing.assert_close(
        NearestUnpool(3)(y), F.interpolate(y, scale_factor=3, mode="nearest")
    )


def test_bilinear_kernel_is_bilinear_interpolation():
    torch.manual_seed(3)
    x = torch.randn(1, 2, 6, 7)
    up = nn.ConvTranspose2d(2, 2, 4, stride=2, padding=1, bias=False)
    with torch.no_grad():
        up.weight.copy_(bilinear_kernel(2, 2, 4))
    ref = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
    torch.testing.assert_close(up(x)[:, :, 1:-1, 1:-1], ref[:, :, 1:-1, 1:-1], atol=1e-5, rtol=1e-5)


def test_layers_reject_bad_input():
    with pytest.raises(ValueError, match="scale"):
        NearestUnpool(0)
    with pytest.raises(ValueError, match="B, C, H, W"):
        BedOfNailsUnpool(2)(torch.zeros(3, 4, 4))
    with pytest.raises(ValueError, match="input channels"):
        TransposeConv2d(3, 2, 3)(torch.zeros(1, 4, 5, 5))
    with pytest.raises(ValueError, match="output_padding"):
        TransposeConv2d(3, 2, 3, stride=1, output_padding=1)
