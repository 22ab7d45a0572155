"""Pictures of segmentations. One palette for the whole project: the PASCAL VOC colour map.

The VOC map gives label 0 black (background), 1 dark red, 2 dark green, ... and 255 (the "ignore"
label) a light grey; labels >= 256 wrap around. All functions return uint8 RGB arrays; saving is
:mod:`seglab.io`'s job.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from .image import check_image, to_uint8_rgb


@lru_cache(maxsize=1)
def _voc_palette() -> np.ndarray:
    pal = np.zeros((256, 3), dtype=np.uint8)
    for i in range(256):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        pal[i] = (r, g, b)
    pal.setflags(write=False)
    return pal


def voc_palette(n: int = 256) -> np.ndarray:
    """The first ``n`` colours (n <= 256) of the PASCAL VOC colour map, (n, 3) uint8."""
    if not 1 <= n <= 256:
        raise ValueError(f"n must be in 1..256, got {n}")
    return _voc_palette()[:n].copy()


def _check_labels_for(image: np.ndarray | None, labels: np.ndarray) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"labels must be an (H, W) integer array, got {labels.dtype} {labels.shape}"
        )
    if labels.size and labels.min() < 0:
        raise ValueError("labels must be >= 0")
    if image is not None and image.shape[:2] != labels.shape:
        raise ValueError(
            f"labels shape {labels.shape} does not match image shape {image.shape[:2]}"
        )
    return labels


def colorize(labels: np.ndarray) -> np.ndarray:
    """Label image -> (H, W, 3) uint8 picture in the VOC palette."""
    labels = _check_labels_for(None, labels)
    return _voc_palette()[labels.astype(np.int64) % 256]


def overlay(image: np.ndarray, labels: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend the colourised labels over the image: ``(1 - alpha) * image + alpha * colours``."""
    rgb = to_uint8_rgb(image)
    labels = _check_labels_for(rgb, labels)
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    out = (1.0 - alpha) * rgb.astype(np.float32) + alpha * colorize(labels).astype(np.float32)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def boundaries(labels: np.ndarray) -> np.ndarray:
    """Boolean (H, W) mask of pixels whose right or lower neighbour has another label."""
    labels = _check_labels_for(None, labels)
    edge = np.zeros(labels.shape, dtype=bool)
    dx = labels[:, 1:] != labels[:, :-1]
    dy = labels[1:, :] != labels[:-1, :]
    edge[:, :-1] |= dx
    edge[:-1, :] |= dy
    return edge


def mark_boundaries(
    image: np.ndarray, labels: np.ndarray, color: Sequence[int] = (255, 255, 0)
) -> np.ndarray:
    """The image with region boundaries drawn in ``color`` (one pixel wide)."""
    rgb = to_uint8_rgb(image).copy()
    labels = _check_labels_for(rgb, labels)
    rgb[boundaries(labels)] = np.asarray(color, dtype=np.uint8)
    return rgb


def mean_color(image: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Every pixel replaced by the mean colour of its segment: the "cartoon" of a segmentation."""
    rgb = to_uint8_rgb(image)
    labels = _check_labels_for(rgb, labels)
    flat = labels.ravel()
    n = int(flat.max()) + 1
    counts = np.maximum(np.bincount(flat, minlength=n), 1)
    means = np.stack(
        [np.bincount(flat, weights=rgb[:, :, c].ravel(), minlength=n) / counts for c in range(3)],
        axis=1,
    )
    return np.round(means[labels]).astype(np.uint8)


def k_sweep_figure(image: np.ndarray, results: Sequence[dict], title: str | None = None):
    """Figure: the image, then its segmentation for each K, titled with K and the inertia.

    ``results`` is a list of dicts with ``k``, ``labels`` and ``inertia``. Returns a matplotlib
    Figure (save it with :func:`seglab.io.save_figure`).
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    check_image(image)
    n = len(results) + 1
    h, w = image.shape[:2]
    fig, axes = plt.subplots(1, n, figsize=(3.2 * n, 3.2 * h / w + 0.6), squeeze=False)
    axes = axes[0]
    axes[0].imshow(to_uint8_rgb(image))
    axes[0].set_title("image")
    for ax, r in zip(axes[1:], results, strict=True):
        ax.imshow(mean_color(image, r["labels"]))
        ax.set_title(f"K={r['k']}  inertia={r['inertia']:.3g}", fontsize=9)
    for ax in axes:
        ax.set_axis_off()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
