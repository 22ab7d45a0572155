"""
U-Net and FC-DenseNet on the nuclei image
=========================================

U-Net (an encoder, a decoder, and a skip at every scale) and FC-DenseNet (dense blocks, where
every layer sees all the earlier maps, and far fewer parameters) trained briefly by seglab's
engine on the left half of a fluorescence image, and evaluated on a held-out strip: the learning
curves, the predictions, and what each costs in parameters.
"""

import json
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from seglab import viz
from seglab.demo import config_dir
from seglab.engine import evaluate, load_config, load_model, train
from seglab.models import count_parameters
from seglab.segment import segment_with_model

CONFIGS = config_dir()  # the shipped configs/ of this checkout
out = Path(tempfile.mkdtemp(prefix="seglab-gallery-"))
runs = {
    "U-Net": ["model.options={width: 16, depth: 3}", "train.epochs=12"],
    "FC-DenseNet56": [
        "model.name=fc_densenet56",
        "model.options={memory_efficient: true}",
        "train.epochs=6",
    ],
}
curves, scores = {}, {}
for name, overrides in runs.items():
    cfg = load_config(CONFIGS / "nuclei_unet.yaml", [*overrides, f"out={out / name}",
                                                     "train.eval_every=2"])  # fmt: skip
    train(cfg, progress=False)
    rows = [json.loads(r) for r in (out / name / "metrics.jsonl").read_text().splitlines()]
    curves[name] = rows
    scores[name] = evaluate(out / name / "last.pt", "test", out / name / "test")

# %%
# Learning curves: training loss every epoch, validation mean IoU every other epoch.
fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
for name, rows in curves.items():
    axes[0].plot([r["epoch"] for r in rows], [r["train_loss"] for r in rows], label=name)
    val = [r for r in rows if "mean_iou" in r]
    axes[1].plot([r["epoch"] for r in val], [r["mean_iou"] for r in val], "o-", label=name)
axes[0].set_title("training loss")
axes[1].set_title("validation mean IoU")
for ax in axes:
    ax.set_xlabel("epoch")
    ax.legend()
fig.tight_layout()

# %%
# Predictions on the held-out strip (columns 320-511), and parameters.
from seglab.data import nuclei  # noqa: E402

image, mask = nuclei()
strip = image[:, 320:].astype(np.float32)
strip = np.round(strip / strip.max() * 255).astype(np.uint8)
fig, axes = plt.subplots(1, 3, figsize=(9, 8))
axes[0].imshow(viz.colorize((mask[:, 320:] > 0).astype(int)))
axes[0].set_title("truth")
for ax, name in zip(axes[1:], runs, strict=True):
    model, class_map = load_model(out / name / "last.pt", "cpu")
    labels = segment_with_model(strip, model, class_map.names).labels
    params = count_parameters("unet" if name == "U-Net" else "fc_densenet56", 2,
                              **({"width": 16, "depth": 3} if name == "U-Net" else {}))  # fmt: skip
    ax.imshow(viz.overlay(strip, labels))
    ax.set_title(f"{name}\n{params / 1e6:.2f} M parameters\n"
                 f"test nucleus IoU {scores[name]['iou'][1]:.3f}")  # fmt: skip
for ax in axes:
    ax.set_axis_off()
fig.tight_layout()
plt.show()
