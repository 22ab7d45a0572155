"""The ``seglab`` command line.

Errors a user can fix (a missing file, a bad parameter) print one line on stderr and exit with
status 2, leaving nothing half-written in the output folder: results are built in a staging
folder inside ``--out`` and moved into place only when every image has succeeded.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from . import __version__

EXIT_USAGE = 2

SEGMENT_EXAMPLES = """\
examples:
  seglab segment photo.jpg --k 5 --out results
  seglab segment photo.jpg --method meanshift --hs 7 --hr 6.5 --min-region-size 20 --out results
  seglab segment a.png b.png --k 2,3,5 --features lab+xy --spatial-weight 0.05 --out results
  seglab segment scan.tif --k 2 --features gray --min-region-size 20 --out results
  seglab segment cells.png --method sliding --checkpoint runs/patch_nuclei/best.pt --stride 2
  seglab segment cells.png --method patch-fcn --checkpoint runs/patch_nuclei/best.pt

writes, for each image, RESULTS/<image stem>/: labels.png (16-bit cluster ids), overlay.png,
mean_color.png, boundaries.png and summary.json; with several K, one sub-folder k<K>/ per K
plus k_sweep.png, the segmentations side by side with their inertia. Mean-shift also writes
filtered.png (every pixel replaced by its mode's colour); its labels number connected regions.
--method sliding classifies a patch around every pixel with a trained patch classifier (slow, the
baseline); --method patch-fcn computes the same class map in one pass with its fully
convolutional twin. Their labels.png holds class ids; summary.json has the time.
"""

DEMO_EXAMPLES = """\
examples:
  seglab demo                 # segments the bundled cat photo into seglab-demo/
  seglab demo --image coffee --k 3,5,8 --out demo
"""


class UsageError(Exception):
    """A problem with the user's input: reported in one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (no usage dump), exit status 2."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(EXIT_USAGE, f"seglab: error: {message} (see '{self.prog} --help')\n")


def _parse_ks(text: str) -> list[int]:
    try:
        ks = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--k must be an integer or a comma-separated list such as 2,3,5; got {text!r}"
        ) from None
    if not ks:
        raise argparse.ArgumentTypeError("--k needs at least one value")
    for k in ks:
        if k < 1:
            raise argparse.ArgumentTypeError(f"--k values must be >= 1, got {k}")
    return ks


def _spatial_weight(text: str) -> float | str:
    if text == "auto":
        return text
    return _non_negative_float(text)


def _non_negative_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not np.isfinite(v) or v < 0:
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text}")
    return v


def _non_negative_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {v}")
    return v


def _checked_by(module: str, function: str):
    """An argparse type that keeps the text if ``seglab.<module>.<function>(text)`` accepts it
    (imported when first used: the CLI starts fast) and turns its ValueError into the message."""

    def parse(text: str) -> str:
        import importlib

        check = getattr(importlib.import_module(f".{module}", __package__), function)
        try:
            check(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return text

    return parse


_features_arg = _checked_by("features", "parse_features")
_tta_arg = _checked_by("inference", "parse_tta")


def _positive_int(text: str) -> int:
    v = _non_negative_int(text)
    if v == 0:
        raise argparse.ArgumentTypeError("expected an integer >= 1, got 0")
    return v


def _positive_float(text: str) -> float:
    v = _non_negative_float(text)
    if v == 0:
        raise argparse.ArgumentTypeError("expected a number > 0, got 0")
    return v


DEFAULT_FEATURES = {"kmeans": "lab+xy", "meanshift": "luv"}
DEFAULT_MIN_REGION = {"kmeans": 0, "meanshift": 20}


def _add_segment_args(p: argparse.ArgumentParser, default_k: str) -> None:
    p.add_argument(
        "--method",
        choices=["kmeans", "meanshift", "sliding", "patch-fcn"],
        default="kmeans",
        help="segmentation method (default: kmeans); sliding and patch-fcn need --checkpoint",
    )
    p.add_argument(
        "--features",
        type=_features_arg,
        default=None,
        help="per-pixel features joined by '+': rgb, lab, luv, hsv, gray, xy, grad, texture "
        "(default: lab+xy for kmeans, luv for meanshift)",
    )
    p.add_argument(
        "--min-region-size",
        type=_non_negative_int,
        default=None,
        metavar="N",
        help="merge connected regions smaller than N pixels into a neighbour "
        "(default: 0 = off for kmeans, 20 for meanshift)",
    )
    km = p.add_argument_group("k-means")
    km.add_argument(
        "--k",
        type=_parse_ks,
        default=_parse_ks(default_k),
        metavar="K[,K...]",
        help=f"number of clusters, or a list to compare (default: {default_k})",
    )
    km.add_argument(
        "--spatial-weight",
        type=_spatial_weight,
        default="auto",
        metavar="W",
        help="colour units per pixel of distance for the xy feature, or 'auto' = 25 / image "
        "diagonal (default: auto)",
    )
    km.add_argument("--seed", type=int, default=0, help="random seed for k-means++ (default: 0)")
    km.add_argument("--n-init", type=int, default=1, help="restarts, best kept (default: 1)")
    km.add_argument("--device", default="cpu", help="cpu, cuda or auto (default: cpu)")
    ms = p.add_argument_group("mean-shift")
    ms.add_argument(
        "--hs", type=_positive_float, default=7.0, help="spatial bandwidth in pixels (default: 7)"
    )
    ms.add_argument(
        "--hr",
        type=_positive_float,
        default=6.5,
        help="range bandwidth in feature units, e.g. L*u*v* (default: 6.5)",
    )
    ms.add_argument(
        "--kernel",
        choices=["flat", "epanechnikov", "gaussian"],
        default="flat",
        help="mean-shift kernel (default: flat)",
    )
    pc = p.add_argument_group("patch classifier (--method sliding | patch-fcn)")
    pc.add_argument(
        "--checkpoint",
        default=None,
        metavar="CKPT",
        help="a patch_classifier checkpoint from 'seglab train' (e.g. configs/patch_nuclei.yaml)",
    )
    pc.add_argument(
        "--stride",
        type=_positive_int,
        default=1,
        help="classify every S-th pixel in each direction; the map is enlarged back by nearest "
        "neighbour for the pictures (default: 1)",
    )
    pc.add_argument(
        "--batch-size",
        type=_positive_int,
        default=1024,
        help="patches per forward pass of the sliding window (default: 1024)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="seglab",
        description="Image segmentation: clustering (k-means, mean-shift) and fully convolutional networks.",
        epilog="example:\n  seglab segment photo.jpg --k 5 --out results\n\nrun 'seglab COMMAND --help' for a command's options.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"seglab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    seg = sub.add_parser(
        "segment",
        help="segment images by clustering their pixels (or with a patch classifier)",
        description="Segment one or more images by clustering per-pixel features: k-means, or "
        "mean-shift in the joint spatial-range domain.",
        epilog=SEGMENT_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    seg.add_argument(
        "images", nargs="+", metavar="IMAGE", help="image files (PNG, JPEG, TIFF, ...)"
    )
    _add_segment_args(seg, "5")
    seg.add_argument(
        "--out", default="seglab-out", metavar="DIR", help="output folder (default: seglab-out)"
    )
    seg.add_argument("--quiet", action="store_true", help="no progress bar or closing message")

    demo = sub.add_parser(
        "demo",
        help="segment a bundled example photo",
        description="Segment one of the photos bundled with seglab and write the pictures and JSON.",
        epilog=DEMO_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo.add_argument(
        "--image",
        default="chelsea",
        choices=["chelsea", "coffee", "rocket"],
        help="which bundled photo (default: chelsea)",
    )
    _add_segment_args(demo, "2,4,8")
    demo.add_argument(
        "--out", default="seglab-demo", metavar="DIR", help="output folder (default: seglab-demo)"
    )
    demo.add_argument("--quiet", action="store_true", help="no progress bar or closing message")
    models = sub.add_parser(
        "models",
        help="list the segmentation networks seglab can build",
        description="List the registered networks: parameters (at the paper's number of classes), "
        "output stride, input sizes and the paper.",
        epilog="example:\n  seglab models\n  seglab models --num-classes 2",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    models.add_argument(
        "--num-classes", type=int, default=None, help="count parameters for this many classes"
    )

    tr = sub.add_parser(
        "train",
        help="train a network from a YAML config",
        description="Train a segmentation network as a YAML config says (see configs/).",
        epilog="examples:\n  seglab train configs/quickstart.yaml --out runs/qs\n"
        "  seglab train configs/nuclei_unet.yaml --set train.epochs=5 --set optimizer.lr=0.001\n"
        "  seglab train configs/quickstart.yaml --out runs/qs --resume",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    tr.add_argument("config", help="YAML config file")
    tr.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config field (repeatable)",
    )
    tr.add_argument("--out", default=None, help="output folder (overrides the config's 'out')")
    tr.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    tr.add_argument("--quiet", action="store_true", help="no progress bars")

    ev = sub.add_parser(
        "evaluate",
        help="measure a checkpoint on a data split",
        description="Evaluate a checkpoint: metrics.json (pixel accuracy, mean accuracy, mean IoU, "
        "frequency-weighted IoU, per-class scores), confusion.png and samples.png.",
        epilog="example:\n  seglab evaluate runs/qs/best.pt --split test --out runs/qs/eval",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ev.add_argument("checkpoint")
    ev.add_argument("--split", default="test", choices=["train", "val", "test"])
    ev.add_argument(
        "--data",
        default=None,
        help="dataset folder (default: the one the checkpoint was trained on)",
    )
    ev.add_argument("--out", default="seglab-eval", metavar="DIR")
    ev.add_argument("--device", default="auto")

    pr = sub.add_parser(
        "predict",
        help="segment images with a trained checkpoint",
        description="Write a label map (16-bit PNG; labels.tif for TIFF input), an overlay and a "
        "summary for each image. CHECKPOINT is a seglab checkpoint or an exported .onnx file.",
        epilog="examples:\n  seglab predict runs/qs/best.pt photo.png --out predictions\n"
        "  seglab predict runs/qs/best.pt slide.tif --tile 512 --overlap 0.25 --tta hflip\n"
        "  seglab predict model.onnx slide.tif --tile 512\n"
        "  seglab predict --model mask_rcnn runs/cells/best.pt cells.png --score-threshold 0.6\n"
        "instance models write instances.png (16-bit ids), instances.json (COCO results, RLE), "
        "overlay.png and, with --semantic, semantic.png",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    pr.add_argument("checkpoint")
    pr.add_argument("images", nargs="+", metavar="IMAGE")
    pr.add_argument("--out", default="seglab-predictions", metavar="DIR")
    pr.add_argument("--device", default="auto")
    pr.add_argument(
        "--tile",
        type=_positive_int,
        default=None,
        metavar="N",
        help="segment by overlapping N x N tiles, blended without seams (default: whole image)",
    )
    pr.add_argument(
        "--overlap",
        type=_fraction,
        default=0.25,
        help="fraction of a tile shared with its neighbours, in [0, 1) (default: 0.25)",
    )
    pr.add_argument(
        "--batch-size", type=_positive_int, default=4, help="tiles per forward pass (default: 4)"
    )
    pr.add_argument(
        "--weighting",
        choices=["gaussian", "uniform"],
        default="gaussian",
        help="blending window inside a tile (default: gaussian)",
    )
    pr.add_argument(
        "--tta",
        type=_tta_arg,
        default=None,
        metavar="AUG[,AUG...]",
        help="test-time augmentation: hflip, vflip and scales, e.g. hflip,vflip,0.75,1.25",
    )
    pr.add_argument("--amp", action="store_true", help="mixed precision (CUDA: float16)")
    pr.add_argument("--quiet", action="store_true", help="no progress bar")
    inst = pr.add_argument_group("instance models (mask_rcnn)")
    inst.add_argument(
        "--model",
        default=None,
        metavar="NAME",
        help="the model the checkpoint must hold (e.g. mask_rcnn); a clear error otherwise",
    )
    inst.add_argument(
        "--score-threshold",
        type=_fraction,
        default=0.5,
        help="keep instances scoring at least this (default: 0.5)",
    )
    inst.add_argument(
        "--mask-threshold",
        type=_fraction,
        default=0.5,
        help="mask probability that counts as inside (default: 0.5)",
    )
    inst.add_argument(
        "--semantic",
        action="store_true",
        help="also write semantic.png: each pixel the class of its best instance",
    )

    ex = sub.add_parser(
        "export",
        help="export a checkpoint to ONNX",
        description="Export a checkpoint's network to ONNX with dynamic batch, height and width; "
        "onnxruntime runs it on two sizes and the largest difference from PyTorch is printed. "
        "Writes MODEL.onnx and MODEL.json (class names, input convention).",
        epilog="example:\n  seglab export runs/qs/best.pt --format onnx --out model.onnx\n"
        "  seglab predict model.onnx big.tif --tile 512   # runs through onnxruntime",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ex.add_argument("checkpoint")
    ex.add_argument("--format", choices=["onnx"], default="onnx")
    ex.add_argument("--out", default=None, help="output file (default: CHECKPOINT with .onnx)")
    ex.add_argument("--opset", type=_positive_int, default=17, help="ONNX opset (default: 17)")
    return parser


def _fraction(text: str) -> float:
    v = _non_negative_float(text)
    if v >= 1:
        raise argparse.ArgumentTypeError(f"expected a fraction in [0, 1), got {text}")
    return v


def _run_engine(args: argparse.Namespace) -> int:
    from .engine import evaluate, load_config, predict, train

    if args.command == "train":
        overrides = list(args.set) + ([f"out={args.out}"] if args.out else [])
        cfg = load_config(args.config, overrides)
        metrics = train(cfg, resume=args.resume, progress=not args.quiet)
        if "mean_iou" in metrics:  # under torchrun only the first process evaluates
            print(
                f"seglab: checkpoints in {Path(cfg['out']).resolve()} "
                f"(validation mean IoU {metrics['mean_iou']:.4f})"
            )
        elif "mask_ap50" in metrics:
            print(
                f"seglab: checkpoints in {Path(cfg['out']).resolve()} (validation mask AP50 "
                f"{metrics['mask_ap50']:.4f}, F1@0.5 {metrics['f1_50']:.4f})"
            )
    elif args.command == "evaluate":
        m = evaluate(args.checkpoint, args.split, args.out, args.data, args.device)
        names = m["classes"]
        if "mask_ap" in m:  # an instance model
            print(
                f"{args.split}: mask AP {m['mask_ap']:.4f}  AP50 {m['mask_ap50']:.4f}  "
                f"AP75 {m['mask_ap75']:.4f}  box AP {m['box_ap']:.4f}  F1@0.5 {m['f1_50']:.4f}"
            )
        else:
            print(
                f"{args.split}: pixel accuracy {m['pixel_accuracy']:.4f}  mean accuracy "
                f"{m['mean_accuracy']:.4f}  mean IoU {m['mean_iou']:.4f}  f.w. IoU {m['fw_iou']:.4f}"
            )
            for name, iou in zip(names, m["iou"], strict=True):
                print(f"  {name:20s} IoU {iou:.4f}")
        print(f"seglab: wrote {Path(args.out).resolve() / 'metrics.json'}")
    else:
        for f in args.images:
            if not Path(f).is_file():
                raise UsageError(f"image file not found: {f}")
        stems = [Path(f).stem for f in args.images]
        dupes = sorted({s for s in stems if stems.count(s) > 1})
        if dupes:
            raise UsageError(
                f"several input images share the name {dupes[0]!r}; their outputs would collide"
            )
        folders = predict(
            args.checkpoint,
            args.images,
            args.out,
            args.device,
            tile=args.tile,
            overlap=args.overlap,
            batch_size=args.batch_size,
            tta=args.tta,
            weighting=args.weighting,
            amp=args.amp,
            progress=not args.quiet,
            model_name=args.model,
            score_threshold=args.score_threshold,
            mask_threshold=args.mask_threshold,
            semantic=args.semantic,
        )
        print(f"seglab: wrote {len(folders)} predictions to {Path(args.out).resolve()}")
    return 0


def _run_export(args: argparse.Namespace) -> int:
    from . import io
    from .engine import load_checkpoint, model_from_checkpoint
    from .inference import export_onnx

    ckpt = load_checkpoint(args.checkpoint)
    model, class_map = model_from_checkpoint(ckpt)
    target = Path(args.out) if args.out else Path(args.checkpoint).with_suffix(".onnx")
    report = export_onnx(model, target, opset=args.opset)
    from .models import is_instance_model

    if is_instance_model(model):
        spec = {
            "input": "image: float32 (3, H, W), RGB scaled to [0, 1], one image; any H, W",
            "output": "boxes (N, 4) xyxy, labels (N,), scores (N,), masks (N, 1, H, W)",
        }
    else:
        spec = {
            "input": "image: float32 (B, 3, H, W), RGB scaled to [0, 1]; any B, H, W",
            "output": "logits: float32 (B, classes, H, W)",
        }
    io.write_json(
        target.with_suffix(".json"),
        {
            "model": ckpt["config"]["model"]["name"],
            "classes": list(class_map.names),
            **spec,
            "checked_sizes": report["sizes"],
            "max_abs_diff": report["max_abs_diff"],
        },
    )
    diffs = ", ".join(
        f"{h}x{w}: {d:.2e}"
        for (h, w), d in zip(report["sizes"], report["max_abs_diff"], strict=True)
    )
    print(f"seglab: wrote {target.resolve()} (onnxruntime vs PyTorch max abs difference {diffs})")
    return 0


def _print_models(num_classes: int | None) -> None:
    from .models import count_parameters, list_models, model_info

    rows = []
    for name in list_models():
        info = model_info(name)
        n = count_parameters(name, num_classes)
        classes = num_classes or info.paper_classes
        rows.append(
            (
                name,
                f"{n / 1e6:.2f} M ({classes} cl.)",
                "-" if info.paper_params is None else f"paper {info.paper_params:g} M",
                f"/{info.output_stride}",
                info.inputs,
                info.paper,
            )
        )
    header = ("model", "parameters", "paper says", "stride", "input", "paper")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        print("  ".join(str(v).ljust(wd) for v, wd in zip(r, widths, strict=True)).rstrip())


def _fit(segmenter, image: np.ndarray):
    """Fit, turning a ValueError into a one-line usage error and warnings into one line each."""
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            segmenter.fit(image)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    for w in caught:
        print(f"seglab: warning: {w.message}", file=sys.stderr)
    return time.perf_counter() - t0


def _kmeans(image: np.ndarray, k: int, args: argparse.Namespace) -> tuple[dict, np.ndarray]:
    from .cluster import KMeansSegmenter

    seg = KMeansSegmenter(
        n_clusters=k,
        features=args.features,
        spatial_weight=args.spatial_weight,
        min_region_size=args.min_region_size,
        random_state=args.seed,
        n_init=args.n_init,
        device=args.device,
    )
    seconds = _fit(seg, image)
    counts = np.bincount(seg.labels_.ravel(), minlength=k)
    summary = {
        "k": k,
        "inertia": float(seg.inertia_),
        "n_iter": int(seg.n_iter_),
        "seconds": round(seconds, 4),
        "n_regions": int(seg.n_regions_),
        "spatial_weight_used": float(seg.spatial_weight_),
        "pixels_per_label": {str(i): int(c) for i, c in enumerate(counts)},
    }
    return summary, seg.labels_


def _meanshift(image: np.ndarray, args: argparse.Namespace):
    from .cluster import MeanShiftSegmenter

    seg = MeanShiftSegmenter(
        spatial_bandwidth=args.hs,
        range_bandwidth=args.hr,
        kernel=args.kernel,
        min_region_size=args.min_region_size,
        features=args.features,
    )
    seconds = _fit(seg, image)
    counts = np.bincount(seg.labels_.ravel())
    summary = {
        "n_modes": int(seg.n_modes_),
        "n_regions": int(seg.n_regions_),
        "n_iter": int(seg.n_iter_),
        "mean_iter": round(float(seg.mean_iter_), 3),
        "seconds": round(seconds, 4),
        "pixels_per_label": {str(i): int(c) for i, c in enumerate(counts)},
    }
    return summary, seg.labels_, seg.filtered_image_


def _patch_model(args: argparse.Namespace):
    """The patch classifier of ``--checkpoint`` (loaded once for all the images)."""
    if getattr(args, "_patch_model", None) is None:
        from .engine import load_checkpoint, model_from_checkpoint
        from .engine.trainer import resolve_device
        from .models.sliding import PatchClassifier

        try:
            model, class_map = model_from_checkpoint(load_checkpoint(args.checkpoint))
            device = resolve_device(args.device)
        except (ValueError, FileNotFoundError) as exc:
            raise UsageError(str(exc)) from None
        if not isinstance(model, PatchClassifier):
            raise UsageError(
                f"{args.checkpoint} holds a {type(model).__name__}, not a patch_classifier; "
                "segment with it by 'seglab predict CHECKPOINT IMAGES'"
            )
        args._patch_model = (model.to(device).eval(), class_map)
    return args._patch_model


def _patch_classify(image: np.ndarray, args: argparse.Namespace) -> tuple[dict, np.ndarray]:
    """Class map of a patch classifier: one patch per pixel, or the dense twin in one pass."""
    from .models.sliding import segment_patch_fcn, segment_sliding

    model, class_map = _patch_model(args)
    s = args.stride
    t0 = time.perf_counter()
    try:
        if args.method == "sliding":
            grid = segment_sliding(
                model, image, stride=s, batch_size=args.batch_size, progress=not args.quiet
            ).numpy()
        else:
            grid = segment_patch_fcn(model, image).numpy()[::s, ::s]
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    seconds = time.perf_counter() - t0
    h, w = image.shape[:2]
    labels = np.repeat(np.repeat(grid, s, axis=0), s, axis=1)[:h, :w]
    counts = np.bincount(grid.ravel(), minlength=class_map.num_classes)
    summary = {
        "classes": list(class_map.names),
        "patch_size": model.patch_size,
        "map_size": list(grid.shape),
        "seconds": round(seconds, 4),
        "pixels_per_class": {n: int(c) for n, c in zip(class_map.names, counts, strict=False)},
    }
    return summary, labels


def _write_pictures(folder: Path, image: np.ndarray, labels: np.ndarray) -> None:
    from . import io, viz

    if labels.max() > 65535:
        raise UsageError(
            f"{labels.max() + 1} regions do not fit a 16-bit labels.png; raise --min-region-size"
        )
    io.write_labels(folder / "labels.png", labels)
    io.write_image(folder / "overlay.png", viz.overlay(image, labels, 0.5))
    io.write_image(folder / "mean_color.png", viz.mean_color(image, labels))
    io.write_image(folder / "boundaries.png", viz.mark_boundaries(image, labels))


def _process_image(path: Path, image: np.ndarray, args: argparse.Namespace, folder: Path) -> dict:
    from . import io, viz

    params = {
        "method": args.method,
        "features": args.features,
        "min_region_size": args.min_region_size,
    }
    if args.method == "kmeans":
        params |= {
            "k": args.k if len(args.k) > 1 else args.k[0],
            "spatial_weight": args.spatial_weight,
            "seed": args.seed,
            "n_init": args.n_init,
        }
    else:
        params |= {"hs": args.hs, "hr": args.hr, "kernel": args.kernel}
    base = {
        "image": str(path),
        "height": int(image.shape[0]),
        "width": int(image.shape[1]),
        "parameters": params,
        "seglab_version": __version__,
    }
    folder.mkdir(parents=True)
    if args.method in ("sliding", "patch-fcn"):
        params = {
            "method": args.method,
            "checkpoint": str(args.checkpoint),
            "stride": args.stride,
        }
        summary, labels = _patch_classify(image, args)
        _write_pictures(folder, image, labels)
        summary = {**base, "parameters": params, **summary}
        io.write_json(folder / "summary.json", summary)
        return summary
    if args.method == "meanshift":
        summary, labels, filtered = _meanshift(image, args)
        _write_pictures(folder, image, labels)
        if filtered.dtype == np.uint8:
            io.write_image(folder / "filtered.png", filtered)
        summary = {**base, **summary}
        io.write_json(folder / "summary.json", summary)
        return summary
    results = []
    for k in args.k:
        summary, labels = _kmeans(image, k, args)
        target = folder if len(args.k) == 1 else folder / f"k{k}"
        _write_pictures(target, image, labels)
        results.append((summary, labels))
        if len(args.k) > 1:
            io.write_json(target / "summary.json", {**base, **summary})
    if len(args.k) == 1:
        summary = {**base, **results[0][0]}
    else:
        fig = viz.k_sweep_figure(
            image,
            [{"k": s["k"], "labels": lab, "inertia": s["inertia"]} for s, lab in results],
            title=path.name,
        )
        io.save_figure(folder / "k_sweep.png", fig)
        import matplotlib.pyplot as plt

        plt.close(fig)
        summary = {**base, "runs": [s for s, _ in results]}
    io.write_json(folder / "summary.json", summary)
    return summary


def _run_segment(paths: Sequence[str], args: argparse.Namespace) -> Path:
    from tqdm.auto import tqdm

    from .io import read_image

    files = [Path(p) for p in paths]
    stems = [f.stem for f in files]
    dupes = sorted({s for s in stems if stems.count(s) > 1})
    if dupes:
        raise UsageError(
            f"several input images share the name {dupes[0]!r}; their outputs would collide"
        )
    for f in files:  # cheap checks first, before any work or any file is written
        if not f.exists():
            raise UsageError(f"image file not found: {f}")
        if not f.is_file():
            raise UsageError(f"{f} is not a file; expected an image file")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} exists and is not a folder")
    created_out = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".seglab-staging-", dir=out))
    try:
        bar = tqdm(files, desc="segmenting", unit="image", disable=args.quiet or len(files) < 2)
        for f in bar:
            try:
                image = read_image(f)
            except (ValueError, FileNotFoundError) as exc:
                raise UsageError(str(exc)) from None
            _process_image(f, image, args, staging / f.stem)
        for f in files:  # every image succeeded: move the results into place
            dest = out / f.stem
            if dest.exists():
                shutil.rmtree(dest) if dest.is_dir() else dest.unlink()
            (staging / f.stem).rename(dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if created_out:
            shutil.rmtree(out, ignore_errors=True)
        raise
    shutil.rmtree(staging, ignore_errors=True)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """The ``seglab`` command; returns the exit status."""
    try:
        return _main(argv)
    except BrokenPipeError:  # output piped into `head` and the like: stop quietly
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error already reported
        return int(exc.code or 0)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    if args.command in ("train", "evaluate", "predict", "export"):
        try:
            return _run_export(args) if args.command == "export" else _run_engine(args)
        except (UsageError, ValueError, FileNotFoundError) as exc:
            print(f"seglab: error: {exc}", file=sys.stderr)
            return EXIT_USAGE
    if args.command == "models":
        if args.num_classes is not None and args.num_classes < 1:
            print("seglab: error: --num-classes must be >= 1", file=sys.stderr)
            return EXIT_USAGE
        _print_models(args.num_classes)
        return 0
    if args.features is None:
        args.features = DEFAULT_FEATURES.get(args.method)
    if args.min_region_size is None:
        args.min_region_size = DEFAULT_MIN_REGION.get(args.method, 0)
    if args.method in ("sliding", "patch-fcn") and args.checkpoint is None:
        print(
            f"seglab: error: --method {args.method} needs --checkpoint CKPT (a trained "
            "patch_classifier, e.g. from 'seglab train configs/patch_nuclei.yaml')",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        if args.command == "demo":
            from .data import sample_path

            paths = [str(sample_path(args.image))]
        else:
            paths = args.images
        out = _run_segment(paths, args)
    except UsageError as exc:
        print(f"seglab: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("seglab: interrupted", file=sys.stderr)
        return 130
    if not args.quiet:
        names = ", ".join(Path(p).stem for p in paths)
        print(f"seglab: wrote results for {names} to {out.resolve()}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
