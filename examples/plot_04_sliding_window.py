"""
The sliding window, and the same network made fully convolutional
=================================================================

The first deep segmentation baseline classifies a patch around every pixel: one forward pass per
pixel, and neighbouring patches recompute almost the same convolutions. Turning the classifier's
fully connected layers into convolutions (and running the pools at stride 1 with every later
layer dilated) computes the label of every pixel in one pass over the image: the same weights,
the same map, a fraction of the time. That is the step from the sliding window to fully
convolutional networks.
"""

import tempfile
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

from seglab import viz
from seglab.data import nuclei
from seglab.demo import config_dir
from seglab.engine import load_config, load_model, train
from seglab.models.sliding import segment_sliding, to_fully_convolutional

# %%
# A patch classifier (33 x 33 patches, class-balanced centres) trained briefly on the left half of
# the nuclei image; then both ways of running it on a held-out crop.
out = Path(tempfile.mkdtemp(prefix="seglab-gallery-"))
cfg = load_config(config_dir() / "patch_nuclei.yaml",
                  ["train.epochs=3", "data.patches_per_image=4096", f"out={out}"])  # fmt: skip
train(cfg, progress=False)
model, _ = load_model(out / "last.pt", "cpu")
image, mask = nuclei()
crop = (image / image.max())[200:296, 380:476].astype(np.float32)  # the held-out strip
crop = np.repeat(crop[:, :, None], 3, axis=2)  # gray -> RGB in [0, 1]
t0 = time.perf_counter()
slow = segment_sliding(model, crop, stride=1, batch_size=512).numpy()
t_slow = time.perf_counter() - t0
twin = to_fully_convolutional(model).eval()
t0 = time.perf_counter()
with torch.no_grad():
    x = torch.from_numpy(crop.transpose(2, 0, 1)).float()[None]
    fast = twin(x).argmax(1)[0].numpy()
t_fast = time.perf_counter() - t0
print(f"sliding window {t_slow:.2f} s, fully convolutional {t_fast:.3f} s, "
      f"identical pixels: {100 * (slow == fast).mean():.2f} %")  # fmt: skip

fig, axes = plt.subplots(1, 3, figsize=(12, 4))
axes[0].imshow(crop)
axes[0].set_title("nuclei crop (96 x 96)")
axes[1].imshow(viz.colorize(slow))
axes[1].set_title(f"sliding window: {96 * 96} patches, {t_slow:.2f} s")
axes[2].imshow(viz.colorize(fast))
axes[2].set_title(f"fully convolutional: one pass, {t_fast:.3f} s")
for ax in axes:
    ax.set_axis_off()
fig.tight_layout()
plt.show()
