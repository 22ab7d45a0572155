"""
Large images: tiled inference, test-time augmentation, ONNX
===========================================================

A network sees a whole image only if it fits in memory. Tiled inference cuts the image into
overlapping tiles, runs them a few at a time, and blends the class probabilities with a window
weight, giving up half the overlap on the sides where a tile saw padding instead of image: no
seams, and, for a network whose receptive field fits in half the overlap, exactly the whole-image
result. Test-time augmentation averages the probabilities of flipped copies. The same network
exported to ONNX gives the same logits through onnxruntime.
"""

import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

from seglab.data import nuclei
from seglab.inference import predict_tiled
from seglab.models import build

torch.manual_seed(0)
image, _ = nuclei()
image = np.round(image / image.max() * 255).astype(np.uint8)  # 512 x 512
model = build("unet", num_classes=2, width=8, depth=3).eval()  # random weights: only the
# equivalence matters here

whole = predict_tiled(model, image, tile=512, output="probs")[1]
tiled = predict_tiled(model, image, tile=128, overlap=0.5, output="probs")[1]
naive = predict_tiled(model, image, tile=128, overlap=0.0, output="probs")[1]
tta = predict_tiled(model, image, tile=128, overlap=0.5, output="probs", tta="hflip,vflip")[1]
print(f"tiled (overlap 0.5) vs whole: max difference {np.abs(tiled - whole).max():.2e}")
print(f"tiles without overlap vs whole: max difference {np.abs(naive - whole).max():.2e}")

fig, axes = plt.subplots(1, 4, figsize=(16, 4))
for ax, (title, a, cmap) in zip(axes, (
    ("P(nucleus), whole image", whole, "viridis"),
    ("|tiled, overlap 0.5 - whole|", np.abs(tiled - whole), "magma"),
    ("|tiles without overlap - whole|: seams", np.abs(naive - whole), "magma"),
    ("with TTA (flips)", tta, "viridis"),
), strict=True):  # fmt: skip
    ax.imshow(a, cmap=cmap, vmin=0, vmax=1 if cmap == "viridis" else None)
    ax.set_title(title, fontsize=10)
    ax.set_axis_off()
fig.tight_layout()

# %%
# ONNX: export with dynamic sizes, run with onnxruntime, compare the logits.
try:
    from seglab.inference import export_onnx

    path = Path(tempfile.mkdtemp()) / "unet.onnx"
    report = export_onnx(model, path)
    print("ONNX max abs difference per checked size:", report["max_abs_diff"])
except ValueError as exc:  # onnxruntime not installed
    print(exc)
plt.show()
