"""Segmentation metrics, one definition each, used by the tests, the benchmarks, training,
``seglab compare`` and the app.

**One convention.** Every function takes ``(truth, pred)`` in that order, as scikit-learn's
``(y_true, y_pred)``; pass them by keyword when in doubt. Labels are integers (floats are refused,
not rounded). Partition and boundary metrics ignore no pixel unless told (``ignore_index=None``;
the commands whose file formats reserve 255 for "ignore" pass ``ignore_index=255``). When every
truth pixel is ignored there is nothing to score: the result is NaN (``null`` in the JSON seglab
writes), never a perfect score.

* classes (:mod:`.classes`): :class:`ConfusionMatrix` (the FCN paper's pixel accuracy, mean
  accuracy, mean IoU, frequency-weighted IoU), :func:`binary_scores`;
* instances (:mod:`.instances`): :func:`instance_f1`, :func:`coco_metrics` (pycocotools);
* partitions (:mod:`.partitions`): :func:`adjusted_rand_index`, :func:`rand_index`,
  :func:`variation_of_information`, and the Berkeley benchmark's region measures against one or
  several truths, :func:`segmentation_covering` and :func:`probabilistic_rand_index`;
* boundaries (:mod:`.boundaries`): the Berkeley benchmark's :func:`boundary_f1` and the looser
  :func:`boundary_f1_nearest`.
"""

from .boundaries import (
    boundaries,
    boundary_counts,
    boundary_f1,
    boundary_f1_nearest,
    correspond_pixels,
    scores_from_counts,
    seg2bdry,
)
from .classes import ConfusionMatrix, binary_scores
from .instances import coco_metrics, f1_counts, instance_f1
from .partitions import (
    adjusted_rand_index,
    covering_counts,
    partition_scores,
    probabilistic_rand_index,
    rand_index,
    segmentation_covering,
    variation_of_information,
)

__all__ = [
    "ConfusionMatrix",
    "adjusted_rand_index",
    "binary_scores",
    "boundaries",
    "boundary_counts",
    "boundary_f1",
    "boundary_f1_nearest",
    "coco_metrics",
    "correspond_pixels",
    "covering_counts",
    "f1_counts",
    "instance_f1",
    "partition_scores",
    "probabilistic_rand_index",
    "rand_index",
    "scores_from_counts",
    "seg2bdry",
    "segmentation_covering",
    "variation_of_information",
]
