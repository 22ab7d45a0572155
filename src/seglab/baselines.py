"""Classic unsupervised baselines on the bundled nuclei image, shared by tests and benchmarks."""

from __future__ import annotations

import numpy as np

from .cluster import KMeansSegmenter
from .data import nuclei
from .metrics import binary_scores


def nuclei_kmeans_foreground(k: int = 2, features: str = "gray", random_state: int = 0) -> dict:
    """K-means on the nuclei image; foreground = every cluster brighter than the darkest one.

    Returns the foreground scores against ``mask > 0`` (whole image, no training involved) and
    the number of connected foreground regions next to the 125 labelled nuclei.
    """
    from scipy import ndimage as ndi

    image, mask = nuclei()
    seg = KMeansSegmenter(k, features=features, spatial_weight=0.0, random_state=random_state).fit(
        image
    )
    brightness = np.bincount(seg.labels_.ravel(), weights=image.ravel().astype(float), minlength=k)
    brightness /= np.maximum(np.bincount(seg.labels_.ravel(), minlength=k), 1)
    foreground = seg.labels_ != int(np.argmin(brightness))
    scores = binary_scores(mask > 0, foreground)
    scores["n_regions"] = int(ndi.label(foreground)[1])
    scores["n_true_nuclei"] = len(np.unique(mask)) - 1
    return scores


def nuclei_meanshift_foreground(
    spatial_bandwidth: float = 7.0,
    range_bandwidth: float = 6.5,
    min_region_size: int = 20,
    merge_distance: float = 0.5,
) -> dict:
    """Mean-shift on the nuclei image (intensity rescaled to 0..100 by the image maximum).

    Two foreground rules, both against ``mask > 0`` and Otsu's threshold of the image: ``regions``
    (segments whose mean intensity is above the threshold) and ``filtered`` (pixels whose mode
    intensity is above it). Also returns the number of regions, of bright regions, and of
    labelled nuclei.
    """
    from skimage.filters import threshold_otsu

    from .cluster import MeanShiftSegmenter

    image, mask = nuclei()
    scaled = image.astype(np.float64) / float(image.max())
    threshold = threshold_otsu(scaled)
    seg = MeanShiftSegmenter(
        spatial_bandwidth,
        range_bandwidth,
        "flat",
        min_region_size,
        features="gray",
        merge_distance=merge_distance,
    ).fit(scaled)
    labels = seg.labels_.ravel()
    means = np.bincount(labels, weights=scaled.ravel()) / np.bincount(labels)
    bright = means > threshold
    return {
        "regions": binary_scores(mask > 0, bright[seg.labels_]),
        "filtered": binary_scores(mask > 0, seg.pixel_modes_[:, :, 2] / 100.0 > threshold),
        "n_regions": int(seg.n_regions_),
        "n_bright_regions": int(bright.sum()),
        "n_true_nuclei": len(np.unique(mask)) - 1,
    }
