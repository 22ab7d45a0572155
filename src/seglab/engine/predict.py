"""Predict label maps for new images with a trained checkpoint (or an exported ONNX model).

:func:`predict` takes files, folders and glob patterns, reads one image at a time, and under
``torchrun`` each process takes its share of the images (:mod:`seglab.batch`), so that
``torchrun --nproc_per_node=P -m seglab predict CKPT DIR --out OUT`` spreads a folder over P
processes (and over machines with ``--nnodes``), each image written exactly once. Each image's
folder is written whole or not at all; ``skip_existing`` resumes a batch that stopped.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from .. import io, viz
from .._checks import resolve_device
from ..batch import find_images, run_batch, shard
from ..models import is_instance_model
from ..models.sliding import as_dense
from .checkpoint import load_checkpoint, model_from_checkpoint

logger = logging.getLogger(__name__)

_PREVIEW_PIXELS = 16e6  # overlays of larger images are drawn on a subsampled preview


class Predictor:
    """A loaded model and the options to run it; :meth:`write` segments one image file into a
    folder. Loading happens once, in ``__init__``."""

    def __init__(
        self,
        checkpoint: str | os.PathLike,
        device: str = "auto",
        model_name: str | None = None,
        **options: Any,
    ) -> None:
        self.device = resolve_device(device)
        self.options = options
        self.instance = False
        self.strokes = None
        if str(checkpoint).lower().endswith(".npz"):  # a segmenter trained on strokes
            from ..interactive import StrokeSegmenter

            self.strokes = StrokeSegmenter.load(checkpoint)
            self.names = ["unlabelled", *self.strokes.class_names]
            return
        if str(checkpoint).lower().endswith(".onnx"):  # an exported model: onnxruntime runs it
            from ..inference import load_onnx

            self.model = load_onnx(checkpoint, str(self.device))
            if "masks" in [o.name for o in self.model.get_outputs()]:
                raise ValueError(
                    f"{checkpoint} is an exported Mask R-CNN (outputs boxes, labels, scores, "
                    "masks): run it with onnxruntime directly, or predict from its seglab checkpoint"
                )
            meta = Path(checkpoint).with_suffix(".json")
            self.names = json.loads(meta.read_text())["classes"] if meta.is_file() else None
            return
        ckpt = load_checkpoint(checkpoint)
        held = ckpt["config"]["model"]["name"]
        if model_name is not None and held != model_name:
            raise ValueError(
                f"{checkpoint} holds a {held} model, not {model_name}; drop `model` or pass the "
                f"checkpoint of a {model_name}"
            )
        net, self.class_map = model_from_checkpoint(ckpt)
        self.names = list(self.class_map.names)
        self.instance = is_instance_model(net)
        self.model = (net if self.instance else as_dense(net)).to(self.device).eval()

    def write(self, path: Path, folder: Path, image_id: int = 0) -> dict:
        """Segment the image at ``path`` and write its results into ``folder``."""
        if self.instance:
            return _write_instances(self, path, folder, image_id)
        if self.strokes is not None:
            return _write_stroke_labels(self, path, folder)
        return _write_labels(self, path, folder)


def _write_stroke_labels(p: Predictor, path: Path, folder: Path) -> dict:
    """labels.png (class ids 1..C), overlay.png, uncertainty.png and summary.json of a
    segmenter trained on strokes (:mod:`seglab.interactive`)."""
    image = io.read_image(path, max_pixels=p.options.get("max_pixels"))
    t0 = time.perf_counter()
    proba = p.strokes.predict_proba(image)
    labels = proba.argmax(axis=2) + 1
    seconds = time.perf_counter() - t0
    io.write_labels(folder / "labels.png", labels)
    io.write_image(folder / "overlay.png", viz.overlay(image, labels, 0.5))
    uncertainty = np.round(
        (1 - proba.max(axis=2)) * 255 * proba.shape[2] / max(proba.shape[2] - 1, 1)
    )
    io.write_image(folder / "uncertainty.png", np.clip(uncertainty, 0, 255).astype(np.uint8))
    counts = np.bincount(labels.ravel(), minlength=len(p.names))
    summary = {
        "image": str(path),
        "height": int(labels.shape[0]),
        "width": int(labels.shape[1]),
        "classes": p.names,
        "pixels_per_class": counts.tolist(),
        "labels": "labels.png",
        "seconds": round(seconds, 3),
    }
    io.write_json(folder / "summary.json", summary)
    return summary


def _write_labels(p: Predictor, path: Path, folder: Path) -> dict:
    """labels.png (16-bit; labels.tif for TIFF input, written by region), overlay.png and
    summary.json."""
    from ..inference import open_image, predict_tiled

    o = p.options
    image = open_image(path, max_pixels=o.get("max_pixels"))
    h, w = image.shape[:2]
    tiff = path.suffix.lower() in (".tif", ".tiff")
    t0 = time.perf_counter()
    tiled = _effective(predict_tiled, o, ("overlap", "batch_size", "weighting", "tta", "amp"))
    labels = predict_tiled(
        p.model,
        image,
        tile=o.get("tile") or (h, w),
        device=p.device,
        out=folder / "labels.tif" if tiff else None,
        progress=o.get("progress", False),
        **tiled,
    )
    seconds = time.perf_counter() - t0
    if not tiff:
        io.write_labels(folder / "labels.png", labels)
    step = max(1, math.ceil(math.sqrt(h * w / _PREVIEW_PIXELS)))  # big images: a preview
    preview = np.asarray(image[::step, ::step])
    io.write_image(folder / "overlay.png", viz.overlay(preview, labels[::step, ::step], 0.5))
    counts = np.zeros(len(p.names) if p.names else 1, np.int64)
    for y in range(0, h, 1024):  # by bands: the label map may be a memory map
        band = np.bincount(np.asarray(labels[y : y + 1024]).ravel(), minlength=len(counts))
        counts = np.pad(counts, (0, len(band) - len(counts))) + band
    summary = {
        "image": str(path),
        "height": h,
        "width": w,
        "classes": p.names or [str(i) for i in range(len(counts))],
        "pixels_per_class": counts.tolist(),
        "labels": "labels.tif" if tiff else "labels.png",
        "overlay_scale": 1 / step,
        "tile": o.get("tile"),
        "overlap": tiled["overlap"] if o.get("tile") else None,
        "tta": tiled["tta"],
        "seconds": round(seconds, 3),
    }
    io.write_json(folder / "summary.json", summary)
    return summary


def _effective(function, options: dict, names: tuple[str, ...]) -> dict:
    """``names`` as ``options`` give them, else at ``function``'s own defaults (stated once)."""
    import inspect

    params = inspect.signature(function).parameters
    return {n: options[n] if options.get(n) is not None else params[n].default for n in names}


def _write_instances(p: Predictor, path: Path, folder: Path, image_id: int) -> dict:
    """instances.png (16-bit ids, best score = 1), instances.json (COCO results: RLE masks and
    scores), overlay.png (a colour per instance), semantic.png on request, summary.json."""
    from ..instances import (
        instances_to_labels,
        instances_to_semantic,
        overlay_instances,
        predict_instances,
        to_coco_results,
    )

    o = p.options
    image = io.read_image(path, max_pixels=o.get("max_pixels"))
    shape = image.shape[:2]
    chosen = _effective(predict_instances, o, ("score_threshold", "mask_threshold", "overlap"))
    score_threshold, mask_threshold = chosen["score_threshold"], chosen["mask_threshold"]
    t0 = time.perf_counter()
    found = predict_instances(
        p.model,
        image,
        tile=o.get("tile"),
        device=p.device,
        progress=o.get("progress", False),
        **chosen,
    )
    seconds = time.perf_counter() - t0
    labels = instances_to_labels(found, shape)
    io.write_labels(folder / "instances.png", labels)
    ids = p.class_map.ids
    io.write_json(folder / "instances.json", to_coco_results(found, shape, image_id, ids))
    io.write_image(folder / "overlay.png", overlay_instances(image, labels.astype(np.int64)))
    if o.get("semantic"):
        io.write_labels(folder / "semantic.png", instances_to_semantic(found, shape))
    per_class = np.bincount([f.label for f in found], minlength=p.class_map.num_classes)
    summary = {
        "image": str(path),
        "height": int(shape[0]),
        "width": int(shape[1]),
        "instances": len(found),
        "instances_per_class": {
            n: int(c) for n, c in zip(p.class_map.names, per_class, strict=False)
        },
        "score_threshold": score_threshold,
        "mask_threshold": mask_threshold,
        "tile": o.get("tile"),
        "seconds": round(seconds, 3),
    }
    io.write_json(folder / "summary.json", summary)
    return summary


def predict(
    checkpoint: str | os.PathLike,
    images: Iterable[str | os.PathLike],
    out: str | os.PathLike,
    device: str = "auto",
    *,
    skip_existing: bool = False,
    recursive: bool = False,
    model_name: str | None = None,
    **options: Any,
) -> list[Path]:
    """Segment ``images`` (files, folders, glob patterns) into ``out/<image stem>/``.

    Parameters
    ----------
    checkpoint : path
        A seglab checkpoint, an ``.onnx`` file from ``seglab export``, or an ``.npz``
        segmenter trained on strokes (:func:`seglab.interactive.fit_strokes`, the app).
    images : iterable of paths or patterns
        See :func:`seglab.batch.find_images`.
    out : path
        The output folder.
    device : str
        ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
    skip_existing : bool
        Leave images whose result folder exists (resumes a batch); finished images are kept
        even if a later one fails.
    recursive : bool
        Take images in sub-folders of folder inputs too.
    model_name : str, optional
        The model the checkpoint must hold (a clear error otherwise).
    **options
        ``tile``, ``overlap``, ``batch_size``, ``tta``, ``weighting``, ``amp`` (semantic models;
        see :func:`seglab.inference.predict_tiled`), ``score_threshold``, ``mask_threshold``,
        ``semantic`` (instance models), ``max_pixels`` and ``progress``.

    Returns
    -------
    list of Path
        The folders this process wrote (its share under ``torchrun``).
    """
    paths = find_images(images, recursive=recursive)
    for path in paths:  # cheap checks from the headers, before the model is even loaded
        if path.suffix.lower() not in (".tif", ".tiff"):
            io.image_size(path, options.get("max_pixels"))
    index = {path: i for i, path in enumerate(paths)}
    mine = shard(paths)
    predictor = Predictor(checkpoint, device, model_name, **options)
    batch = run_batch(
        mine,
        out,
        lambda path, folder: predictor.write(path, folder, image_id=index[path]),
        skip_existing=skip_existing,
        progress=bool(options.get("progress")),
        desc="predicting",
    )
    if batch.skipped:
        logger.info("skipped %d images whose results exist", batch.skipped)
    return batch.written
