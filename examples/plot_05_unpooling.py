"""
Upsampling inside the network: unpooling
=========================================

A segmentation network downsamples to see context, then has to come back to full resolution.
Three "unpooling" layers undo a 2 x 2 pooling: *nearest neighbour* copies each value into its
2 x 2 block; *bed of nails* puts it in the top-left corner and zeros elsewhere; *max unpooling*
puts it back where the maximum was, using the *switches* that the matching max pooling remembered
(SegNet and DeconvNet pair every pooling with such an unpooling).
"""

import matplotlib.pyplot as plt
import numpy as np
import torch

from seglab.nn import BedOfNailsUnpool, MaxPool2dWithSwitches, MaxUnpool2d, NearestUnpool

x = torch.tensor([[1.0, 5, 2, 0], [0, 2, 1, 0], [3, 0, 0, 1], [0, 1, 2, 4]]).view(1, 1, 4, 4)
pooled, switches = MaxPool2dWithSwitches(2)(x)
panels = [
    ("input 4 x 4", x),
    ("max pool 2 x 2\n(switches remembered)", pooled),
    ("nearest-neighbour unpool", NearestUnpool(2)(pooled)),
    ('"bed of nails"', BedOfNailsUnpool(2)(pooled)),
    ("max unpool\n(values back at the switches)", MaxUnpool2d(2)(pooled, switches)),
]
fig, axes = plt.subplots(1, len(panels), figsize=(3 * len(panels), 3.4))
for ax, (title, t) in zip(axes, panels, strict=True):
    a = t[0, 0].numpy()
    ax.imshow(a, cmap="viridis", vmin=0, vmax=5)
    for (i, j), v in np.ndenumerate(a):
        ax.text(j, i, f"{v:g}", ha="center", va="center", color="w", fontsize=11)
    ax.set_title(title, fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
fig.tight_layout()
plt.show()
