"""
FCN-32s, 16s and 8s: what the skip connections add
==================================================

A fully convolutional network scores classes on a coarse grid and upsamples the scores. FCN-32s
upsamples from stride 32 in one step, so its boundaries are blobs; FCN-16s adds the scores of the
stride-16 layer, and FCN-8s those of the stride-8 layer as well ("skips"), which bring back the
finer positions that pooling threw away. Here three thin FCNs (VGG16 at 1/8 of its width) are fit
to the same synthetic scene for the same number of steps: what each can represent shows in how
sharp its shapes come out.
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
test_x, test_y = SyntheticScenes(1, (96, 96), seed=3)[0]
x, y = test_x[None], test_y[None]

results = {}
for name in ("fcn32s", "fcn16s", "fcn8s"):
    torch.manual_seed(0)
    model = build(name, num_classes=4, width=0.125)
    for m in model.modules():  # dropout only slows the fit
        if isinstance(m, (nn.Dropout, nn.Dropout2d)):
            m.p = 0.0
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(300):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        pred = model(x).argmax(1)[0]
    cm = ConfusionMatrix(4)
    cm.update(test_y, pred)
    results[name] = (pred.numpy(), cm.compute()["mean_iou"])
    print(f"{name}: loss {loss.item():.3f}, mean IoU {results[name][1]:.3f}")

# %%
# The finer the last skip, the sharper the shapes each can draw.
fig, axes = plt.subplots(1, 5, figsize=(18, 3.8))
axes[0].imshow((test_x.permute(1, 2, 0).numpy() * 255).astype(np.uint8))
axes[0].set_title("scene")
axes[1].imshow(viz.colorize(test_y.numpy()))
axes[1].set_title("truth")
for ax, (name, (pred, miou)) in zip(axes[2:], results.items(), strict=True):
    ax.imshow(viz.colorize(pred))
    ax.set_title(f"{name}: mean IoU {miou:.2f}")
for ax in axes:
    ax.set_axis_off()
fig.tight_layout()
plt.show()
