"""Throughput of a folder of images with 1 and 2 processes (``torchrun``), each image written once.

    python benchmarks/batch.py [--images 200] [--size 256] [--write]

Makes a folder of synthetic photos (seeded), then runs ``seglab segment`` (k-means, K = 4) and
``seglab predict`` (a small U-Net trained here for one epoch) over it, once as one process and
once under ``torchrun --nproc_per_node 2``, each process limited to one thread so the two runs use
the same cores; reports images per second and checks that every image has exactly one result.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _results import write_section

from seglab.data import synthetic_scene
from seglab.io import write_image

REPO = Path(__file__).resolve().parents[1]


def _run(cmd: list[str], env: dict) -> float:
    t = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{r.stderr[-3000:]}")
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--write", action="store_true", help="record the table in RESULTS.md")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="seglab-batch-"))
    folder = tmp / "images"
    for i in range(args.images):
        image, _ = synthetic_scene((args.size, args.size), seed=i)
        write_image(folder / f"scene{i:05d}.png", image)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}
    seglab = [sys.executable, "-m", "seglab"]
    run = tmp / "run"
    train = [*seglab, "train", str(REPO / "configs" / "quickstart.yaml"), "--out", str(run),
             "--quiet", "--set", "train.epochs=1"]  # fmt: skip
    _run(train, env)
    torchrun = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "-m",
        "seglab",
    ]
    jobs = {
        "segment (k-means, K=4)": ["segment", str(folder), "--k", "4", "--quiet"],
        "predict (U-Net w16 d3)": ["predict", str(run / "last.pt"), str(folder), "--quiet"],
    }
    rows = []
    for name, job in jobs.items():
        times = {}
        for procs, prefix in ((1, seglab), (2, torchrun)):
            out = tmp / f"out-{len(rows)}-{procs}"
            times[procs] = _run([*prefix, *job, "--out", str(out)], env)
            written = sorted(p.name for p in out.iterdir())
            assert len(written) == args.images, (name, procs, len(written))
        rows.append((name, times[1], times[2]))
        print(f"{name}: 1 process {args.images / times[1]:.1f} images/s, "
              f"2 processes {args.images / times[2]:.1f} images/s ({times[1] / times[2]:.2f}x)")  # fmt: skip
    if args.write:
        lines = [
            f"Machine: {platform.machine()}, {os.cpu_count()} cores. {args.images} synthetic "
            f"{args.size}x{args.size} PNGs; one thread per process; wall time of the whole "
            "command (start-up, model loading and writing included); every image written once.",
            "",
            "| job | 1 process: images/s | 2 processes (torchrun): images/s | speed-up |",
            "|---|---:|---:|---:|",
        ]
        for name, t1, t2 in rows:
            n = args.images
            lines.append(f"| {name} | {n / t1:.1f} | {n / t2:.1f} | {t1 / t2:.2f}x |")
        write_section(
            "Folders over processes (`python benchmarks/batch.py --write`)", "\n".join(lines)
        )


if __name__ == "__main__":
    main()
