"""Compiled region chaining for mean-shift segmentation (numba)."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def connect_chained(values, threshold):  # pragma: no cover - compiled
    """EDISON's ``Connect``: flood-fill 8-connected pixels whose range values differ from the
    pixel they are reached from by less than ``threshold`` in every channel (values (H, W, C));
    returns region labels (H * W,) numbered in raster order of their first pixel."""
    h, w, c = values.shape
    labels = np.full(h * w, -1, np.int64)
    stack = np.empty(h * w, np.int64)
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
            y, x = p // w, p % w
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    yy, xx = y + dy, x + dx
                    if (dy == 0 and dx == 0) or yy < 0 or yy >= h or xx < 0 or xx >= w:
                        continue
                    q = yy * w + xx
                    if labels[q] >= 0:
                        continue
                    near = True
                    for k in range(c):
                        if abs(values[y, x, k] - values[yy, xx, k]) >= threshold:
                            near = False
                            break
                    if near:
                        labels[q] = n
                        top += 1
                        stack[top] = q
        n += 1
    return labels
