"""``seglab segment`` and ``seglab demo``: parse, call :mod:`seglab.segment`, report."""

from __future__ import annotations

import argparse
from pathlib import Path

from .._feature_groups import FEATURE_GROUPS
from . import _common as c

SEGMENT_EXAMPLES = """\
examples:
  seglab segment photo.jpg --n-clusters 5 --out results
  seglab segment photos/ --method meanshift --hs 7 --hr 6.5 --min-region-size 20 --out results
  seglab segment 'scans/*.tif' --k 2,3,5 --features gray --skip-existing --out results
  seglab segment cells.png --method sliding --checkpoint runs/patch_nuclei/best.pt --stride 2
  torchrun --nproc_per_node 2 -m seglab segment photos/ --out results   # 2 processes
writes RESULTS/<image stem>/: labels.png (labels.tif when over 65535 labels), overlay.png,
mean_color.png, boundaries.png, summary.json (several K: k<K>/ and k_sweep.png; mean-shift:
filtered.png). sliding: a patch per pixel; patch-fcn: its fully convolutional twin, one pass.
"""

COMPARE_EXAMPLES = """\
examples:
  seglab compare photos/ --methods kmeans,meanshift --k 3,6 --out cmp
  seglab compare cells.png --truth truth/ --instances ids/ --checkpoint unet=runs/u/best.pt --out cmp
"""

# the library parameters each method takes from the options (unset ones keep library defaults)
KMEANS = (
    "n_clusters",
    "features",
    "spatial_weight",
    "min_region_size",
    "random_state",
    "n_init",
    "device",
)
MEANSHIFT = ("spatial_bandwidth", "range_bandwidth", "kernel", "features", "min_region_size")


def add_method_options(p: argparse.ArgumentParser, patch: bool = True) -> None:
    """The options of the methods (shared by segment, demo and compare). Options left unset
    keep the defaults of the estimators (seglab.cluster.KMeansSegmenter, MeanShiftSegmenter)."""
    # fmt: off
    if patch:
        p.add_argument("--method", choices=["kmeans", "meanshift", "sliding", "patch-fcn"],
                       default="kmeans", help="(default: kmeans); sliding, patch-fcn need --checkpoint")
    p.add_argument("--features", type=c.checked_by("features", "parse_features"),
                   help=f"joined by '+': {', '.join(FEATURE_GROUPS)}")
    p.add_argument("--min-region-size", type=c.integer(0), metavar="N",
                   help="merge connected regions smaller than N pixels into a neighbour")
    km = p.add_argument_group("k-means (KMeansSegmenter)")
    km.add_argument("--n-clusters", "--k", dest="n_clusters", type=c.integers, metavar="K[,K]")
    weight = lambda t: t if t == "auto" else c.number()(t)  # noqa: E731
    km.add_argument("--spatial-weight", type=weight, metavar="W",
                    help="colour units per pixel of distance, or 'auto' = 25 / diagonal")
    km.add_argument("--random-state", "--seed", dest="random_state", type=int, help="(0)")
    km.add_argument("--n-init", type=c.integer(1), help="restarts, the best kept")
    ms = p.add_argument_group("mean-shift (MeanShiftSegmenter)")
    positive = c.number(0.0, strict=True)
    ms.add_argument("--spatial-bandwidth", "--hs", dest="spatial_bandwidth", type=positive)
    ms.add_argument("--range-bandwidth", "--hr", dest="range_bandwidth", type=positive)
    ms.add_argument("--kernel", choices=["flat", "epanechnikov", "gaussian"])
    if not patch:
        return
    pc = p.add_argument_group("patch classifier (--method sliding | patch-fcn)")
    pc.add_argument("--checkpoint", metavar="CKPT", help="a patch_classifier from 'seglab train'")
    pc.add_argument("--stride", type=c.integer(1), help="classify every S-th pixel")
    pc.add_argument("--batch-size", type=c.integer(1), help="patches per forward pass")
    # fmt: on


def method_options(args: argparse.Namespace) -> dict:
    """The library call's keyword arguments for ``args.method``."""
    if args.method == "kmeans":
        return c.given(args, KMEANS)
    if args.method == "meanshift":
        return c.given(args, MEANSHIFT)
    from ..engine import load_model

    if args.checkpoint is None:
        raise c.UsageError(f"--method {args.method} needs --checkpoint CKPT (a patch_classifier)")
    model, names = load_model(args.checkpoint, args.device or "auto")
    return {"model": model, "class_names": names.names, **c.given(args, ("stride", "batch_size"))}


def add_parsers(sub) -> None:
    # fmt: off
    """The ``segment``, ``demo``, ``compare`` and ``bsds`` subcommands."""
    p = c.command(sub, "segment", "segment images by clustering their pixels (or by patches)",
                  "Segment images by clustering per-pixel features: k-means, or mean-shift in "
                  "the joint spatial-range domain.", SEGMENT_EXAMPLES)
    c.add_inputs(p)
    add_method_options(p)
    c.add_output(p, "seglab-out")
    p.set_defaults(run=run_segment)
    d = c.command(sub, "demo", "the lecture on a few images: every method, one report",
                  "Segment the bundled photos and the nuclei image with every method (training "
                  "small networks the first time, reused later) into OUT/index.html.",
                  "examples:\n  seglab demo\n  seglab demo --quick   # clustering only, seconds\n")
    d.add_argument("--quick", action="store_true", help="clustering only: no training")
    c.add_output(d, "seglab-demo", device=False)
    d.set_defaults(run=run_demo)
    cp = c.command(sub, "compare", "every method on the same images: metrics, times, a report",
                   "Writes OUT/<stem>/<method>/, results.json and index.html.", COMPARE_EXAMPLES)
    cp.add_argument("images", nargs="+", metavar="IMAGE", help="image files, folders or globs")
    cp.add_argument("--methods", default="kmeans,meanshift", help="(default: kmeans,meanshift)")
    cp.add_argument("--checkpoint", action="append", default=[], metavar="[NAME=]CKPT",
                    help="a trained network as one more method (repeatable)")
    cp.add_argument("--truth", metavar="DIR", help="<stem>.png class ids (255 = ignore)")
    cp.add_argument("--instances", metavar="DIR", help="<stem>.png instance ids (0 = none)")
    add_method_options(cp, patch=False)
    c.add_output(cp, "seglab-compare")
    cp.set_defaults(run=run_compare)
    b = c.command(sub, "bsds", "the Berkeley segmentation benchmark: ODS/OIS of a parameter sweep",
                  "Segments every image of a folder in the BSDS layout (images/ and groundTruth/ with "
                  ".mat files) at "
                  "each value of one parameter and reports boundary F, covering, PRI and VI at "
                  "ODS and OIS, as the papers' tables; writes OUT/results.json and sweep.png.",
                  "examples:\n  seglab bsds BSR/BSDS500/data --split test --method meanshift "
                  "--values 4,6.5,9\n  seglab bsds mydata --method kmeans --values 2,4,8\n")
    b.add_argument("root", metavar="DIR", help="images/ and groundTruth/ (BSDS500: .../data)")
    b.add_argument("--split", help="a sub-folder of both (train, val, test)")
    b.add_argument("--method", choices=("meanshift", "kmeans"), default="meanshift")
    b.add_argument("--param", help="the parameter swept (default: range_bandwidth for "
                   "meanshift, n_clusters for kmeans)")
    b.add_argument("--values", type=_values, help="comma-separated values to sweep")
    b.add_argument("--max-dist", type=c.number(0, strict=True), default=0.0075,
                   help="boundary matching distance, fraction of the diagonal (0.0075)")
    b.add_argument("--limit", type=c.integer(1), help="the first N images only")
    c.add_output(b, "seglab-bsds", device=False)
    b.set_defaults(run=run_bsds)
    # fmt: on


def _values(text: str) -> list[float | int]:
    """``"4,6.5,9"`` -> [4, 6.5, 9] (integers stay integers)."""
    out: list[float | int] = []
    for t in (t.strip() for t in text.split(",") if t.strip()):
        try:
            out.append(int(t) if t.lstrip("-").isdigit() else float(t))
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected numbers such as 4,6.5,9; got {text!r}"
            ) from None
    if not out:
        raise argparse.ArgumentTypeError(f"expected numbers such as 4,6.5,9; got {text!r}")
    return out


def run_bsds(args: argparse.Namespace) -> int:
    """``seglab bsds``: the benchmark's table in a few lines."""
    from ..bsds import benchmark

    data = benchmark(
        args.root,
        args.out,
        args.method,
        args.param,
        args.values,
        split=args.split,
        max_dist=args.max_dist,
        limit=args.limit,
        progress=not args.quiet,
    )
    for name, s in data["summary"].items():
        c.say(
            args,
            f"{name}: ODS {s['ods']:.3f} ({data['param']}={s['ods_value']}), OIS {s['ois']:.3f}",
        )
    c.say(args, f"wrote {(Path(args.out) / 'results.json').resolve()}")
    return 0


def run_segment(args: argparse.Namespace) -> int:
    """``seglab segment``."""
    from ..segment import segment_files

    options = method_options(args)
    written = segment_files(
        args.images,
        args.out,
        args.method,
        skip_existing=args.skip_existing,
        recursive=args.recursive,
        max_pixels=args.max_pixels,
        progress=not args.quiet,
        **options,
    )
    c.say(args, f"wrote results for {len(written)} images to {Path(args.out).resolve()}")
    return 0


def run_compare(args: argparse.Namespace) -> int:
    """``seglab compare``."""
    from ..compare import compare

    options = {"kmeans": c.given(args, KMEANS), "meanshift": c.given(args, MEANSHIFT)}
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    compare(
        args.images,
        args.out,
        methods,
        checkpoints=args.checkpoint,
        truth=args.truth,
        instances=args.instances,
        options=options,
        device=args.device or "auto",
        progress=not args.quiet,
    )
    c.say(args, f"wrote {(Path(args.out) / 'index.html').resolve()}")
    return 0


def run_demo(args: argparse.Namespace) -> int:
    """``seglab demo``."""
    from ..demo import run

    page = run(args.out, quick=args.quick, progress=not args.quiet)
    print(f"seglab: open {page.resolve()}")
    return 0
