"""Evaluate a checkpoint on a split, and predict label maps for new images."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch

from .. import io, viz
from ..models import is_instance_model
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
    if is_instance_model(model):
        return _evaluate_instances(model, dataset, class_map, dev, split, checkpoint, Path(out))
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


def _evaluate_instances(model, dataset, class_map, dev, split, checkpoint, out: Path) -> dict:
    """metrics.json (COCO box / mask AP, AP50, AP75; F1, precision, recall at IoU 0.5) and
    instances_<i>.png for the first images: the image, the true and the predicted instances."""
    from ..instances import instances_from_output, instances_to_labels, overlay_instances
    from .trainer import run_instance_evaluation

    metrics, outputs = run_instance_evaluation(model, dataset, dev)
    metrics |= {"classes": list(class_map.names), "split": split, "checkpoint": str(checkpoint)}
    io.write_json(out / "metrics.json", metrics)
    for i in range(min(4, len(dataset))):
        x, target = dataset[i]
        image = (x.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        shape = image.shape[:2]
        truth = np.zeros(shape, np.int64)
        for j, m in enumerate(target["masks"].numpy().astype(bool)):
            truth[m] = j + 1
        found = instances_from_output(outputs[i], 0.5, 0.5)
        pred = instances_to_labels(sorted(found, key=lambda f: -f.score), shape)
        panel = np.concatenate(
            [
                image,
                overlay_instances(image, truth),
                overlay_instances(image, pred.astype(np.int64)),
            ],
            axis=1,
        )
        io.write_image(out / f"instances_{i}.png", panel)
    return metrics


def _predict_instances(model, class_map, image_paths, out, dev, options: dict) -> list[Path]:
    """instances.png (16-bit ids, best score = 1), instances.json (COCO results: RLE masks and
    scores), overlay.png (a colour per instance), semantic.png on request, summary.json."""
    import time

    from ..instances import (
        instances_to_labels,
        instances_to_semantic,
        overlay_instances,
        predict_instances,
        to_coco_results,
    )

    written = []
    for image_id, path in enumerate(image_paths):
        path = Path(path)
        image = io.read_image(path)
        shape = image.shape[:2]
        t0 = time.perf_counter()
        found = predict_instances(
            model,
            image,
            score_threshold=options["score_threshold"],
            mask_threshold=options["mask_threshold"],
            tile=options["tile"],
            overlap=options["overlap"],
            device=dev,
            progress=options["progress"],
        )
        seconds = time.perf_counter() - t0
        folder = Path(out) / path.stem
        labels = instances_to_labels(found, shape)
        io.write_labels(folder / "instances.png", labels)
        io.write_json(folder / "instances.json", to_coco_results(found, shape, image_id))
        io.write_image(folder / "overlay.png", overlay_instances(image, labels.astype(np.int64)))
        if options["semantic"]:
            io.write_labels(folder / "semantic.png", instances_to_semantic(found, shape))
        per_class = np.bincount([f.label for f in found], minlength=class_map.num_classes)
        io.write_json(
            folder / "summary.json",
            {
                "image": str(path),
                "height": int(shape[0]),
                "width": int(shape[1]),
                "instances": len(found),
                "instances_per_class": {
                    n: int(c) for n, c in zip(class_map.names, per_class, strict=False)
                },
                "score_threshold": options["score_threshold"],
                "mask_threshold": options["mask_threshold"],
                "tile": options["tile"],
                "seconds": round(seconds, 3),
            },
        )
        written.append(folder)
    return written


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
    model_name: str | None = None,
    score_threshold: float = 0.5,
    mask_threshold: float = 0.5,
    semantic: bool = False,
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
        if "masks" in [o.name for o in model.get_outputs()]:
            raise ValueError(
                f"{checkpoint} is an exported Mask R-CNN (outputs boxes, labels, scores, masks): "
                "run it with onnxruntime directly, or predict from its seglab checkpoint"
            )
        meta = Path(checkpoint).with_suffix(".json")
        names = json.loads(meta.read_text())["classes"] if meta.is_file() else None
    else:
        ckpt = load_checkpoint(checkpoint)
        held = ckpt["config"]["model"]["name"]
        if model_name is not None and held != model_name:
            raise ValueError(
                f"{checkpoint} holds a {held} model, not {model_name}; drop --model or pass the "
                f"checkpoint of a {model_name}"
            )
        net, class_map = model_from_checkpoint(ckpt)
        if is_instance_model(net):
            options = {
                "score_threshold": score_threshold,
                "mask_threshold": mask_threshold,
                "tile": tile,
                "overlap": overlap,
                "semantic": semantic,
                "progress": progress,
            }
            return _predict_instances(net.to(dev), class_map, images, out, dev, options)
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
