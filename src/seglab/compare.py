"""Every method on the same images, side by side: what ``seglab compare`` and the demo run.

:func:`compare` segments each image with each method (the clustering methods of
:mod:`seglab.segment` and any trained checkpoint), scores every result against the truth when
there is one (:func:`score`), and writes ``OUT/<image stem>/<method>/`` (the scored
``labels.png`` and the usual pictures), ``OUT/results.json`` and ``OUT/index.html``, a page that
opens offline (see :mod:`seglab.report`).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import io
from .segment import CLUSTERING, Segmentation, segment, segment_with_model, write_segmentation

logger = logging.getLogger(__name__)

IGNORE = 255  # truth pixels that count nowhere

#: How each metric is computed; the report prints these.
METRIC_NOTES = {
    "adjusted_rand_index": "Adjusted Rand index of labels.png against the truth classes (pairs of pixels "
    "put together or apart alike, corrected for chance; 1 = same partition, ~0 = random); "
    "label names do not matter, so clusterings and class maps are scored alike. Equals "
    "scikit-learn's adjusted_rand_score.",
    "boundary_f1": "Boundary F-measure of the Berkeley segmentation benchmark: boundaries drawn "
    "as its seg2bdry draws them, the result's thinned, each result pixel matched one-to-one to a "
    "true pixel within 0.0075 of the image diagonal; P = matched / result pixels, R = matched / "
    "true pixels, F = 2PR / (P + R).",
    "segmentation_covering": "Covering of the truth by the result (Berkeley benchmark): each "
    "true region weighted by its size times its best IoU with a result region; 1 = perfect.",
    "probabilistic_rand_index": "Rand index: the fraction of pixel pairs that truth and result "
    "both put together or both apart (the probabilistic Rand index with one truth).",
    "variation_of_information": "Variation of information H(truth | result) + H(result | "
    "truth) in bits (0 = same partition; lower is better), as scikit-image computes it.",
    "seconds": "The segmentation alone, warm: compiling a method's kernels on its first call "
    "in a process is done before the clock starts (a run on a tiny image) and reported apart as "
    "compile_seconds in results.json; reading and writing files are not counted.",
    "no truth pixels": "A truth whose every pixel is 255 gives no score (null), never a "
    "perfect one.",
    "pixel_accuracy": "Methods that predict classes: fraction of pixels whose class is right.",
    "mean_iou": "Methods that predict classes: mean over classes of intersection over union "
    "(the FCN paper's mean IU); per-class IoU in results.json.",
    "mask_ap50": "With instance truth: COCO mask average precision at IoU 0.5 (pycocotools). "
    "Mask R-CNN's instances carry their scores; for the other methods the instances are the "
    "connected components of the foreground (classes other than 0, or for clusterings every "
    "cluster but the one that covers most of the image border), each with score 1.",
    "f1_50": "With instance truth: instance F1 at IoU 0.5 (each true object matched to at most "
    "one found object with IoU > 0.5).",
}


def _truth_for(folder: Path | None, stem: str, shape: tuple[int, int], what: str):
    """The truth PNG of an image (None if the folder has none for it), size checked."""
    if folder is None:
        return None
    path = folder / f"{stem}.png"
    if not path.is_file():
        others = sorted(p.name for p in folder.glob(f"{stem}.*") if p.is_file())
        if others:
            raise ValueError(
                f"{what} for {stem} must be {path.name} (a PNG of one id per pixel); found "
                f"{', '.join(others)}: convert it to PNG"
            )
        return None
    h, w = io.image_size(path)
    if (h, w) != tuple(shape):
        raise ValueError(f"{what} {path} is {w} x {h} but the image is {shape[1]} x {shape[0]}")
    return path


def _load_checkpoints(checkpoints: Mapping[str, str] | Sequence[str] | None, device: str):
    """{method name: (model, class names)} from ``{name: path}`` or ``["[NAME=]PATH", ...]``."""
    from .engine import load_checkpoint, load_model

    items: list[tuple[str | None, str]] = []
    if isinstance(checkpoints, Mapping):
        items = list(checkpoints.items())
    else:
        for text in checkpoints or ():
            name, sep, path = str(text).partition("=")
            items.append((name, path) if sep and not Path(text).exists() else (None, str(text)))
    models: dict[str, tuple[Any, tuple[str, ...]]] = {}
    for name, path in items:
        if name is None:
            name = load_checkpoint(path)["config"]["model"]["name"]
        if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.+-]{0,63}", str(name)):
            raise ValueError(
                f"checkpoint name {name!r} is not a plain name (it names a result folder): use "
                "letters, digits, '_', '.', '+' and '-', as in `checkpoint` unet=runs/u/best.pt"
            )
        if name in models or name in CLUSTERING:
            raise ValueError(f"two methods are named {name!r}; name them with NAME=PATH")
        model, class_map = load_model(path, device)
        models[name] = (model, class_map.names)
    return models


def compare(
    images: Iterable[str | os.PathLike],
    out: str | os.PathLike,
    methods: Sequence[str] = CLUSTERING,
    *,
    checkpoints: Mapping[str, str] | Sequence[str] | None = None,
    truth: str | os.PathLike | None = None,
    instances: str | os.PathLike | None = None,
    options: Mapping[str, Mapping[str, Any]] | None = None,
    device: str = "auto",
    sliding: int | None = None,
    title: str = "seglab compare",
    progress: bool = False,
) -> dict:
    """Run every method on every image, score, and write the results and the report.

    Parameters
    ----------
    images : iterable of paths
        Files, folders or glob patterns (:func:`seglab.batch.find_images`).
    out : path
        The output folder.
    methods : sequence of str
        Clustering methods (``kmeans``, ``meanshift``).
    checkpoints : mapping or sequence, optional
        ``{name: checkpoint}`` or ``["[NAME=]PATH", ...]``: each adds a method, named NAME or
        after the checkpoint's model.
    truth : folder, optional
        ``<image stem>.png`` with a class id per pixel (255 = ignore).
    instances : folder, optional
        ``<image stem>.png`` instance ids (0 = background), for mask AP50 and F1@0.5.
    options : mapping, optional
        Per method, its parameters (``{"kmeans": {"n_clusters": 4}}``).
    device : str
        Where the checkpoints run.
    sliding : int, optional
        Also run each patch classifier as a sliding window with this stride (slow: one patch
        per pixel), as ``<name>-sliding``, beside its fully convolutional twin.
    title : str
        The report's title.
    progress : bool
        A progress bar over the images.

    Returns
    -------
    dict
        What ``results.json`` holds: ``results`` (one record per image and method: ``image``,
        ``method``, ``seconds``, ``n_segments``, ``metrics``), ``methods``, ``images``, ``metrics``.
    """
    from .batch import find_images, run_batch
    from .report import write_report

    runs = _expand(_check_methods(methods, checkpoints), options or {})
    truth_dir = _folder(truth, "`truth`")
    inst_dir = _folder(instances, "`instances`")
    paths = find_images(images)
    sizes = {p: io.image_size(p) for p in paths}  # headers first: no work before a bad input
    truths = {p: _truth_for(truth_dir, p.stem, sizes[p], "truth") for p in paths}
    objects = {p: _truth_for(inst_dir, p.stem, sizes[p], "instance truth") for p in paths}
    models = _load_checkpoints(checkpoints, device)
    records: list[dict] = []

    def write(path: Path, folder: Path) -> None:
        image = io.read_image(path)
        io.write_image(folder / "image.png", _display(image))
        t = None if truths[path] is None else io.read_labels(truths[path])
        inst = None if objects[path] is None else io.read_labels(objects[path])
        if t is not None:
            io.write_image(folder / "truth.png", _colour_truth(t))
        for r in _segment_all(image, runs, models, sliding, progress):
            write_segmentation(folder / r.method, image, r, source=path)
            records.append(_record(path.stem, r, score(r, t, inst)))

    run_batch(paths, out, write, progress=progress, desc="comparing")
    data = {
        "title": title,
        "images": [p.stem for p in paths],
        "methods": list(dict.fromkeys(r["method"] for r in records)),
        "truth": {p.stem: truths[p] is not None for p in paths},
        "metrics": METRIC_NOTES,
        "results": records,
    }
    io.write_json(Path(out) / "results.json", data)
    write_report(out, [data])
    return data


def _check_methods(methods: Sequence[str] | str, checkpoints) -> list[str]:
    """The clustering methods asked for, checked (a comma-separated string is split)."""
    if isinstance(methods, str):
        methods = [m.strip() for m in methods.split(",") if m.strip()]
    if not methods and not checkpoints:
        raise ValueError(
            f"no method to compare: give `methods` ({', '.join(CLUSTERING)}) or `checkpoint`"
        )
    unknown = [m for m in methods if m not in CLUSTERING]
    if unknown:
        raise ValueError(
            f"unknown method {unknown[0]!r}; `methods` takes {', '.join(CLUSTERING)} (trained "
            "networks come with `checkpoint` [NAME=]PATH)"
        )
    return list(methods)


def _segment_all(image, runs: dict, models: dict, sliding, progress) -> list[Segmentation]:
    """Every clustering run and every checkpoint (its sliding window too, if asked) on ``image``."""
    from .models.sliding import PatchClassifier

    results = []
    for name, (method, params) in runs.items():
        results.append(segment(image, method, **params))
        results[-1].method = name
    for name, (model, names) in models.items():
        if sliding and isinstance(model, PatchClassifier):
            results.append(
                segment(
                    image,
                    "sliding",
                    model=model,
                    class_names=names,
                    stride=sliding,
                    progress=progress,
                )
            )
            results[-1].method = f"{name}-sliding"
        results.append(segment_with_model(image, model, names, name))
    return results


def _record(stem: str, r: Segmentation, metrics: dict) -> dict:
    """One line of results.json."""
    return {
        "image": stem,
        "method": r.method,
        "kind": r.kind,
        "seconds": round(r.seconds, 4),
        "compile_seconds": round(r.compile_seconds, 4),
        "n_segments": r.n_segments,
        "metrics": io.json_safe(metrics),  # NaN (nothing to score) -> None
    }


def _expand(methods: Sequence[str], options: Mapping[str, Mapping[str, Any]]) -> dict:
    """{name: (method, parameters)}: a list of several ``n_clusters`` gives one k-means run per
    K, named ``kmeans-k<K>``."""
    runs = {}
    for m in methods:
        params = dict(options.get(m, {}))
        ks = params.get("n_clusters")
        if isinstance(ks, (list, tuple)) and len(ks) > 1:
            for k in ks:
                runs[f"{m}-k{k}"] = (m, {**params, "n_clusters": k})
            continue
        if isinstance(ks, (list, tuple)):
            params["n_clusters"] = ks[0]
        runs[m] = (m, params)
    return runs


def _folder(path, option: str) -> Path | None:
    if path is None:
        return None
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{option} folder not found: {path}")
    return path


def _display(image: np.ndarray) -> np.ndarray:
    from .image import to_uint8_rgb

    return to_uint8_rgb(image)


def _colour_truth(truth: np.ndarray) -> np.ndarray:
    from .viz import colorize

    shown = np.where(truth == IGNORE, 0, truth)
    picture = colorize(shown)
    picture[truth == IGNORE] = (255, 255, 255)
    return picture


def score(result: Segmentation, truth: np.ndarray | None, instances: np.ndarray | None) -> dict:
    """The metrics of one result (see :data:`METRIC_NOTES`): partition scores against the class
    truth; class scores for methods that predict classes; mask AP50 and F1@0.5 against instance
    truth. Truth pixels of value 255 are ignored everywhere."""
    from .metrics import ConfusionMatrix, partition_scores

    metrics: dict[str, Any] = {}
    if truth is not None:
        metrics |= partition_scores(truth, result.labels, ignore_index=IGNORE)
        if result.kind in ("classes", "instances"):
            n = max(len(result.class_names or ()), int(truth[truth != IGNORE].max(initial=0)) + 1)
            n = max(n, int(result.labels.max()) + 1)
            cm = ConfusionMatrix(n, IGNORE if IGNORE >= n else None)
            cm.update(truth, result.labels)
            m = cm.compute()
            metrics |= {"pixel_accuracy": m["pixel_accuracy"], "mean_iou": m["mean_iou"]}
            metrics["iou"] = [None if np.isnan(v) else float(v) for v in m["iou"]]
    if instances is not None:
        metrics |= _instance_scores(result, instances, truth)
    return metrics


def _instance_scores(result: Segmentation, instances: np.ndarray, truth) -> dict:
    from .metrics import coco_metrics, instance_f1

    ids = np.unique(instances[instances > 0])
    gt = np.stack([instances == i for i in ids]) if len(ids) else np.zeros((0, *instances.shape))
    ignore = None if truth is None else truth == IGNORE
    if result.instances is not None:
        masks = [i.full_mask(result.labels.shape) for i in result.instances]
        scores = [i.score for i in result.instances]
    else:
        masks, scores = _components(result), None
    pred = np.stack(masks) if masks else np.zeros((0, *instances.shape), bool)
    if ignore is not None:
        pred = pred & ~ignore
    scores = np.ones(len(pred)) if scores is None else np.asarray(scores, np.float64)
    boxes = np.array([_box(m) for m in pred], np.float64).reshape(-1, 4)
    target = {"masks": gt, "labels": np.ones(len(gt), np.int64)}
    output = {
        "masks": pred,
        "labels": np.ones(len(pred), np.int64),
        "scores": scores,
        "boxes": boxes,
    }
    ap = coco_metrics([target], [output])["mask_ap50"]
    keep = scores >= 0.5
    return {"mask_ap50": ap, "f1_50": instance_f1(gt, pred[keep])["f1"]}


def _components(result: Segmentation) -> list[np.ndarray]:
    """Instances of a method without them: connected components of the foreground (classes
    other than 0; for clusterings, every cluster but the one covering most of the border)."""
    from skimage.measure import label

    labels = result.labels
    if result.kind in ("classes", "instances"):
        background = 0
    else:
        border = np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])
        background = int(np.bincount(border).argmax())
    parts = label(np.where(labels == background, -1, labels), background=-1, connectivity=1)
    return [parts == i for i in range(1, int(parts.max()) + 1)]


def _box(mask: np.ndarray) -> tuple[float, float, float, float]:
    from .image import mask_box

    return tuple(float(v) for v in mask_box(mask) or (0, 0, 0, 0))
