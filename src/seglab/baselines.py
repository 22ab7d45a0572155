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
    scores = binary_scores(foreground, mask > 0)
    scores["n_regions"] = int(ndi.label(foreground)[1])
    scores["n_true_nuclei"] = len(np.unique(mask)) - 1
    return scores
