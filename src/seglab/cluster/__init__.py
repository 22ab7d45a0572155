"""Segmentation as clustering: pixels are points in feature space, segments are clusters.

Each name is imported from its module on first use, so a k-means run does not load mean-shift's
neighbour search (scipy.spatial) and the command line starts fast.
"""

from __future__ import annotations

import importlib
from typing import Any

#: name -> the module of this package that defines it
_NAMES = {
    "NotFittedError": "_estimator",
    "KMeans": "kmeans",
    "KMeansSegmenter": "kmeans",
    "kmeans_plusplus": "kmeans",
    "MeanShift": "meanshift",
    "estimate_bandwidth": "meanshift",
    "MeanShiftSegmenter": "meanshift_image",
    "connected_regions": "regions",
    "label_regions": "regions",
    "merge_small_regions": "regions",
}

__all__ = sorted(_NAMES)


def __getattr__(name: str) -> Any:
    """The package's names, imported from their modules on first use."""
    if name in _NAMES:
        value = getattr(importlib.import_module(f"{__name__}.{_NAMES[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_NAMES})
