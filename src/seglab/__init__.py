"""seglab: image segmentation from clustering to fully convolutional networks.

The everyday names are here, imported when first used (as scikit-image does), so ``import
seglab`` stays fast and a k-means run never loads PyTorch::

    import seglab

    image = seglab.read_image("photo.jpg")
    labels = seglab.KMeansSegmenter(n_clusters=5).fit_predict(image)
    seglab.segment_files(["photos/"], "results", "meanshift")   # what `seglab segment` runs

(``seglab.segment`` and ``seglab.compare`` are modules: their functions of the same name are
``seglab.segment.segment`` and ``seglab.compare.compare``.)

Submodules: :mod:`seglab.features` (per-pixel features), :mod:`seglab.cluster` (k-means,
mean-shift, regions), :mod:`seglab.interactive` (a segmenter from a few strokes), :mod:`seglab.nn`
(upsampling layers), :mod:`seglab.models` (FCN, DeconvNet, SegNet, U-Net, FC-DenseNet, Mask
R-CNN; the sliding-window baseline in :mod:`seglab.models.sliding`), :mod:`seglab.data`
(datasets, samples), :mod:`seglab.losses`, :mod:`seglab.metrics`, :mod:`seglab.bsds` (the
Berkeley benchmark), :mod:`seglab.engine` (train, evaluate, predict, export),
:mod:`seglab.inference` (tiled prediction at any size, test-time augmentation, ONNX),
:mod:`seglab.compare`, :mod:`seglab.viz` (pictures), :mod:`seglab.io` (files); the ``seglab``
command line lives in :mod:`seglab.cli`.
"""

from __future__ import annotations

import importlib
from typing import Any

#: name -> the module that defines it (one source of truth: nothing is defined here).
_EVERYDAY = {
    "read_image": "io",
    "write_image": "io",
    "read_labels": "io",
    "write_labels": "io",
    "segment_files": "segment",
    "write_segmentation": "segment",
    "Segmentation": "segment",
    "pixel_features": "features",
    "KMeans": "cluster",
    "KMeansSegmenter": "cluster",
    "MeanShift": "cluster",
    "MeanShiftSegmenter": "cluster",
    "fit_strokes": "interactive",
    "StrokeSegmenter": "interactive",
    "build": "models",
    "list_models": "models",
    "train": "engine",
    "evaluate": "engine",
    "predict": "engine",
    "load_model": "engine",
    "load_config": "engine",
    "predict_tiled": "inference",
    "sample_image": "data",
}

__all__ = ["__version__", *sorted(_EVERYDAY)]


def __getattr__(name: str) -> Any:
    """The everyday names, imported from their modules on first use."""
    if name == "__version__":  # read from the installed metadata only when asked (50 ms)
        from importlib.metadata import PackageNotFoundError, version

        try:
            value = version("seglab")
        except PackageNotFoundError:  # pragma: no cover - a source tree without install
            value = "0.0.0+unknown"
        globals()[name] = value
        return value
    if name in _EVERYDAY:
        value = getattr(importlib.import_module(f"seglab.{_EVERYDAY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'seglab' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), "__version__", *_EVERYDAY})
