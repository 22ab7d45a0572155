"""The compiled loop behind :meth:`seglab.interactive.StrokeSegmenter.predict_proba`: every
pixel walks every tree of the forest (flat arrays of nodes) to its leaf and adds the leaf's class
probabilities. Comparisons are made as scikit-learn makes them (float32 features against float64
thresholds), so the votes are the forest's own."""

from __future__ import annotations

from ._jit import kernel
from ._threads import parallel_for


def forest_proba(X, roots, left, right, feature, threshold, value, out) -> None:
    """Class probabilities of the rows of X (N, F) averaged over the trees, written into out
    (N, C); threads take the rows in ranges."""
    parallel_for(
        _forest_proba,
        X.shape[0],
        X,
        roots,
        left,
        right,
        feature,
        threshold,
        value,
        out,
        tasks_per_thread=4,
    )


@kernel(nogil=True)
def _forest_proba(
    X, roots, left, right, feature, threshold, value, out, lo, hi
):  # pragma: no cover
    n_trees, n_classes = roots.shape[0], out.shape[1]
    for i in range(lo, hi):
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


__all__ = ["forest_proba"]
