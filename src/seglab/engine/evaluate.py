"""Evaluate a checkpoint on a split, and predict label maps for new images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .. import io, viz
from ..data.datasets import to_tensor_pair
from ..models.sliding import as_dense
from .trainer import (
    load_checkpoint,
    make_dataset,
    model_from_checkpoint,
    resolve_device,
    run_evaluation,
)


def evaluate(
    checkpoint: str | Path,
    split: str = "test",
    out: str | Path = "seglab-eval",
    data_root: str | None = None,
    device: str = "auto",
) -> dict:
    """Metrics of a checkpoint on ``split`` of the data it was trained on (or of ``data_root``
    with the same layout). Writes ``metrics.json`` (the FCN metrics, per-class IoU / accuracy /
    precision / Dice, the confusion matrix), ``confusion.png`` and ``samples.png`` (image, truth,
    prediction for the first images)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    if split not in ("train", "val", "test"):
        raise ValueError(f"split must be train, val or test, got {split!r}")
    ckpt = load_checkpoint(checkpoint)
    cfg = ckpt["config"]
    if data_root is not None:
        cfg["data"]["root"] = str(data_root)
    model, class_map = model_from_checkpoint(ckpt)
    model = as_dense(model)  # a patch classifier segments whole images as its dense twin
    dev = resolve_device(device)
    model.to(dev)
    dataset = make_dataset(cfg, split, train=False)
    metrics = run_evaluation(model, dataset, class_map, dev)
    metrics["classes"] = list(class_map.names)
    metrics["split"] = split
    metrics["checkpoint"] = str(checkpoint)
    out = Path(out)
    io.write_json(out / "metrics.json", metrics)

    conf = np.asarray(metrics["confusion"], dtype=np.float64)
    norm = conf / np.maximum(conf.sum(axis=1, keepdims=True), 1)
    k = len(class_map.names)
    fig, ax = plt.subplots(figsize=(1.2 + 0.5 * k, 1 + 0.5 * k))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(k), class_map.names, rotation=45, ha="right")
    ax.set_yticks(range(k), class_map.names)
    ax.set_xlabel("prediction")
    ax.set_ylabel("truth")
    for i in range(k):
        for j in range(k):
            ax.text(j, i, f"{norm[i, j]:.2f}", ha="center", va="center", fontsize=7)
    ax.set_title(f"{split}: mean IoU {metrics['mean_iou']:.3f}")
    io.save_figure(out / "confusion.png", fig)
    plt.close(fig)

    rows = []
    model.eval()
    with torch.no_grad():
        for i in range(min(4, len(dataset))):
            x, y = dataset[i]
            pred = model(x.unsqueeze(0).to(dev)).argmax(1)[0].cpu().numpy()
            img = (x.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
            truth = y.numpy().copy()
            truth[truth == class_map.ignore_index] = 0
            rows.append(np.concatenate([img, viz.colorize(truth), viz.colorize(pred)], axis=1))
    if rows:
        width = max(r.shape[1] for r in rows)
        grid = np.concatenate(
            [np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0))) for r in rows], axis=0
        )
        io.write_image(out / "samples.png", grid)
    return metrics


def predict(
    checkpoint: str | Path, images: list[str | Path], out: str | Path, device: str = "auto"
) -> list[Path]:
    """Label PNG (16-bit) and overlay for each image; returns the folders written."""
    ckpt = load_checkpoint(checkpoint)
    model, class_map = model_from_checkpoint(ckpt)
    model = as_dense(model)
    dev = resolve_device(device)
    model.to(dev).eval()
    written = []
    with torch.no_grad():
        for path in images:
            image = io.read_image(path)
            x, _ = to_tensor_pair(image, np.zeros(image.shape[:2], np.int64))
            labels = model(x.unsqueeze(0).to(dev)).argmax(1)[0].cpu().numpy()
            folder = Path(out) / Path(path).stem
            io.write_labels(folder / "labels.png", labels)
            io.write_image(folder / "overlay.png", viz.overlay(image, labels, 0.5))
            io.write_json(
                folder / "summary.json",
                {
                    "image": str(path),
                    "classes": list(class_map.names),
                    "pixels_per_class": np.bincount(
                        labels.ravel(), minlength=class_map.num_classes
                    ).tolist(),
                },
            )
            written.append(folder)
    return written
