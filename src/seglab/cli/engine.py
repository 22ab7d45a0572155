"""``seglab train | evaluate | predict | export | models``: parse, call :mod:`seglab.engine`."""

from __future__ import annotations

import argparse
from pathlib import Path

from . import _common as c

PREDICT_EXAMPLES = """\
examples:
  seglab predict runs/qs/best.pt scans/ --skip-existing --out predictions
  seglab predict runs/qs/best.pt slide.tif --tile 512 --overlap 0.25 --tta hflip
  seglab predict model.onnx slide.tif --tile 512
  seglab predict --model mask_rcnn runs/cells/best.pt cells.png --score-threshold 0.6
  torchrun --nnodes 4 --nproc_per_node 8 -m seglab predict runs/qs/best.pt scans/ --out preds
"""
PREDICT_OPTIONS = (
    "tile",
    "overlap",
    "batch_size",
    "weighting",
    "tta",
    "amp",
    "score_threshold",
    "mask_threshold",
    "semantic",
    "max_pixels",
)


def add_parsers(sub) -> None:
    # fmt: off
    """The ``train``, ``evaluate``, ``predict``, ``export`` and ``models`` subcommands."""
    tr = c.command(sub, "train", "train a network from a YAML config",
                   "Train a segmentation network as a YAML config says (see configs/). A run "
                   "folder that holds an earlier run is refused unless --resume or --overwrite.",
                   "examples:\n  seglab train configs/quickstart.yaml --out runs/qs\n"
                   "  seglab train configs/nuclei_unet.yaml --set train.epochs=5\n"
                   "  seglab train configs/quickstart.yaml --out runs/qs --resume\n")
    tr.add_argument("config", help="YAML config file")
    tr.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a config field (repeatable)")
    tr.add_argument("--out", help="run folder (default: the config's 'out')")
    tr.add_argument("--resume", action="store_true", help="continue the run in OUT from last.pt")
    tr.add_argument("--overwrite", action="store_true", help="replace an earlier run in OUT")
    tr.add_argument("--quiet", action="store_true", help="no progress bars or messages")
    tr.set_defaults(run=run_train)

    ev = c.command(sub, "evaluate", "measure a checkpoint on a data split",
                   "Evaluate a checkpoint: metrics.json (pixel accuracy, mean IoU, ...; COCO AP "
                   "for instance models), confusion.png and samples.png.",
                   "example:\n  seglab evaluate runs/qs/best.pt --split test --out runs/qs/eval\n")
    ev.add_argument("checkpoint")
    ev.add_argument("--split", default="test", choices=["train", "val", "test"])
    ev.add_argument("--data", help="dataset folder (default: the one it was trained on)")
    c.add_output(ev, "seglab-eval")
    ev.set_defaults(run=run_evaluate)

    pr = c.command(sub, "predict", "segment images with a trained checkpoint",
                   "Segment images with a seglab checkpoint or an exported .onnx model; under "
                   "torchrun each process takes its share of the images.", PREDICT_EXAMPLES)
    pr.add_argument("checkpoint")
    c.add_inputs(pr)
    c.add_output(pr, "seglab-predictions")
    t = pr.add_argument_group("semantic models (defaults: seglab.inference.predict_tiled)")
    t.add_argument("--tile", type=c.integer(1), metavar="N", help="overlapping N x N tiles")
    t.add_argument("--overlap", type=c.number(0, below=1), help="tile fraction shared (0.25)")
    t.add_argument("--batch-size", type=c.integer(1), help="tiles per pass")
    t.add_argument("--weighting", choices=["gaussian", "uniform"], help="blending in a tile")
    t.add_argument("--tta", type=c.checked_by("inference", "parse_tta"), metavar="AUG[,AUG...]",
                   help="test-time augmentation: hflip, vflip and scales, e.g. hflip,0.75,1.25")
    t.add_argument("--amp", action="store_true", default=None, help="mixed precision (CUDA)")
    i = pr.add_argument_group("instance models (mask_rcnn)")
    i.add_argument("--model", metavar="NAME", help="the model the checkpoint must hold")
    i.add_argument("--score-threshold", type=c.number(0, below=1), help="lowest score kept (0.5)")
    i.add_argument("--mask-threshold", type=c.number(0, below=1), help="mask probability (0.5)")
    i.add_argument("--semantic", action="store_true", default=None, help="also semantic.png")
    pr.set_defaults(run=run_predict)

    ex = c.command(sub, "export", "export a checkpoint to ONNX",
                   "Export a checkpoint's network to ONNX with dynamic batch, height and width; "
                   "onnxruntime checks it on two sizes. Writes MODEL.onnx and MODEL.json.",
                   "example:\n  seglab export runs/qs/best.pt --format onnx --out model.onnx\n")
    ex.add_argument("checkpoint")
    ex.add_argument("--format", choices=["onnx"], default="onnx")
    ex.add_argument("--out", help="output file (default: CHECKPOINT with .onnx)")
    ex.add_argument("--opset", type=c.integer(1), default=17, help="ONNX opset (default: 17)")
    ex.add_argument("--overwrite", action="store_true", help="replace an existing file")
    ex.set_defaults(run=run_export)

    mo = c.command(sub, "models", "list the segmentation networks seglab can build",
                   "List the registered networks: parameters, output stride, inputs, paper.",
                   "examples:\n  seglab models\n  seglab models --num-classes 2\n")
    mo.add_argument("--num-classes", type=c.integer(1), help="count parameters for this many")
    mo.set_defaults(run=run_models)
    # fmt: on


def run_train(args: argparse.Namespace) -> int:
    """``seglab train``."""
    from ..engine import load_config, train

    overrides = list(args.set) + ([f"out={args.out}"] if args.out else [])
    cfg = load_config(args.config, overrides)
    m = train(cfg, resume=args.resume, progress=not args.quiet, overwrite=args.overwrite)
    key = "mean_iou" if "mean_iou" in m else "mask_ap50"  # only the first process evaluates
    if key in m:
        c.say(args, f"checkpoints in {Path(cfg['out']).resolve()} (validation {key} {m[key]:.4f})")
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    """``seglab evaluate``."""
    from ..engine import describe, evaluate

    metrics = evaluate(args.checkpoint, args.split, args.out, args.data, args.device or "auto")
    print(describe(metrics, args.split))
    c.say(args, f"wrote {Path(args.out).resolve() / 'metrics.json'}")
    return 0


def run_predict(args: argparse.Namespace) -> int:
    """``seglab predict``."""
    from ..engine import predict

    options = c.given(args, PREDICT_OPTIONS)
    written = predict(
        args.checkpoint,
        args.images,
        args.out,
        args.device or "auto",
        skip_existing=args.skip_existing,
        recursive=args.recursive,
        model_name=args.model,
        progress=not args.quiet,
        **options,
    )
    c.say(args, f"wrote {len(written)} predictions to {Path(args.out).resolve()}")
    return 0


def run_export(args: argparse.Namespace) -> int:
    """``seglab export``."""
    from ..engine import export_checkpoint

    target = Path(args.out) if args.out else Path(args.checkpoint).with_suffix(".onnx")
    report = export_checkpoint(args.checkpoint, target, args.opset, overwrite=args.overwrite)
    diff = max(report["max_abs_diff"])
    c.say(args, f"wrote {target.resolve()} (onnxruntime vs PyTorch: max abs difference {diff:.2e})")
    return 0


def run_models(args: argparse.Namespace) -> int:
    """``seglab models``: the registry as a table."""
    from ..models import model_table

    rows = model_table(args.num_classes)
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(str(v).ljust(wd) for v, wd in zip(r, widths, strict=True)).rstrip())
    return 0
