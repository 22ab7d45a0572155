"""
FCN-32s, 16s and 8s: what the skip connections add
==================================================

A fully convolutional network scores classes on a coarse grid and upsamples the scores. FCN-32s
upsamples from stride 32 in one step, so its boundaries are blobs; FCN-16s adds the scores of the
stride-16 layer, and FCN-8s those of the stride-8 layer as well ("skips"), which bring back the
finer positions that pooling threw away. Here three thin FCNs (VGG16 at 1/8 of its width) are
trained for the same few steps on synthetic scenes and run on a new one.
"""

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn

from seglab import viz
from seglab.data import SyntheticScenes
from seglab.metrics import ConfusionMatrix
from seglab.models import build

torch.manual_seed(0)
train = SyntheticScenes(12, (96, 96), seed=0)
x = torch.stack([train[i][0] for i in range(len(train))])
y = torch.stack([train[i][1] for i in range(len(train))])
test_x, test_y = SyntheticScenes(1, (96, 96), seed=99)[0]

results = {}
for name in ("fcn32s", "fcn16s", "fcn8s"):
    torch.manual_seed(0)
    model = build(name, num_classes=4, width=0.125)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    for _ in range(120):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        pred = model(test_x[None]).argmax(1)[0]
    cm = ConfusionMatrix(4)
    cm.update(pred, test_y)
    results[name] = (pred.numpy(), cm.compute()["mean_iou"])
    print(f"{name}: training loss {loss.item():.3f}, test mean IoU {results[name][1]:.3f}")

# %%
# The same test scene through each: the finer the last skip, the sharper the shapes.
fig, axes = plt.subplots(1, 5, figsize=(18, 3.8))
axes[0].imshow((test_x.permute(1, 2, 0).numpy() * 255).astype(np.uint8))
axes[0].set_title("test scene")
axes[1].imshow(viz.colorize(test_y.numpy()))
axes[1].set_title("truth")
for ax, (name, (pred, miou)) in zip(axes[2:], results.items(), strict=True):
    ax.imshow(viz.colorize(pred))
    ax.set_title(f"{name}: mean IoU {miou:.2f}")
for ax in axes:
    ax.set_axis_off()
fig.tight_layout()
plt.show()
