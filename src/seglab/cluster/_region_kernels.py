"""Compiled connected components for regions (numba): one flood fill serves both the pieces of
equal label (:func:`seglab.cluster.label_regions`) and EDISON's chaining of similar modes."""

from __future__ import annotations

import numpy as np

from .._jit import kernel


def connect_chained(values, threshold, diagonal):
    """Flood-fill 4-connected (8 with ``diagonal``) pixels whose values differ from the pixel
    they are reached from by less than ``threshold`` in every channel (values (H, W, C); EDISON's
    ``Connect`` with 8 neighbours). Returns region labels (H * W,) numbered in raster order of
    their first pixel, and their number."""
    h, w, _ = values.shape
    labels = np.full(h * w, -1, np.int64)  # (made here: numpy calls cost numba compile time)
    n = _connect(values, float(threshold), bool(diagonal), labels, np.empty(h * w, np.int64))
    return labels, n


@kernel(nogil=True)
def _connect(values, threshold, diagonal, labels, stack):  # pragma: no cover - compiled
    """:func:`connect_chained` into ``labels`` (all -1 on entry); returns the number of regions."""
    h, w, c = values.shape
    n = 0
    for start in range(h * w):
        if labels[start] >= 0:
            continue
        labels[start] = n
        top = 0
        stack[0] = start
        while top >= 0:
            p = stack[top]
            top -= 1
            y = p // w
            x = p % w
            for yy in range(max(0, y - 1), min(h, y + 2)):
                for xx in range(max(0, x - 1), min(w, x + 2)):
                    q = yy * w + xx
                    if labels[q] >= 0 or (not diagonal and yy != y and xx != x):
                        continue
                    near = True
                    for k in range(c):
                        if abs(values[y, x, k] - values[yy, xx, k]) >= threshold:
                            near = False
                    if near:
                        labels[q] = n
                        top += 1
                        stack[top] = q
        n += 1
    return n
