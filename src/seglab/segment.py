"""The segmentation pipeline behind ``seglab segment``, callable from Python.

One call per method, the same for the command line, ``seglab compare`` and any script::

    from seglab.segment import segment, write_segmentation
    result = segment(image, "kmeans", n_clusters=5)        # a Segmentation
    result = segment(image, "meanshift", spatial_bandwidth=7, range_bandwidth=6.5)
    write_segmentation("out/photo", image, result)           # labels, pictures, summary.json

The parameters are those of the estimator behind each method (:class:`~seglab.cluster.KMeansSegmenter`,
:class:`~seglab.cluster.MeanShiftSegmenter`) and keep its defaults; the patch-classifier methods
(``sliding`` and its fully convolutional twin ``patch-fcn``) take a trained ``model``. Before any
work, :func:`check_memory` compares an estimate of the memory a method needs with what the machine
has, and refuses with advice instead of dying half-way.
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from . import io
from ._checks import check_choice, check_positive_int, parse_bytes

logger = logging.getLogger(__name__)

#: The methods :func:`segment` runs; the last two need a trained patch classifier (``model=``).
METHODS = ("kmeans", "meanshift", "sliding", "patch-fcn")
CLUSTERING = ("kmeans", "meanshift")

# Bytes per pixel each method holds at its peak (features, labels, bounds, modes, pictures),
# counted from the arrays each method allocates, with room for temporaries; the feature
# dimension adds its part. An estimate to refuse hopeless runs early, not a promise.
_BYTES_PER_PIXEL = {"kmeans": 96, "meanshift": 160, "sliding": 48, "patch-fcn": 400}
_BYTES_PER_FEATURE = {"kmeans": 24, "meanshift": 32, "sliding": 0, "patch-fcn": 0}


@dataclass
class Segmentation:
    """What one method made of one image.

    Attributes
    ----------
    method : str
        The method's name (one of :data:`METHODS`).
    labels : ndarray of shape (H, W)
        Cluster ids (k-means), region ids (mean-shift) or class ids (patch classifier).
    seconds : float
        Time spent segmenting, warm: compiling the method's kernels (the first call in a
        process) is not included, and reading and writing files neither.
    compile_seconds : float
        Time spent compiling (or loading compiled) kernels before the clock started; 0 once
        they are loaded.
    parameters : dict
        The parameters the method was called with.
    info : dict
        Numbers for ``summary.json`` (inertia, iterations, modes, regions, ...).
    pictures : dict
        Extra pictures by file name (mean-shift's ``filtered.png``).
    kind : str
        ``"clusters"``, ``"regions"``, ``"classes"`` or ``"instances"``: what a label means (for
        instance models ``labels`` is the class of each pixel's best instance).
    class_names : tuple of str or None
        Class names, for methods that predict classes.
    instances : list of Instance or None
        The objects found, for instance models (Mask R-CNN).
    """

    method: str
    labels: np.ndarray
    seconds: float
    parameters: dict
    info: dict = field(default_factory=dict)
    pictures: dict = field(default_factory=dict)
    kind: str = "clusters"
    class_names: tuple[str, ...] | None = None
    instances: list | None = None
    compile_seconds: float = 0.0

    @property
    def n_segments(self) -> int:
        """Number of distinct labels."""
        return int(np.unique(self.labels).size)


def estimate_clustering_memory(method: str, shape: tuple[int, ...], n_features: int = 5) -> int:
    """Bytes that ``method`` needs at its peak for an image of ``shape`` (H, W[, C]).

    (Tiled prediction with a network has its own estimate,
    :func:`seglab.inference.estimate_memory`; this one was ``seglab.segment.estimate_memory``.)
    """
    check_choice(method, "method", METHODS)
    pixels = int(shape[0]) * int(shape[1])
    per_pixel = _BYTES_PER_PIXEL[method] + _BYTES_PER_FEATURE[method] * n_features
    return pixels * per_pixel


def check_memory(method: str, shape: tuple[int, ...], max_memory: int | str | None = None) -> None:
    """Refuse, before any work, an image that ``method`` cannot segment in ``max_memory`` (bytes,
    or a size such as ``"2GB"``, as everywhere in seglab)
    (default: the memory available now).

    Raises
    ------
    ValueError
        With the estimate, what is available, and what to do instead.
    """
    limit = io.available_memory() if max_memory is None else parse_bytes(max_memory)
    if limit is None:
        return
    need = estimate_clustering_memory(method, shape)
    if need > limit:
        h, w = shape[:2]
        raise ValueError(
            f"{method} on a {w} x {h} image needs about {need / 2**30:.1f} GiB of memory and "
            f"{limit / 2**30:.1f} GiB is available; downscale the image, or segment it by tiles "
            "with a trained network (seglab.engine.predict with `tile`)"
        )


def make_segmenter(method: str, **params: Any):
    """The estimator behind a clustering method, with ``params`` (the others at its defaults)."""
    check_choice(method, "method", CLUSTERING)
    if method == "kmeans":  # only the chosen method's modules are imported
        from .cluster.kmeans import KMeansSegmenter as cls
    else:
        from .cluster.meanshift_image import MeanShiftSegmenter as cls
    known = cls._param_names()  # an unknown parameter is the user's mistake; a bug propagates
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise ValueError(
            f"{method} has no parameter {', '.join(unknown)}; it takes {', '.join(known)}"
        )
    return cls(**params)


def segment(
    image: np.ndarray,
    method: str = "kmeans",
    *,
    model: Any = None,
    class_names: Sequence[str] | None = None,
    max_memory: int | str | None = None,
    progress: bool = False,
    random_state: Any = 0,
    **params: Any,
) -> Segmentation:
    """Segment ``image`` with ``method`` and the method's ``params``.

    Parameters
    ----------
    image : ndarray
        (H, W) gray or (H, W, 3) RGB, uint8, uint16 or float in [0, 1].
    method : {"kmeans", "meanshift", "sliding", "patch-fcn"}
        k-means or mean-shift clustering of per-pixel features, or a trained patch classifier
        (``model``), run patch by patch (``sliding``) or as its fully convolutional twin.
    model : PatchClassifier, optional
        The classifier of the patch methods (see :func:`seglab.engine.load_model`).
    class_names : sequence of str, optional
        Names of the classifier's classes, for the summary.
    max_memory : int or str, optional
        Bytes the method may use (default: what is available); see :func:`check_memory`.
    progress : bool
        A progress bar for the sliding window.
    random_state : None, int, RandomState or Generator
        k-means' seeding. 0 here, so that a command, the app and a comparison give the same
        result on every run; the estimators themselves default to None, as scikit-learn's do.
    **params
        The estimator's parameters (``n_clusters``, ``features``, ``spatial_weight``, ...;
        ``spatial_bandwidth``, ``range_bandwidth``, ``kernel``,
        ``min_region_size``, ...), or ``stride`` and ``batch_size`` for the patch methods.

    Returns
    -------
    Segmentation
    """
    from .image import check_image

    check_choice(method, "method", METHODS)
    image = check_image(image)
    check_memory(method, image.shape, max_memory)
    if method == "kmeans":
        params = {**params, "random_state": random_state}
    if method in CLUSTERING:
        return _cluster(image, method, params)
    return _classify_patches(image, method, model, class_names, params, progress)


def _cluster(image: np.ndarray, method: str, params: dict) -> Segmentation:
    seg = make_segmenter(method, **params)
    compile_seconds = warm_up(image, method, params)
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        seg.fit(image)
    for w in caught:
        logger.warning("%s", w.message)
    seconds = time.perf_counter() - t0
    labels = seg.labels_
    counts = np.bincount(labels.ravel())
    info: dict[str, Any] = {}
    pictures = {}
    if method == "kmeans":
        info = {
            "n_clusters": int(seg.n_clusters),
            "inertia": float(seg.inertia_),
            "n_iter": int(seg.n_iter_),
            "n_regions": int(seg.n_regions_),
            "spatial_weight_used": float(seg.spatial_weight_),
        }
    else:
        info = {
            "n_modes": int(seg.n_modes_),
            "n_regions": int(seg.n_regions_),
            "n_iter": int(seg.n_iter_),
            "mean_iter": round(float(seg.mean_iter_), 3),
        }
        if seg.filtered_image_.dtype == np.uint8:
            pictures["filtered.png"] = seg.filtered_image_
    info["pixels_per_label"] = {str(i): int(c) for i, c in enumerate(counts)}
    parameters = {"features": seg.features, "min_region_size": seg.min_region_size, **params}
    return Segmentation(
        method,
        labels,
        seconds,
        parameters,
        info,
        pictures,
        kind="clusters" if method == "kmeans" else "regions",
        compile_seconds=compile_seconds,
    )


_WARM: set[tuple] = set()


def warm_up(image: np.ndarray, method: str, params: dict) -> float:
    """Run ``method`` once on a tiny image of the same kind (dtype, channels, parameters), so
    that compiling its kernels (numba: the first call in a process) is not counted as
    segmentation time; returns the seconds it took (0 when already warm)."""
    key = (
        method,
        image.dtype.str,
        image.shape[2:],
        tuple(sorted((k, repr(v)) for k, v in params.items())),
    )
    if key in _WARM:
        return 0.0
    tiny = np.zeros((12, 12, *image.shape[2:]), image.dtype)
    tiny[6:, :6] = np.iinfo(image.dtype).max // 2 if image.dtype.kind in "ui" else 0.5
    small = dict(params)
    if method == "kmeans":
        small["n_clusters"] = min(2, int(params.get("n_clusters", 2)))
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            make_segmenter(method, **small).fit(tiny)
        except ValueError:  # the real call reports bad parameters in its own words
            return 0.0
    _WARM.add(key)
    return time.perf_counter() - t0


def _classify_patches(image, method, model, class_names, params, progress) -> Segmentation:
    from .models.sliding import PatchClassifier, segment_patch_fcn, segment_sliding

    if not isinstance(model, PatchClassifier):
        raise ValueError(
            f"method {method!r} takes a trained patch_classifier (e.g. from 'seglab train "
            f"configs/patch_nuclei.yaml'); this is a {type(model).__name__}, not a "
            "patch_classifier: segment with it by 'seglab predict CHECKPOINT IMAGES'"
        )
    unknown = sorted(set(params) - {"stride", "batch_size"})
    if unknown:
        raise ValueError(f"{method} takes stride and batch_size, not {', '.join(unknown)}")
    s = check_positive_int(params.get("stride", 1), "stride")
    batch_size = check_positive_int(params.get("batch_size", 1024), "batch_size")
    t0 = time.perf_counter()
    if method == "sliding":
        grid = segment_sliding(model, image, stride=s, batch_size=batch_size, progress=progress)
    else:
        grid = segment_patch_fcn(model, image)[::s, ::s]
    grid = grid.numpy()
    seconds = time.perf_counter() - t0
    h, w = image.shape[:2]
    labels = np.repeat(np.repeat(grid, s, axis=0), s, axis=1)[:h, :w].astype(np.int64)
    names = tuple(class_names) if class_names else tuple(str(i) for i in range(model.num_classes))
    counts = np.bincount(grid.ravel(), minlength=len(names))
    info = {
        "classes": list(names),
        "patch_size": model.patch_size,
        "map_size": list(grid.shape),
        "pixels_per_class": {n: int(c) for n, c in zip(names, counts, strict=False)},
    }
    return Segmentation(
        method, labels, seconds, {"stride": s}, info, kind="classes", class_names=names
    )


def segment_with_model(
    image: np.ndarray,
    model: Any,
    class_names: Sequence[str] | None = None,
    method: str | None = None,
    *,
    progress: bool = False,
    **options: Any,
) -> Segmentation:
    """Segment ``image`` with a trained network of any kind seglab trains (see
    :func:`seglab.engine.load_model`): a semantic network (by :func:`~seglab.inference.predict_tiled`,
    ``options`` such as ``tile`` and ``tta``), the patch classifier (as its fully convolutional
    twin) or Mask R-CNN (``score_threshold``, ``mask_threshold``, ``tile``). ``method`` names the
    result (default: the model's class name)."""
    from .image import check_image
    from .models import is_instance_model
    from .models.sliding import PatchClassifier

    image = check_image(image)
    name = method or type(model).__name__.lower()
    if isinstance(model, PatchClassifier):
        result = _classify_patches(image, "patch-fcn", model, class_names, {}, progress)
        result.method = name
        return result
    t0 = time.perf_counter()
    if is_instance_model(model):
        from .instances import instances_to_semantic, predict_instances

        found = predict_instances(model, image, progress=progress, **options)
        labels = instances_to_semantic(found, image.shape[:2]).astype(np.int64)
        info = {"instances": len(found)}
        kind = "instances"
    else:
        from .inference import predict_tiled

        options = {"tile": image.shape[:2], **options}
        labels = predict_tiled(model, image, progress=progress, **options).astype(np.int64)
        found, info, kind = None, {}, "classes"
    seconds = time.perf_counter() - t0
    names = tuple(class_names) if class_names else None
    if names:
        counts = np.bincount(labels.ravel(), minlength=len(names))
        info["pixels_per_class"] = {n: int(c) for n, c in zip(names, counts, strict=False)}
    parameters = {k: v for k, v in options.items() if k != "tile" or v != image.shape[:2]}
    return Segmentation(
        name, labels, seconds, parameters, info, kind=kind, class_names=names, instances=found
    )


def summary(result: Segmentation, image: np.ndarray, source: str | os.PathLike | None) -> dict:
    """The ``summary.json`` of one segmentation."""
    from . import __version__

    return {
        "image": None if source is None else str(source),
        "height": int(image.shape[0]),
        "width": int(image.shape[1]),
        "method": result.method,
        "parameters": result.parameters,
        "seconds": round(result.seconds, 4),
        "compile_seconds": round(result.compile_seconds, 4),
        "labels": io.labels_filename(result.labels),
        **result.info,
        "seglab_version": __version__,
    }


def write_segmentation(
    folder: str | os.PathLike,
    image: np.ndarray,
    result: Segmentation,
    source: str | os.PathLike | None = None,
) -> dict:
    """Write ``labels.png`` (16-bit ids; ``labels.tif``, 32-bit, when they do not fit),
    ``overlay.png``, ``mean_color.png``, ``boundaries.png``, the method's extra pictures and
    ``summary.json`` into ``folder``; instance models also write ``instances.png`` (instance ids)
    and draw each instance in its own colour. Returns the summary."""
    from . import viz
    from ._threads import run_all

    folder = Path(folder)
    labels = result.labels

    def picture(name: str, draw, *args):
        """A job that draws a picture and writes it (drawn in the job: numpy releases the GIL)."""
        return lambda: io.write_image(folder / name, draw(*args))

    jobs = [partial(io.write_labels, folder / io.labels_filename(labels), labels)]
    if result.instances is not None:  # instance ids, and each object in its own colour
        from .instances import instances_to_labels, overlay_instances

        ids = instances_to_labels(result.instances, labels.shape)
        jobs.append(partial(io.write_labels, folder / "instances.png", ids))
        jobs.append(picture("overlay.png", overlay_instances, image, ids.astype(np.int64)))
    else:
        jobs.append(picture("overlay.png", viz.overlay, image, labels, 0.5))
    jobs.append(picture("mean_color.png", viz.mean_color, image, labels))
    jobs.append(picture("boundaries.png", viz.mark_boundaries, image, labels))
    jobs += [partial(io.write_image, folder / name, pic) for name, pic in result.pictures.items()]
    # written at once: Pillow's PNG encoder releases the GIL
    run_all(jobs)
    info = summary(result, image, source)
    io.write_json(folder / "summary.json", info)
    return info


def segment_to_folder(
    image: np.ndarray,
    folder: str | os.PathLike,
    method: str = "kmeans",
    *,
    source: str | os.PathLike | None = None,
    **options: Any,
) -> dict:
    """Segment and write, as ``seglab segment`` does for one image. A list of several
    ``n_clusters`` is a K sweep: one sub-folder ``k<K>/`` per K and ``k_sweep.png``."""
    ks = options.get("n_clusters")
    if method != "kmeans" or not isinstance(ks, (list, tuple)) or len(ks) == 1:
        if isinstance(ks, (list, tuple)):
            options = {**options, "n_clusters": ks[0]}
        return write_segmentation(folder, image, segment(image, method, **options), source)
    from . import viz

    folder = Path(folder)
    runs = []
    for k in ks:
        result = segment(image, method, **{**options, "n_clusters": k})
        runs.append((write_segmentation(folder / f"k{k}", image, result, source), result))
    fig = viz.k_sweep_figure(
        image,
        [{"k": s["n_clusters"], "labels": r.labels, "inertia": s["inertia"]} for s, r in runs],
        title=None if source is None else Path(source).name,
    )
    io.save_figure(folder / "k_sweep.png", fig)
    import matplotlib.pyplot as plt

    plt.close(fig)
    info = {"image": None if source is None else str(source), "runs": [s for s, _ in runs]}
    io.write_json(folder / "summary.json", info)
    return info


def segment_files(
    inputs: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    method: str = "kmeans",
    *,
    skip_existing: bool = False,
    recursive: bool = False,
    max_pixels: int | None = None,
    progress: bool = False,
    **options: Any,
) -> list[Path]:
    """Segment every image that ``inputs`` name (files, folders, glob patterns) into
    ``out/<image stem>/``, as ``seglab segment`` does.

    Images are checked from their headers first (a non-image or an oversized file stops the run
    before any work), then decoded one at a time. Under ``torchrun`` each process takes its share
    (:func:`seglab.batch.shard`). Each image's folder appears whole or not at all; a failing run
    removes what it wrote and puts back the results it was replacing, unless ``skip_existing``
    (then finished images stay, and a rerun skips them). Returns the folders written.
    """
    from .batch import find_images, run_batch, shard

    check_choice(method, "method", METHODS)
    paths = shard(find_images(inputs, recursive=recursive))
    for path in paths:  # cheap checks first, before any work or any file is written
        io.image_size(path, max_pixels)

    def write(path: Path, folder: Path) -> None:
        image = io.read_image(path, max_pixels)
        segment_to_folder(image, folder, method, source=path, progress=progress, **options)

    batch = run_batch(
        paths, out, write, skip_existing=skip_existing, progress=progress, desc="segmenting"
    )
    return batch.written


def __getattr__(name: str) -> Any:
    if name == "estimate_memory":  # one name meant two estimates: the old one, deprecated
        warnings.warn(
            "seglab.segment.estimate_memory is now estimate_clustering_memory "
            "(seglab.inference.estimate_memory is the tiled prediction's)",
            FutureWarning,
            stacklevel=2,
        )
        return estimate_clustering_memory
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
