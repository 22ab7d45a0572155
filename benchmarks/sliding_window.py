"""The sliding-window baseline against its fully convolutional twin, with the same weights.

Trains a patch classifier (``configs/patch_nuclei.yaml``, about a minute on 2 cores) unless
``--checkpoint`` is given, then on crops of the nuclei image of 128^2, 256^2 and 512^2 times
``segment_sliding`` (one 33 x 33 patch per pixel, stride 1) and the dense twin from
``to_fully_convolutional`` (one pass), and counts the pixels where the two class maps agree.
Finally both segment the held-out test strip (columns 320-511) and their nucleus IoU is reported.
Writes ``benchmarks/sliding_window.png`` (the two overlays and their disagreement).

    python benchmarks/sliding_window.py --write
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from seglab.data import NucleiTiles, nuclei
from seglab.engine import load_checkpoint, load_config, model_from_checkpoint, train
from seglab.metrics import ConfusionMatrix
from seglab.models.sliding import segment_sliding, to_fully_convolutional

try:
    from _results import RESULTS, best_time, save_panels, write_section
except ImportError:
    from benchmarks._results import RESULTS, best_time, save_panels, write_section


def _as_input(gray: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(gray.astype(np.float32) / 255.0)[None].expand(3, -1, -1).contiguous()


def _fg_iou(pred: np.ndarray, truth: np.ndarray) -> float:
    cm = ConfusionMatrix(2)
    cm.update(torch.from_numpy(truth.astype(np.int64)), torch.from_numpy(pred))
    return float(cm.compute()["iou"][1])


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--checkpoint", default=None, help="a trained patch_classifier checkpoint")
    ap.add_argument("--out", default="runs/bench_sliding")
    ap.add_argument("--sizes", default="128,256,512")
    ap.add_argument("--batch-size", type=int, default=1024)
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()

    ckpt_path = args.checkpoint
    train_seconds = None
    if ckpt_path is None:
        cfg = load_config("configs/patch_nuclei.yaml", [f"out={args.out}"])
        t0 = time.perf_counter()
        train(cfg, progress=False)
        train_seconds = time.perf_counter() - t0
        ckpt_path = str(Path(args.out) / "best.pt")
    model, _ = model_from_checkpoint(load_checkpoint(ckpt_path))
    model.eval()
    twin = to_fully_convolutional(model)
    p = model.patch_size

    image, _ = nuclei()
    gray = np.round(image.astype(np.float64) / image.max() * 255).astype(np.uint8)
    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        x = _as_input(gray[:n, :n])
        t0 = time.perf_counter()
        slow = segment_sliding(model, x, batch_size=args.batch_size, progress=False)
        t_slow = time.perf_counter() - t0
        with torch.inference_mode():
            t_fast, fast = best_time(lambda x=x: twin(x[None]).argmax(1)[0], 3)
        agree = float((slow == fast).double().mean())
        rows.append((n, t_slow, t_fast, agree))
        print(
            f"{n}x{n}: sliding {t_slow:.2f} s, fully convolutional {t_fast:.4f} s, "
            f"{t_slow / t_fast:.0f}x, maps agree on {agree:.6%} of pixels",
            flush=True,
        )

    img_test, truth = NucleiTiles("test").strip
    x = _as_input(img_test)
    t0 = time.perf_counter()
    slow = segment_sliding(model, x, batch_size=args.batch_size, progress=False).numpy()
    t_slow = time.perf_counter() - t0
    with torch.inference_mode():
        t_fast, fast = best_time(lambda: twin(x[None]).argmax(1)[0].numpy(), 3)
    iou_slow, iou_fast = _fg_iou(slow, truth), _fg_iou(fast, truth)
    test_agree = float((slow == fast).mean())
    print(
        f"held-out strip {img_test.shape[0]}x{img_test.shape[1]}: nucleus IoU sliding {iou_slow:.4f}"
        f" ({t_slow:.1f} s), fully convolutional {iou_fast:.4f} ({t_fast:.3f} s); "
        f"agree {test_agree:.6%}",
        flush=True,
    )
    _figure(img_test, slow, fast, truth, RESULTS.with_name("sliding_window.png"))

    n_params = sum(q.numel() for q in model.parameters())
    lines = [
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, PyTorch {torch.__version__}, CPU, "
        f"float32. The patch classifier of `configs/patch_nuclei.yaml` ({p}x{p} patches, "
        f"{n_params:,} parameters"
        + (f", trained here in {train_seconds:.0f} s" if train_seconds else "")
        + "); sliding = `segment_sliding` (stride 1, reflect padding, batches of "
        f"{args.batch_size} patches, one run); fully convolutional = `to_fully_convolutional` "
        "(same weights; pools at stride 1 and dilated layers), best of 3. Crops of the nuclei "
        "image (grey replicated to RGB).",
        "",
        "| image | sliding s | fully convolutional s | speed-up | identical pixels |",
        "|---|---:|---:|---:|---:|",
    ]
    for n, ts, tf, agree in rows:
        lines.append(f"| {n}x{n} | {ts:.2f} | {tf:.4f} | {ts / tf:.0f}x | {agree:.4%} |")
    lines += [
        "",
        f"Held-out test strip ({img_test.shape[0]}x{img_test.shape[1]}, columns 320-511): "
        f"nucleus IoU sliding window {iou_slow:.4f} ({t_slow:.1f} s), fully convolutional twin "
        f"{iou_fast:.4f} ({t_fast:.3f} s); identical pixels {test_agree:.4%}. Overlays: "
        "`benchmarks/sliding_window.png`.",
    ]
    body = "\n".join(lines)
    print(body)
    if args.write:
        write_section(
            "Sliding window vs fully convolutional (`python benchmarks/sliding_window.py --write`)",
            body,
        )


def _figure(image, slow, fast, truth, path: Path) -> None:
    from seglab.viz import overlay

    differ = slow != fast
    panels = [
        (image, "held-out image"),
        (overlay(image, truth, 0.45), "truth"),
        (overlay(image, slow, 0.45), "sliding window"),
        (overlay(image, fast, 0.45), "fully convolutional twin"),
        (differ.astype(np.uint8) * 255, f"differ: {int(differ.sum())} pixels"),
    ]
    save_panels(path, panels)


if __name__ == "__main__":
    main()
