"""
Transpose convolution: the adjoint of a strided convolution
===========================================================

A learnable upsampling: each input value scales a copy of the kernel, placed ``stride`` apart in
the output, and overlapping copies add up. The lecture's 1-D example: input (a, b), kernel
(x, y, z), stride 2 gives (ax, ay, az + bx, by, bz). Written as matrices, a strided convolution
is y = C x, and the transpose convolution multiplies by C transposed: it is the adjoint, the same
operation backpropagation uses for the convolution's gradient (hence the misleading name
"deconvolution"). With a bilinear kernel it is FCN's initial upsampling.
"""

import matplotlib.pyplot as plt
import torch

from seglab.nn import TransposeConv2d, bilinear_kernel

# %%
# The 1-D example, as a 1 x N image: a = 1, b = 10, kernel (1, 2, 3).
up = TransposeConv2d(1, 1, (1, 3), stride=(1, 2), bias=False)
with torch.no_grad():
    up.weight.copy_(torch.tensor([1.0, 2.0, 3.0]).view(1, 1, 1, 3))
    out = up(torch.tensor([1.0, 10.0]).view(1, 1, 1, 2))[0, 0, 0]
print("(a x, a y, a z + b x, b y, b z) =", out.tolist())

# %%
# The adjoint test: <C x, y> = <x, C^T y> for the strided convolution C and its transpose.
conv = torch.nn.Conv2d(1, 1, 3, stride=2, padding=1, bias=False)
tconv = TransposeConv2d(1, 1, 3, stride=2, padding=1, output_padding=1, bias=False)
with torch.no_grad():
    tconv.weight.copy_(conv.weight)
    x, y = torch.randn(1, 1, 8, 8), torch.randn(1, 1, 4, 4)
    print(f"<Cx, y> = {(conv(x) * y).sum():.6f}   <x, C^T y> = {(x * tconv(y)).sum():.6f}")

# %%
# Upsampling a small picture 2x with a bilinear kernel (FCN's initialisation) and with a kernel
# of ones, whose overlapping copies add up into a checkerboard.
image = torch.zeros(1, 1, 6, 6)
image[0, 0, 1:5, 2:4] = 1.0
bil = TransposeConv2d(1, 1, 4, stride=2, padding=1, bias=False)
ones = TransposeConv2d(1, 1, 3, stride=2, padding=1, output_padding=1, bias=False)
with torch.no_grad():
    bil.weight.copy_(bilinear_kernel(1, 1, 4))
    ones.weight.fill_(1.0)
    panels = [("input 6 x 6", image), ("bilinear kernel, stride 2", bil(image)),
              ("kernel of ones, stride 2", ones(image))]  # fmt: skip
fig, axes = plt.subplots(1, 3, figsize=(11, 3.8))
for ax, (title, t) in zip(axes, panels, strict=True):
    ax.imshow(t[0, 0].numpy(), cmap="magma")
    ax.set_title(title)
    ax.set_axis_off()
fig.tight_layout()
plt.show()
