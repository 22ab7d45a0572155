"""Evaluate a checkpoint on a split, and predict label maps for new images."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch

from .. import io, viz
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
    checkpoint: str | Path,
    images: list[str | Path],
    out: str | Path,
    device: str = "auto",
    tile: int | None = None,
    overlap: float = 0.25,
    batch_size: int = 4,
    tta=None,
    weighting: str = "gaussian",
    amp: bool = False,
    progress: bool = False,
) -> list[Path]:
    """Label map (16-bit PNG; ``labels.tif`` for TIFF input, written by region), overlay and
    summary for each image. ``tile`` segments by overlapping tiles (see
    :func:`seglab.inference.predict_tiled`); ``tta`` adds flips / scales, e.g. ``"hflip"``.
    Returns the folders written."""
    import time

    from ..inference import predict_tiled

    dev = resolve_device(device)
    if str(checkpoint).lower().endswith(".onnx"):  # an exported model: onnxruntime runs it
        from ..inference import load_onnx

        model = load_onnx(checkpoint, str(dev))
        meta = Path(checkpoint).with_suffix(".json")
        names = json.loads(meta.read_text())["classes"] if meta.is_file() else None
    else:
        net, class_map = model_from_checkpoint(load_checkpoint(checkpoint))
        model = as_dense(net).to(dev).eval()
        names = list(class_map.names)
    written = []
    for path in images:
        path = Path(path)
        image = _read_large(path)
        h, w = image.shape[:2]
        folder = Path(out) / path.stem
        folder.mkdir(parents=True, exist_ok=True)
        tiff = path.suffix.lower() in (".tif", ".tiff")
        t0 = time.perf_counter()
        labels = predict_tiled(
            model,
            image,
            tile=tile or (h, w),
            overlap=overlap,
            batch_size=batch_size,
            weighting=weighting,
            tta=tta,
            device=dev,
            amp=amp,
            out=folder / "labels.tif" if tiff else None,
            progress=progress,
        )
        seconds = time.perf_counter() - t0
        if not tiff:
            io.write_labels(folder / "labels.png", labels)
        step = max(1, math.ceil(math.sqrt(h * w / _PREVIEW_PIXELS)))  # big images: a preview
        preview = np.asarray(image[::step, ::step])
        io.write_image(folder / "overlay.png", viz.overlay(preview, labels[::step, ::step], 0.5))
        counts = np.zeros(len(names) if names else 1, np.int64)
        for y in range(0, h, 1024):  # by bands: the label map may be a memory map
            band = np.bincount(np.asarray(labels[y : y + 1024]).ravel(), minlength=len(counts))
            counts = np.pad(counts, (0, len(band) - len(counts))) + band
        io.write_json(
            folder / "summary.json",
            {
                "image": str(path),
                "height": h,
                "width": w,
                "classes": names or [str(i) for i in range(len(counts))],
                "pixels_per_class": counts.tolist(),
                "labels": "labels.tif" if tiff else "labels.png",
                "overlay_scale": 1 / step,
                "tile": tile,
                "overlap": overlap if tile else None,
                "tta": tta,
                "seconds": round(seconds, 3),
            },
        )
        written.append(folder)
    return written


_PREVIEW_PIXELS = 16e6  # overlays of larger images are drawn on a subsampled preview


def _read_large(path: Path) -> np.ndarray:
    """An image as an array; an uncompressed TIFF as a memory map (read by region)."""
    from ..inference import open_image

    return open_image(path)
