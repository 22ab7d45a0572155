"""The demo: the whole lecture on a few images, in one report (``seglab demo``).

Two sections. *Photos*: k-means and mean-shift on the bundled photos (no truth: look at them).
*Nuclei*: the held-out strip of the bundled DSB2018 image (columns 320-511, 41 nuclei, never
trained on) with its truth, segmented by every family of the lecture: k-means and mean-shift
(no training), the sliding-window patch classifier next to its fully convolutional twin, U-Net,
FCN-8s, FC-DenseNet56 and Mask R-CNN, each with its time and metrics.

No pretrained weights can be downloaded, so the demo trains small versions of the networks on
the training strip (columns 0-255) the first time, with progress bars, and keeps them in
``OUT/models/``: later runs reuse them. The budgets below keep the first run within about ten
minutes on a 2-core CPU; they are demos, not the benchmark figures (``benchmarks/``).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from . import io

logger = logging.getLogger(__name__)

NUCLEI_TEST_COLUMNS = (320, 512)

#: The networks the demo trains: name -> (config overrides on top of the nuclei configs).
NETWORKS: dict[str, tuple[str, list[str]]] = {
    "patch-classifier": ("patch_nuclei.yaml", ["train.epochs=3", "data.patches_per_image=4096"]),
    "unet": ("nuclei_unet.yaml", ["train.epochs=15", "model.options={width: 16, depth: 3}"]),
    "fcn8s": (
        "nuclei_unet.yaml",
        ["model.name=fcn8s", "model.options={width: 0.125}", "train.epochs=15"],
    ),
    "fc-densenet56": (
        "nuclei_unet.yaml",
        ["model.name=fc_densenet56", "model.options={}", "train.epochs=8"],
    ),
    "mask-rcnn": ("mask_rcnn_nuclei.yaml", ["train.epochs=10"]),
}

_INTRO = (
    "The lecture's progression on the same images: clustering pixels (no training), the "
    "sliding-window classifier and the same network made fully convolutional, fully "
    "convolutional networks, and instance segmentation. Click a picture to open it."
)
_PHOTOS = (
    "<p>k-means (colour + position) and mean-shift (joint spatial-range, EDISON's bandwidths) on "
    "the bundled photos. There is no truth here: judge the overlays. Every method is "
    "unsupervised and works on any photo.</p>"
)
_NUCLEI = (
    "<p>The held-out strip of a fluorescence image (41 nuclei, columns 320-511, never trained "
    "on), with its expert labels. Clustering needs no training; the networks were trained "
    "briefly on the left half of the same image (see <code>models/</code>). The sliding window "
    "classifies a patch around every 4th pixel; its fully convolutional twin computes the "
    "whole map in one pass with the same weights. Mask R-CNN separates touching nuclei that "
    "a foreground map merges (compare mask AP50 and F1).</p>"
)


def config_dir() -> Path:
    """The shipped configs: in a source checkout, ``configs/`` beside ``src/``."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "configs" / "nuclei_unet.yaml").is_file():
            return parent / "configs"
    raise FileNotFoundError(
        "the demo's training configs (configs/*.yaml) were not found: run it from a checkout "
        "of seglab (python3 run.py demo), or pass `quick=True`"
    )


def nuclei_strip(out: Path) -> tuple[Path, Path, Path]:
    """Write the held-out strip (8-bit, stretched), its class truth and its instance ids."""
    from .data import nuclei

    image, mask = nuclei()
    a, b = NUCLEI_TEST_COLUMNS
    strip, ids = image[:, a:b].astype(np.float64), mask[:, a:b]
    picture = np.round(strip / strip.max() * 255).astype(np.uint8)
    io.write_image(out / "images" / "nuclei.png", picture)
    io.write_labels(out / "truth" / "nuclei.png", (ids > 0).astype(np.uint8))
    values = np.unique(ids)
    lut = np.zeros(int(ids.max()) + 1, np.int64)
    lut[values] = np.arange(len(values))
    io.write_labels(out / "instances" / "nuclei.png", lut[ids])
    return out / "images" / "nuclei.png", out / "truth", out / "instances"


def train_networks(folder: Path, progress: bool = True) -> dict[str, Path]:
    """Train each demo network into ``folder/<name>/`` unless a finished run is there."""
    from .engine import load_checkpoint, load_config, train

    configs = config_dir()
    found = {}
    for name, (config, overrides) in NETWORKS.items():
        run = folder / name
        cfg = load_config(configs / config, [*overrides, f"out={run}", "train.eval_every=1000"])
        last = run / "last.pt"
        if not (last.is_file() and load_checkpoint(last)["epoch"] + 1 >= cfg["train"]["epochs"]):
            logger.info("training %s for the demo (%d epochs)", name, cfg["train"]["epochs"])
            train(cfg, progress=progress, overwrite=True)
        found[name] = last
    return found


def run(out: str | os.PathLike = "seglab-demo", quick: bool = False, progress: bool = True) -> Path:
    """Write the demo into ``out`` and return the path of its ``index.html``.

    Parameters
    ----------
    out : path
        The demo's folder (its trained networks stay in ``out/models``).
    quick : bool
        Clustering only (no training): a few seconds.
    progress : bool
        Progress bars.
    """
    from .compare import compare
    from .data import sample_path
    from .report import write_report

    out = Path(out)
    photos = [sample_path(n) for n in ("chelsea", "coffee", "rocket")]
    options = {"kmeans": {"n_clusters": 4}}
    first = compare(photos, out / "photos", options=options, progress=progress)
    first |= {"root": "photos/", "title": "Photos: clustering pixels", "intro": _PHOTOS}
    image, truth, instances = nuclei_strip(out / "data")
    checkpoints = {} if quick else train_networks(out / "models", progress)
    second = compare(
        [image],
        out / "nuclei",
        options={"kmeans": {"n_clusters": 2}},
        checkpoints=checkpoints,
        truth=truth,
        instances=instances,
        sliding=4,
        progress=progress,
    )
    second |= {"root": "nuclei/", "title": "Nuclei: every family, with truth", "intro": _NUCLEI}
    return write_report(
        out, [first, second], title="seglab: segmentation, the lecture", intro=_INTRO
    )
