"""Tiled inference on CPU: whole image vs tiles, an 8000 x 8000 image in bounded memory, and
PyTorch vs onnxruntime per tile.

Model: a padded U-Net (width 32, depth 4, 7.8 M parameters, the nuclei benchmark's network) with
random weights and batch-norm statistics set to a realistic spread. Each measurement runs in a
fresh process, so its peak resident memory (``resource.getrusage``, everything the process ever
held: PyTorch itself, the model, the activations, the touched pages of memory-mapped files) is its
own.

1. 1024 x 1024: ``model(image)`` in one pass vs ``predict_tiled`` (tile 512, overlap 0.25 and
   0.5): time and the largest probability difference.
2. 8000 x 8000 RGB TIFF (the nuclei image tiled, written uncompressed): ``predict_tiled`` reading
   the input by rows (``TiffRows``: one row of tiles at a time) and writing ``labels.tif`` through
   a memory map; time per megapixel and peak resident memory against the 2 GB bound.
3. Time per 512 x 512 tile (batch of 4): PyTorch eager vs the exported ONNX model in onnxruntime.

    python benchmarks/inference.py --write
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

try:
    from _results import best_time, write_section
except ImportError:
    from benchmarks._results import best_time, write_section

OPTIONS = {"width": 32, "depth": 4}


def _model():
    import torch

    from seglab.models import build

    torch.manual_seed(0)
    model = build("unet", num_classes=2, **OPTIONS)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):  # as after training: not the identity
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    return model.eval()


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kB


def _nuclei_rgb(size: int) -> np.ndarray:
    from seglab.data import nuclei

    image, _ = nuclei()
    gray = np.round(image.astype(np.float64) / image.max() * 255).astype(np.uint8)
    reps = -(-size // gray.shape[0])
    big = np.tile(gray, (reps, reps))[:size, :size]
    return np.repeat(big[..., None], 3, axis=2)


def _whole_vs_tiled(q) -> None:
    import torch

    from seglab.inference import predict_tiled

    torch.set_num_threads(os.cpu_count() or 1)
    model, image = _model(), _nuclei_rgb(1024)
    x = torch.from_numpy(image.transpose(2, 0, 1) / 255.0).float()[None]
    with torch.inference_mode():
        t_whole, whole = best_time(lambda: model(x).softmax(1)[0].numpy(), 2)
    rows = []
    for overlap in (0.25, 0.5):
        t, probs = best_time(
            lambda o=overlap: predict_tiled(
                model, image, tile=512, overlap=o, batch_size=4, output="probs"
            ),
            2,
        )
        rows.append(
            {
                "overlap": overlap,
                "seconds": t,
                "max_diff": float(np.abs(probs - whole).max()),
                "mean_diff": float(np.abs(probs - whole).mean()),
                "labels_agree": float((probs.argmax(0) == whole.argmax(0)).mean()),
            }
        )
    q.put({"whole_seconds": t_whole, "tiled": rows, "peak_mb": _peak_mb()})


def _large(q, path: str, out: str, batch_size: int) -> None:
    import torch

    from seglab.inference import predict_tiled

    torch.set_num_threads(os.cpu_count() or 1)
    model = _model()
    base = _peak_mb()
    t0 = time.perf_counter()
    labels = predict_tiled(
        model, path, tile=512, overlap=0.25, batch_size=batch_size, out=out, progress=True
    )
    seconds = time.perf_counter() - t0
    fg = float(np.asarray(labels[::8, ::8]).mean())
    q.put({"seconds": seconds, "peak_mb": _peak_mb(), "after_import_mb": base, "fg": fg})


def _onnx_vs_torch(q, folder: str) -> None:
    import torch

    from seglab.inference import export_onnx, load_onnx

    torch.set_num_threads(os.cpu_count() or 1)
    model = _model()
    path = Path(folder) / "unet.onnx"
    report = export_onnx(model, path, sizes=((512, 512), (384, 640)))
    session = load_onnx(path)
    x = torch.rand(4, 3, 512, 512, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        t_torch, ref = best_time(lambda: model(x).numpy(), 3)
    t_ort, got = best_time(lambda: session.run(None, {"image": x.numpy()})[0], 3)
    q.put(
        {
            "torch": t_torch / 4,
            "ort": t_ort / 4,
            "diff": float(np.abs(got - ref).max()),
            "export_diffs": report["max_abs_diff"],
        }
    )


def _in_child(target, *args):
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=target, args=(q, *args))
    p.start()
    try:
        return q.get(timeout=3600)
    finally:
        p.join()


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--size", type=int, default=8000, help="side of the large image")
    ap.add_argument("--batch-size", type=int, default=2, help="tiles per pass, large image")
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()

    import tifffile
    import torch

    a = _in_child(_whole_vs_tiled)
    print(a, flush=True)
    c = _in_child(_onnx_vs_torch, tempfile.mkdtemp(prefix="seglab-onnx-"))
    print(c, flush=True)
    with tempfile.TemporaryDirectory(prefix="seglab-large-") as tmp:
        path = Path(tmp) / "large.tif"
        tifffile.imwrite(path, _nuclei_rgb(args.size))  # uncompressed: readable by region
        b = _in_child(_large, str(path), str(Path(tmp) / "labels.tif"), args.batch_size)
    print(b, flush=True)

    mp_ = args.size**2 / 1e6
    lines = [
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, PyTorch {torch.__version__}, CPU, "
        "float32. Padded U-Net (width 32, depth 4, 7.8 M parameters, random weights with "
        "non-trivial batch-norm statistics), 2 classes, the nuclei image tiled to size (grey as "
        "RGB). Peak = the measuring process's maximum resident memory, PyTorch included.",
        "",
        "| run | time | result |",
        "|---|---:|---|",
        f"| 1024x1024 whole image, one pass | {a['whole_seconds']:.2f} s | reference; peak "
        f"{a['peak_mb']:.0f} MB |",
    ]
    for r in a["tiled"]:
        lines.append(
            f"| 1024x1024 tiled, tile 512, overlap {r['overlap']}, gaussian | {r['seconds']:.2f} s "
            f"| max probability difference {r['max_diff']:.2e} (mean {r['mean_diff']:.1e}), "
            f"labels agree on {r['labels_agree']:.4%} |"
        )
    within = "within" if b["peak_mb"] <= 2048 else "OVER"
    lines += [
        f"| {args.size}x{args.size} TIFF tiled (tile 512, overlap 0.25, batch {args.batch_size}), "
        f"labels.tif written by region | {b['seconds']:.0f} s = {b['seconds'] / mp_:.2f} s/MP "
        f"| peak {b['peak_mb']:.0f} MB ({within} the 2 GB bound; {b['after_import_mb']:.0f} MB "
        "after importing PyTorch and building the model) |",
        f"| one 512x512 tile (batch of 4), PyTorch eager | {c['torch']:.3f} s | |",
        f"| one 512x512 tile (batch of 4), onnxruntime | {c['ort']:.3f} s | "
        f"{c['torch'] / c['ort']:.2f}x PyTorch; max abs logit difference {c['diff']:.1e} |",
    ]
    body = "\n".join(lines)
    print(body)
    if args.write:
        write_section("Tiled inference (`python benchmarks/inference.py --write`)", body)


if __name__ == "__main__":
    main()
