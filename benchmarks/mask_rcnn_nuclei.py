"""Instance segmentation of the nuclei split: Mask R-CNN against two semantic-then-split baselines.

1. Mask R-CNN (ResNet-18 FPN, ``configs/mask_rcnn_nuclei.yaml``) trained by the engine on the
   train strip (columns 0-255) on this CPU, capped at 20 minutes; evaluated on the held-out strip
   (columns 320-511) by ``seglab.engine.evaluate``: COCO mask AP, AP50, AP75 (pycocotools) and
   instance F1 at IoU 0.5 (detections scoring >= 0.5).
2. U-Net foreground (``configs/nuclei_unet.yaml``, trained here too) split into connected
   components, each a score-1 instance.
3. K-means K=2 on intensity (no training) split into connected components.

The same ground truth (``NucleiInstances("test")``) and the same functions
(``seglab.metrics.coco_metrics``, ``instance_f1``) score all three. Also: CPU inference time per
512 x 512 image for Mask R-CNN with ResNet-18 and ResNet-50 FPN (torchvision's default
proposals). Writes ``benchmarks/mask_rcnn_nuclei.png`` (the three methods' instances).

    python benchmarks/mask_rcnn_nuclei.py --write
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from seglab.data.instances import NucleiInstances
from seglab.engine import evaluate, load_checkpoint, load_config, model_from_checkpoint, train
from seglab.metrics import coco_metrics, instance_f1

try:
    from _results import RESULTS, best_time, save_panels, write_section
except ImportError:
    from benchmarks._results import RESULTS, best_time, save_panels, write_section


def _components_as_predictions(foreground: np.ndarray) -> dict:
    from scipy import ndimage

    labels, n = ndimage.label(foreground)
    masks = np.stack([labels == i + 1 for i in range(n)]) if n else np.zeros((0, *labels.shape))
    boxes = []
    for m in masks:
        ys, xs = np.nonzero(m)
        boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
    return {
        "masks": torch.from_numpy(masks[:, None].astype(np.float32)),
        "labels": torch.ones(n, dtype=torch.int64),
        "scores": torch.ones(n),
        "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(n, 4),
    }


def _logged_seconds(run: Path) -> float:
    import json

    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return sum(r["seconds"] for r in rows)


def _score(pred: dict, target: dict) -> dict:
    m = coco_metrics([target], [pred])
    keep = pred["scores"] >= 0.5
    f1 = instance_f1(target["masks"].numpy().astype(bool), pred["masks"][keep, 0].numpy() > 0.5)
    return m | {"f1_50": f1["f1"], "n_pred": int(keep.sum())}


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--out", default="runs/bench_mask_rcnn")
    ap.add_argument("--minutes", type=float, default=20.0, help="Mask R-CNN training budget")
    ap.add_argument(
        "--reuse",
        action="store_true",
        help="use the checkpoints already in --out (times: the epochs' seconds in metrics.jsonl)",
    )
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    out = Path(args.out)

    image, target = NucleiInstances("test")[0]
    gray = (image[0].numpy() * 255).round().astype(np.uint8)
    n_true = len(target["labels"])

    # 1. Mask R-CNN, trained by the engine within the time budget
    cfg = load_config("configs/mask_rcnn_nuclei.yaml", [f"out={out / 'mask_rcnn'}"])
    t0 = time.perf_counter()
    budget = args.minutes * 60

    class _Budget(Exception):
        pass

    def stop_when_over(_step: int) -> None:
        if time.perf_counter() - t0 > budget:
            raise _Budget

    if args.reuse:
        t_mrcnn = _logged_seconds(out / "mask_rcnn")
    else:
        try:
            train(cfg, progress=False, on_step=stop_when_over)
        except _Budget:
            print(f"training stopped at the {args.minutes:g}-minute budget", flush=True)
        t_mrcnn = time.perf_counter() - t0
    ckpt = (
        out / "mask_rcnn" / ("best.pt" if (out / "mask_rcnn" / "best.pt").exists() else "last.pt")
    )
    epochs = load_checkpoint(ckpt)["epoch"] + 1
    mr = evaluate(ckpt, split="test", out=out / "mask_rcnn" / "test")
    model, _ = model_from_checkpoint(load_checkpoint(ckpt))
    model.eval()
    with torch.no_grad():
        mr_out = model([image])[0]
    print("mask r-cnn", mr, flush=True)

    # 2. U-Net foreground + connected components
    ucfg = load_config("configs/nuclei_unet.yaml", [f"out={out / 'unet'}"])
    t0 = time.perf_counter()
    if args.reuse:
        t_unet = _logged_seconds(out / "unet")
    else:
        train(ucfg, progress=False)
        t_unet = time.perf_counter() - t0
    unet, _ = model_from_checkpoint(load_checkpoint(out / "unet" / "best.pt"))
    with torch.no_grad():
        fg = unet.eval()(image[None]).argmax(1)[0].numpy() == 1
    un = _score(_components_as_predictions(fg), target)
    print("unet", un, flush=True)

    # 3. k-means K=2 + connected components (no training)
    from seglab.cluster import KMeansSegmenter

    seg = KMeansSegmenter(2, features="gray", spatial_weight=0.0, random_state=0).fit(gray)
    means = [gray[seg.labels_ == k].mean() for k in range(2)]
    km_fg = seg.labels_ == int(np.argmax(means))
    km = _score(_components_as_predictions(km_fg), target)
    from skimage.morphology import remove_small_objects

    km_clean = remove_small_objects(km_fg, min_size=20)  # speckles are not nuclei
    km20 = _score(_components_as_predictions(km_clean), target)
    print("kmeans", km, km20, flush=True)

    # inference time per 512 x 512 image
    times = {}
    for backbone in ("resnet18", "resnet50"):
        from seglab.models import build

        net = build("mask_rcnn", num_classes=2, backbone=backbone, min_size=512, max_size=512)
        net.eval()
        x = [torch.rand(3, 512, 512)]
        with torch.no_grad():
            net(x)
            times[backbone], _ = best_time(lambda n=net, x=x: n(x), 3)
    print(times, flush=True)

    _figure(gray, target, mr_out, fg, km_clean, RESULTS.with_name("mask_rcnn_nuclei.png"))

    lines = [
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, PyTorch {torch.__version__}, CPU. "
        f"Held-out strip 512x192 (columns 320-511), {n_true} nuclei (those cut by the split line "
        "count as they are seen). Mask AP = COCO mask AP over IoU 0.50:0.95 (pycocotools); F1@0.5 "
        "= instance F1 at IoU 0.5 for detections scoring >= 0.5. Instances of the two baselines are "
        "connected components with score 1. Training time: "
        + (
            "the epochs' seconds in metrics.jsonl (--reuse; evaluation excluded)."
            if args.reuse
            else "wall clock, validation included."
        ),
        "",
        "| method | training | mask AP | AP50 | AP75 | F1@0.5 |",
        "|---|---:|---:|---:|---:|---:|",
        f"| Mask R-CNN, ResNet-18 FPN (`configs/mask_rcnn_nuclei.yaml`, {epochs} epochs) "
        f"| {t_mrcnn / 60:.1f} min | {mr['mask_ap']:.3f} | {mr['mask_ap50']:.3f} | "
        f"{mr['mask_ap75']:.3f} | {mr['f1_50']:.3f} |",
        f"| U-Net foreground + connected components (`configs/nuclei_unet.yaml`) "
        f"| {t_unet / 60:.1f} min | {un['mask_ap']:.3f} | {un['mask_ap50']:.3f} | "
        f"{un['mask_ap75']:.3f} | {un['f1_50']:.3f} |",
        f"| k-means K=2 + connected components ({km['n_pred']} of them) | none "
        f"| {km['mask_ap']:.3f} | {km['mask_ap50']:.3f} | {km['mask_ap75']:.3f} "
        f"| {km['f1_50']:.3f} |",
        f"| k-means K=2 + connected components of >= 20 pixels ({km20['n_pred']}) | none "
        f"| {km20['mask_ap']:.3f} | {km20['mask_ap50']:.3f} | {km20['mask_ap75']:.3f} "
        f"| {km20['f1_50']:.3f} |",
        "",
        f"CPU inference, one 512x512 image (min_size = max_size = 512, torchvision's default "
        f"proposals, random weights): ResNet-18 FPN {times['resnet18']:.2f} s, ResNet-50 FPN "
        f"{times['resnet50']:.2f} s. Instances: `benchmarks/mask_rcnn_nuclei.png`.",
    ]
    body = "\n".join(lines)
    print(body)
    if args.write:
        write_section(
            "Nuclei instances, Mask R-CNN (`python benchmarks/mask_rcnn_nuclei.py --write`)", body
        )


def _figure(gray, target, mr_out, unet_fg, km_clean, path: Path) -> None:
    from scipy import ndimage

    from seglab.instances import instances_from_output, instances_to_labels, overlay_instances

    shape = gray.shape
    truth = np.zeros(shape, np.int64)
    for j, m in enumerate(target["masks"].numpy().astype(bool)):
        truth[m] = j + 1
    found = sorted(instances_from_output(mr_out, 0.5, 0.5), key=lambda f: -f.score)
    panels = [
        (overlay_instances(gray, truth), f"truth ({truth.max()})"),
        (overlay_instances(gray, instances_to_labels(found, shape).astype(np.int64)), "Mask R-CNN"),
        (overlay_instances(gray, ndimage.label(unet_fg)[0]), "U-Net + components"),
        (overlay_instances(gray, ndimage.label(km_clean)[0]), "k-means + components >= 20 px"),
    ]
    save_panels(path, panels, width=2.4, height=5.5)


if __name__ == "__main__":
    main()
