"""The lecture's in-network upsampling layers, each applied to the same small array.

Panels: a 4x4 input; its 2x2 max pooling (with the switches it remembers); then nearest-neighbour
unpooling, "bed of nails", max unpooling with the switches, a 3x3 stride-2 transpose convolution
with an all-ones kernel (overlaps summed, visible as the brighter seams) and the same layer with
FCN's bilinear kernel. All of them from ``seglab.nn``.

    python examples/upsampling_figure.py --out upsampling.png
"""

from __future__ import annotations

import argparse

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch

from seglab.io import save_figure
from seglab.nn import (
    BedOfNailsUnpool,
    MaxPool2dWithSwitches,
    MaxUnpool2d,
    NearestUnpool,
    TransposeConv2d,
    bilinear_kernel,
)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--out", default="upsampling.png")
    args = ap.parse_args()

    x = torch.tensor([[1.0, 5, 2, 0], [0, 2, 1, 0], [3, 0, 0, 1], [0, 1, 2, 4]]).view(1, 1, 4, 4)
    pooled, switches = MaxPool2dWithSwitches(2)(x)
    ones = TransposeConv2d(1, 1, 3, stride=2, padding=1, output_padding=1, bias=False)
    bil = TransposeConv2d(1, 1, 4, stride=2, padding=1, bias=False)
    with torch.no_grad():
        ones.weight.fill_(1.0)
        bil.weight.copy_(bilinear_kernel(1, 1, 4))
        panels = [
            ("input 4x4", x),
            ("max pool 2x2 -> 2x2\n(switches remembered)", pooled),
            ("nearest unpool", NearestUnpool(2)(pooled)),
            ('"bed of nails"', BedOfNailsUnpool(2)(pooled)),
            ("max unpool\n(values back at the switches)", MaxUnpool2d(2)(pooled, switches)),
            ("transpose conv 3x3, stride 2\nkernel of ones: overlaps add", ones(pooled)),
            ("transpose conv 4x4, stride 2\nbilinear kernel (FCN)", bil(pooled)),
        ]
    fig, axes = plt.subplots(1, len(panels), figsize=(3 * len(panels), 3.6))
    for ax, (title, t) in zip(axes, panels, strict=True):
        a = t[0, 0].numpy()
        ax.imshow(a, cmap="viridis", vmin=0, vmax=max(5.0, float(a.max())))
        for (i, j), v in np.ndenumerate(a):
            ax.text(
                j,
                i,
                f"{v:g}",
                ha="center",
                va="center",
                color="w",
                fontsize=8 if a.shape[0] > 4 else 11,
            )
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    save_figure(args.out, fig)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
