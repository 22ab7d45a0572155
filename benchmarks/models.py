"""CPU speed and memory of every seglab network at 512x512, next to torchvision's references.

For each model (a fresh process each, so peak memory is its own): parameters, forward time per
image in eval mode without gradients (best of ``--repeats`` after a warm-up), forward+backward
time in train mode (one step after a warm-up step), and the process's peak resident memory.
torchvision's ``fcn_resnet50`` and ``deeplabv3_resnet50`` (random weights, 21 classes) run in the
same script. ``--write`` puts the table into benchmarks/RESULTS.md.

    python benchmarks/models.py --write
    python benchmarks/models.py --models unet,fcn8s --size 256
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform

try:
    from _results import write_section
except ImportError:
    from benchmarks._results import write_section

REFERENCES = ("torchvision fcn_resnet50", "torchvision deeplabv3_resnet50")


def _measure(spec: str, size: int, repeats: int, queue) -> None:
    import resource
    import time

    import torch
    import torchvision

    from seglab.models import build, model_info

    torch.set_num_threads(os.cpu_count() or 1)
    torch.manual_seed(0)
    if spec.startswith("torchvision "):
        fn = getattr(torchvision.models.segmentation, spec.split()[1])
        model = fn(weights=None, weights_backbone=None, num_classes=21, aux_loss=False)
    elif ":" in spec:
        name, backbone = spec.split(":")
        model = build(name, num_classes=21, backbone=backbone)
    elif spec.endswith("+memory_efficient"):
        name = spec.split("+")[0]
        model = build(name, num_classes=model_info(name).paper_classes, memory_efficient=True)
    else:
        model = build(spec, num_classes=model_info(spec).paper_classes)

    def run(x):
        out = model(x)
        return out["out"] if isinstance(out, dict) else out

    x = torch.randn(1, 3, size, size)
    model.eval()
    with torch.no_grad():
        run(x)
        best = float("inf")
        for _ in range(repeats):
            t = time.perf_counter()
            out = run(x)
            best = min(best, time.perf_counter() - t)
    model.train()
    xb = torch.randn(2, 3, size, size)  # batch norm in train mode needs two images (DeepLab's ASPP)
    for _ in range(2):  # a warm-up step, then the timed one
        t = time.perf_counter()
        loss = run(xb).float().logsumexp(1).mean()
        loss.backward()
        model.zero_grad(set_to_none=True)
        train = (time.perf_counter() - t) / 2
    queue.put(
        {
            "model": spec,
            "params": sum(p.numel() for p in model.parameters()),
            "forward": best,
            "train": train,
            "out": tuple(out.shape),
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        }
    )


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument(
        "--models", default="", help="comma-separated subset (default: all + references)"
    )
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()

    import torch

    from seglab.models import list_models

    specs = (
        args.models.split(",")
        if args.models
        else [
            *(m for m in list_models() if m not in ("patch_classifier", "mask_rcnn")),
            *(f"{m}+memory_efficient" for m in list_models() if m.startswith("fc_densenet")),
            "fcn8s:resnet50",
            *REFERENCES,
        ]
    )
    ctx = mp.get_context("spawn")
    rows = []
    for spec in specs:
        q = ctx.Queue()
        p = ctx.Process(target=_measure, args=(spec, args.size, args.repeats, q))
        p.start()
        try:
            r = q.get(timeout=1800)
        except Exception:  # the child died (its traceback is above) or hung
            p.terminate()
            print(f"{spec}: failed", flush=True)
            continue
        p.join()
        rows.append(r)
        print(
            f"{r['model']:32s} {r['params'] / 1e6:8.2f} M  forward {r['forward']:.3f} s  "
            f"forward+backward {r['train']:.3f} s  peak {r['peak_mb']:.0f} MB  out {r['out']}",
            flush=True,
        )
    lines = [
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, PyTorch {torch.__version__}, CPU, "
        f"float32, {args.size}x{args.size} images; forward = one image in eval mode without "
        f"gradients (best of {args.repeats}), forward+backward = train mode, a batch of two after a "
        "warm-up step, per image; peak = the "
        "process's maximum resident memory (model, activations, PyTorch itself). seglab models "
        "at their paper's number of classes, references at 21. Random weights.",
        "",
        "| model | parameters | forward s | forward+backward s | peak MB |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['params'] / 1e6:.2f} M | {r['forward']:.3f} | {r['train']:.3f} | {r['peak_mb']:.0f} |"
        )
    by = {r["model"]: r for r in rows}
    lean = [(m, by[m.split("+")[0]], by[m]) for m in by if m.endswith("+memory_efficient")]
    if lean and all(plain for _, plain, _ in lean):
        lines += ["", "Memory-efficient FC-DenseNet (`memory_efficient=True`: concatenation, batch "
                  "norm, ReLU and convolution of each dense layer recomputed in backward):", ""]  # fmt: skip
        for m, plain, me in lean:
            lines.append(
                f"- {m.split('+')[0]}: peak {me['peak_mb']:.0f} MB vs {plain['peak_mb']:.0f} MB "
                f"(**{me['peak_mb'] / plain['peak_mb']:.2f}x**), forward+backward "
                f"{me['train']:.2f} s vs {plain['train']:.2f} s "
                f"({100 * (me['train'] / plain['train'] - 1):+.0f} %)"
            )
    lines += [
        "",
        "No seglab model is the same computation as a torchvision one: `fcn_resnet50` is a dilated "
        "ResNet-50 (output stride 8 inside the backbone) with a single head, while seglab's "
        "`fcn8s:resnet50` keeps the ResNet's strides and adds the FCN-8s skips.",
    ]
    table = "\n".join(lines)
    print()
    print(table)
    if args.write:
        write_section(
            f"Networks on CPU at {args.size}x{args.size} (`python benchmarks/models.py --write`)",
            table,
        )


if __name__ == "__main__":
    main()
