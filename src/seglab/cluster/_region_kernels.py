"""Connected components for regions: one flood fill serves both the pieces of equal label
(:func:`seglab.cluster.label_regions`) and EDISON's chaining of similar modes. Compiled C
(``_ckernels.c``) or numba (``_region_numba.py``), as :mod:`._kernel_backend` picks."""

from __future__ import annotations

import numpy as np

from ._kernel_backend import kernels


def connect_chained(values, threshold, diagonal):
    """Flood-fill 4-connected (8 with ``diagonal``) pixels whose values differ from the pixel
    they are reached from by less than ``threshold`` in every channel (values (H, W, C) float64;
    EDISON's ``Connect`` with 8 neighbours). Returns region labels (H * W,) numbered in raster
    order of their first pixel, and their number."""
    h, w, _ = values.shape
    labels = np.full(h * w, -1, np.int64)
    stack = np.empty(h * w, np.int64)
    n = kernels("_region_numba")._connect(values, float(threshold), bool(diagonal), labels, stack)
    return labels, n
