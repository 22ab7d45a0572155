"""The compiled loop behind :meth:`seglab.interactive.StrokeSegmenter.predict_proba`: every
pixel walks every tree of the forest (flat arrays of nodes) to its leaf and adds the leaf's class
probabilities. Comparisons are made as scikit-learn makes them (float32 features against float64
thresholds), so the votes are the forest's own."""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(parallel=True, cache=True, nogil=True)
def forest_proba(X, roots, left, right, feature, threshold, value, out):  # pragma: no cover
    n, n_trees, n_classes = X.shape[0], roots.shape[0], out.shape[1]
    for i in numba.prange(n):
        for t in range(n_trees):
            node = roots[t]
            while feature[node] >= 0:
                if X[i, feature[node]] <= threshold[node]:
                    node = left[node]
                else:
                    node = right[node]
            for c in range(n_classes):
                out[i, c] += value[node, c]
        for c in range(n_classes):
            out[i, c] /= n_trees


__all__ = ["forest_proba", "np"]
