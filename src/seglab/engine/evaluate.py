"""Evaluate a checkpoint on a data split: metrics.json and the pictures that explain it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from .. import io, viz
from .._checks import eval_mode, resolve_device
from ..data import ClassMap, make_dataset
from ..metrics import ConfusionMatrix
from ..models import is_instance_model
from ..models.sliding import as_dense
from .checkpoint import load_checkpoint, model_from_checkpoint


def run_evaluation(model: nn.Module, dataset, class_map: ClassMap, device: torch.device) -> dict:
    """Confusion-matrix metrics of ``model`` over ``dataset`` (one image at a time, full size);
    for an instance model, COCO box / mask AP and instance F1 (:func:`run_instance_evaluation`).
    The model's training flag is restored afterwards."""
    if is_instance_model(model):
        return run_instance_evaluation(model, dataset, device)[0]
    cm = ConfusionMatrix(class_map.num_classes, class_map.ignore_index)
    # a patch classifier is evaluated as its fully convolutional twin
    with eval_mode(as_dense(model)) as net:
        for i in range(len(dataset)):
            x, y = dataset[i]
            cm.update(y.to(device), net(x.unsqueeze(0).to(device)).argmax(1)[0])
    return cm.compute()


def run_instance_evaluation(
    model: nn.Module,
    dataset,
    device: torch.device,
    score_threshold: float = 0.5,
    mask_threshold: float = 0.5,
) -> tuple[dict, list[dict]]:
    """COCO box and mask AP / AP50 / AP75 (pycocotools, every detection) and instance F1 at IoU
    0.5 (detections scoring at least ``score_threshold``), pooled over ``dataset``; returns the
    metrics and the per-image outputs (on CPU)."""
    from ..metrics import coco_metrics, f1_counts, instance_f1

    targets, outputs = [], []
    tp = fp = fn = 0
    for i in range(len(dataset)):
        x, t = dataset[i]
        with eval_mode(model):
            out = {k: v.cpu() for k, v in model([x.to(device)])[0].items()}
        targets.append(t)
        outputs.append(out)
        keep = out["scores"] >= score_threshold
        counts = instance_f1(
            t["masks"].numpy().astype(bool), (out["masks"][keep, 0] > mask_threshold).numpy()
        )
        tp, fp, fn = tp + counts["tp"], fp + counts["fp"], fn + counts["fn"]
    metrics = coco_metrics(targets, outputs, mask_threshold)
    f1 = f1_counts(tp, fp, fn)
    metrics |= {"f1_50": f1["f1"], "precision_50": f1["precision"], "recall_50": f1["recall"]}
    metrics |= {"tp": tp, "fp": fp, "fn": fn}
    return metrics, outputs


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

    io.check_writable(out, "the evaluation")
    ckpt = load_checkpoint(checkpoint)
    cfg = ckpt["config"]
    if data_root is not None:
        cfg["data"]["root"] = str(data_root)
    model, class_map = model_from_checkpoint(ckpt)
    model = as_dense(model)  # a patch classifier segments whole images as its dense twin
    dev = resolve_device(device)
    model.to(dev)
    dataset = make_dataset(cfg["data"], split, train=False, seed=cfg["train"]["seed"])
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


def describe(metrics: dict, split: str) -> str:
    """The metrics of :func:`evaluate` as a few lines of text (what ``seglab evaluate`` prints)."""
    m = metrics
    if "mask_ap" in m:  # an instance model
        return (
            f"{split}: mask AP {m['mask_ap']:.4f}  AP50 {m['mask_ap50']:.4f}  AP75 "
            f"{m['mask_ap75']:.4f}  box AP {m['box_ap']:.4f}  F1@0.5 {m['f1_50']:.4f}"
        )
    lines = [
        f"{split}: pixel accuracy {m['pixel_accuracy']:.4f}  mean accuracy "
        f"{m['mean_accuracy']:.4f}  mean IoU {m['mean_iou']:.4f}  f.w. IoU {m['fw_iou']:.4f}"
    ]
    lines += [
        f"  {name:20s} IoU {iou:.4f}" for name, iou in zip(m["classes"], m["iou"], strict=True)
    ]
    return "\n".join(lines)
