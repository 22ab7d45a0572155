"""A run's log: one row per epoch in ``metrics.csv`` and ``metrics.jsonl``, cut back to the last
checkpoint when a killed run resumes."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from ..io import atomic_write_bytes

SEMANTIC_FIELDS = ("pixel_accuracy", "mean_accuracy", "mean_iou", "fw_iou")
INSTANCE_FIELDS = (
    "mask_ap",
    "mask_ap50",
    "mask_ap75",
    "box_ap",
    "box_ap50",
    "box_ap75",
    "f1_50",
)
_CSV_FIELDS = [
    "epoch",
    "train_loss",
    "lr",
    "seconds",
    "pixel_accuracy",
    "mean_accuracy",
    "mean_iou",
    "fw_iou",
    "loss_objectness",
    "loss_rpn_box_reg",
    "loss_classifier",
    "loss_box_reg",
    "loss_mask",
    *INSTANCE_FIELDS,
]


def truncate_log(out: Path, epochs: int) -> None:
    """Keep the log rows of the first ``epochs`` epochs (a resumed run writes the rest again)."""
    jsonl = out / "metrics.jsonl"
    if jsonl.exists():
        rows = [r for r in jsonl.read_text().splitlines() if r.strip()]
        kept = [r for r in rows if json.loads(r)["epoch"] <= epochs]
        atomic_write_bytes(jsonl, "".join(r + "\n" for r in kept).encode())
    table = out / "metrics.csv"
    if table.exists():
        lines = table.read_text().splitlines(keepends=True)
        body = [ln for ln in lines[1:] if int(ln.split(",", 1)[0]) <= epochs]
        atomic_write_bytes(table, "".join(lines[:1] + body).encode())


def log_row(out: Path, row: dict) -> None:
    """Append an epoch's row to ``metrics.jsonl`` and ``metrics.csv`` (header on the first)."""
    with open(out / "metrics.jsonl", "a") as f:
        f.write(json.dumps(row) + "\n")
    flat = {k: v for k, v in row.items() if not isinstance(v, list)}
    path = out / "metrics.csv"
    new = not path.exists()
    with open(path, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=_CSV_FIELDS, restval="")
        if new:
            w.writeheader()
        w.writerow(flat)
