"""The nuclei benchmark: train networks on the DSB2018 split on this CPU, report held-out IoU.

Each model trains from ``configs/nuclei_unet.yaml`` (same data, loss, schedule; only the model
changes), then ``seglab.engine.evaluate`` measures the held-out test strip (columns 320-511).
Prints and records the foreground IoU (``iou[1]``), the training time, and a learning-curve PNG
(validation mean IoU against epoch) next to RESULTS.md.

    python benchmarks/train_nuclei.py --write
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from seglab.engine import evaluate, load_config, train
from seglab.io import save_figure

try:
    from _results import RESULTS, write_section
except ImportError:
    from benchmarks._results import RESULTS, write_section

MODELS = {  # key: (name in the table, config overrides)
    "unet": (
        "U-Net (padded, width 32, depth 4)",
        ["model.name=unet", "model.options={width: 32, depth: 4}"],
    ),
    "fcn8s": (
        "FCN-8s (VGG16 at width 0.25)",
        ["model.name=fcn8s", "model.options={width: 0.25}", "optimizer.lr=0.0005"],
    ),
    "fc_densenet56": ("FC-DenseNet56", ["model.name=fc_densenet56", "model.options={}"]),
}


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--out", default="runs/bench_nuclei")
    ap.add_argument(
        "--models", default=",".join(MODELS), help="comma-separated subset of the names"
    )
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()

    import torch

    rows, curves = [], {}
    for key in args.models.split(","):
        if key not in MODELS:
            raise SystemExit(f"unknown model {key!r}; choose from {', '.join(MODELS)}")
        name, overrides = MODELS[key]
        out = Path(args.out) / key
        cfg = load_config("configs/nuclei_unet.yaml", [*overrides, f"out={out}"])
        if (out / "metrics.jsonl").exists():
            (out / "metrics.jsonl").unlink()
            (out / "metrics.csv").unlink(missing_ok=True)
        start = time.perf_counter()
        train(cfg, progress=False)
        seconds = time.perf_counter() - start
        m = evaluate(out / "best.pt", "test", out / "test")
        log = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
        curves[name] = [(r["epoch"], r["mean_iou"]) for r in log if "mean_iou" in r]
        rows.append(
            (name, m["iou"][1], m["mean_iou"], m["pixel_accuracy"], seconds, cfg["train"]["epochs"])
        )
        print(
            f"{name}: test foreground IoU {m['iou'][1]:.3f}, mean IoU {m['mean_iou']:.3f}, {seconds / 60:.1f} min",
            flush=True,
        )

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, pts in curves.items():
        ax.plot(*zip(*pts, strict=True), marker="o", label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation mean IoU")
    ax.set_title("nuclei: learning curves (2-core CPU)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    png = RESULTS.with_name("nuclei_learning_curves.png")
    save_figure(png, fig)

    lines = [
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, PyTorch {torch.__version__}, CPU. Data: the bundled "
        "DSB2018 image split by columns (train 0-255 as 64x64 tiles at stride 32, validation 256-319, held-out "
        "test 320-511 evaluated whole); `configs/nuclei_unet.yaml` (CE + Dice, AdamW, poly, flips and scale "
        "jitter, 60 epochs), only the model changes. Target: test foreground IoU >= 0.85 within 15 minutes "
        "(k-means K=2 baseline 0.717). Learning curves: `nuclei_learning_curves.png`.",
        "",
        "| model | test foreground IoU | test mean IoU | pixel accuracy | training time |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, fg, miou, acc, seconds, _ in rows:
        lines.append(f"| {name} | **{fg:.3f}** | {miou:.3f} | {acc:.3f} | {seconds / 60:.1f} min |")
    table = "\n".join(lines)
    print()
    print(table)
    if args.write:
        write_section(
            "Nuclei, trained networks (`python benchmarks/train_nuclei.py --write`)", table
        )


if __name__ == "__main__":
    main()
