"""The Berkeley segmentation benchmark (BSDS300/500) for seglab's segmenters: ``seglab bsds``.

Reads a folder in the benchmark's layout (``images/[split/]*.jpg`` and
``groundTruth/[split/]*.mat``, each ``.mat`` holding the cell array ``groundTruth`` of human
segmentations, read with scipy), segments every image at each value of one parameter of a method
(``range_bandwidth`` for mean-shift, ``n_clusters`` for k-means: the "scale" the papers sweep),
and reports what Arbeláez et al. (TPAMI 2011, Table 2) report for each method:

* boundary F (:func:`seglab.metrics.boundary_f1`): ODS, the F of the counts summed over the
  dataset at the best value; OIS, the F of the counts each image contributes at its own best;
* segmentation covering, probabilistic Rand index and variation of information (mean over the
  humans): ODS, the dataset score at the best common value; OIS, the mean of each image's best
  (covering at ODS sums its counts over images, as the benchmark does).

Writes ``OUT/results.json`` (per image and value, and the summary) and ``OUT/sweep.png``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import io
from .metrics import (
    boundary_counts,
    covering_counts,
    probabilistic_rand_index,
    scores_from_counts,
    variation_of_information,
)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp")


def read_ground_truth(path: str | os.PathLike) -> list[np.ndarray]:
    """The human segmentations of one ``.mat`` file of the benchmark (its ``groundTruth`` cell
    array of structs with a ``Segmentation`` field), as int64 label arrays."""
    from scipy.io import loadmat

    path = Path(path)
    try:
        cells = loadmat(str(path), squeeze_me=False)["groundTruth"]
    except (KeyError, ValueError, TypeError, OSError, NotImplementedError) as exc:
        raise ValueError(
            f"{path} is not a BSDS ground-truth file (a .mat with a groundTruth cell array of "
            f"structs holding Segmentation): {exc}"
        ) from None
    truths = []
    for cell in np.asarray(cells).ravel():
        seg = cell["Segmentation"]
        while isinstance(seg, np.ndarray) and seg.dtype == object:
            seg = seg.ravel()[0]
        truths.append(np.asarray(seg).astype(np.int64))
    if not truths:
        raise ValueError(f"{path} holds no human segmentation")
    return truths


def find_pairs(root: str | os.PathLike, split: str | None = None) -> list[tuple[Path, Path]]:
    """(image, ground truth) pairs of a benchmark folder, sorted by name."""
    root = Path(root)
    images, truths = root / "images", root / "groundTruth"
    if split is not None:
        images, truths = images / split, truths / split
    if not images.is_dir() or not truths.is_dir():
        raise FileNotFoundError(
            f"{root} is not in the benchmark's layout: expected {images} and {truths}"
        )
    pairs = []
    for mat in sorted(truths.glob("*.mat")):
        found = [
            images / f"{mat.stem}{s}"
            for s in IMAGE_SUFFIXES
            if (images / f"{mat.stem}{s}").is_file()
        ]
        if found:
            pairs.append((found[0], mat))
    if not pairs:
        raise FileNotFoundError(f"no image of {images} has a ground truth in {truths}")
    return pairs


def benchmark(
    root: str | os.PathLike,
    out: str | os.PathLike,
    method: str = "meanshift",
    param: str | None = None,
    values: Sequence[Any] | None = None,
    *,
    split: str | None = None,
    max_dist: float = 0.0075,
    limit: int | None = None,
    options: dict | None = None,
    progress: bool = False,
) -> dict:
    """Sweep ``param`` of ``method`` over ``values`` on a benchmark folder; returns (and writes
    to ``OUT/results.json``) the per-image scores and ``summary``: ODS and OIS of boundary F,
    covering, PRI and VI, with the best value at ODS."""
    from tqdm.auto import tqdm

    from .segment import segment

    param = param or {"meanshift": "range_bandwidth", "kmeans": "n_clusters"}[method]
    values = list(values or {"meanshift": [4, 6.5, 9, 12], "kmeans": [2, 4, 8, 16]}[method])
    if not values:
        raise ValueError("give at least one value to sweep")
    pairs = find_pairs(root, split)[: limit or None]
    io.check_writable(out, "the benchmark")
    records = []
    for image_path, mat in tqdm(pairs, desc="bsds", unit="image", disable=not progress):
        image, truths = io.read_image(image_path), read_ground_truth(mat)
        for t in truths:
            if t.shape != image.shape[:2]:
                raise ValueError(f"{mat}: a segmentation is {t.shape}, the image {image.shape[:2]}")
        for value in values:
            r = segment(image, method, **{**(options or {}), param: value})
            counts = boundary_counts(truths, r.labels, max_dist)
            covered, total = covering_counts(truths, r.labels)
            records.append(
                {
                    "image": image_path.stem,
                    "value": value,
                    "seconds": round(r.seconds, 4),
                    "n_segments": r.n_segments,
                    "boundary": counts,
                    "covered": covered,
                    "pixels": total,
                    "pri": probabilistic_rand_index(truths, r.labels),
                    "vi": variation_of_information(truths, r.labels),
                }
            )
    summary = summarise(records, values)
    data = {
        "method": method,
        "param": param,
        "values": values,
        "max_dist": max_dist,
        "images": len(pairs),
        "summary": summary,
        "results": records,
    }
    io.write_json(Path(out) / "results.json", data)
    _plot(Path(out) / "sweep.png", records, values, method, param)
    return data


def summarise(records: list[dict], values: Sequence[Any]) -> dict:
    """ODS and OIS of each measure from per-(image, value) records, as the benchmark does."""
    images = sorted({r["image"] for r in records})
    by = {(r["image"], r["value"]): r for r in records}
    keys = ("matched_pred", "pred_pixels", "matched_truth", "truth_pixels")

    def total(rows, key):
        return {k: sum(r[key][k] for r in rows) for k in keys}

    f_at = [scores_from_counts(total([by[i, v] for i in images], "boundary"))["f1"] for v in values]
    best_rows = [
        max((by[i, v] for v in values), key=lambda r: scores_from_counts(r["boundary"])["f1"])
        for i in images
    ]
    cov_at = [
        sum(by[i, v]["covered"] for i in images) / sum(by[i, v]["pixels"] for i in images)
        for v in values
    ]
    cov_best = [max(by[i, v]["covered"] / by[i, v]["pixels"] for v in values) for i in images]
    pri_at = [float(np.mean([by[i, v]["pri"] for i in images])) for v in values]
    vi_at = [float(np.mean([by[i, v]["vi"] for i in images])) for v in values]
    return {
        "boundary_f1": {
            "ods": max(f_at),
            "ois": scores_from_counts(total(best_rows, "boundary"))["f1"],
            "ods_value": values[int(np.argmax(f_at))],
            "by_value": f_at,
        },
        "segmentation_covering": {
            "ods": max(cov_at),
            "ois": float(np.mean(cov_best)),
            "ods_value": values[int(np.argmax(cov_at))],
            "by_value": cov_at,
        },
        "probabilistic_rand_index": {
            "ods": max(pri_at),
            "ois": float(np.mean([max(by[i, v]["pri"] for v in values) for i in images])),
            "ods_value": values[int(np.argmax(pri_at))],
            "by_value": pri_at,
        },
        "variation_of_information": {
            "ods": min(vi_at),
            "ois": float(np.mean([min(by[i, v]["vi"] for v in values) for i in images])),
            "ods_value": values[int(np.argmin(vi_at))],
            "by_value": vi_at,
        },
    }


def _plot(path: Path, records: list[dict], values, method: str, param: str) -> None:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    summary = summarise(records, values)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for name, label in (
        ("boundary_f1", "boundary F"),
        ("segmentation_covering", "covering"),
        ("probabilistic_rand_index", "PRI"),
    ):
        axes[0].plot(values, summary[name]["by_value"], marker="o", label=label)
    axes[0].set_xlabel(param)
    axes[0].set_ylabel("dataset score (higher is better)")
    axes[0].legend(fontsize=8)
    axes[0].grid(alpha=0.3)
    axes[1].plot(
        values, summary["variation_of_information"]["by_value"], marker="o", color="#b45309"
    )
    axes[1].set_xlabel(param)
    axes[1].set_ylabel("VI, bits (lower is better)")
    axes[1].grid(alpha=0.3)
    fig.suptitle(f"{method}: the Berkeley benchmark's measures against {param}", fontsize=10)
    fig.tight_layout()
    io.save_figure(path, fig, dpi=110)
    plt.close(fig)
