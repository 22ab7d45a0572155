import numpy as np
import pytest
from sklearn.metrics import jaccard_score, precision_score, recall_score

from seglab.baselines import nuclei_kmeans_foreground
from seglab.metrics import binary_scores


def test_binary_scores_match_sklearn():
    r = np.random.default_rng(0)
    pred, target = r.random((30, 40)) > 0.4, r.random((30, 40)) > 0.6
    s = binary_scores(target, pred)
    assert s["iou"] == pytest.approx(jaccard_score(target.ravel(), pred.ravel()))
    assert s["precision"] == pytest.approx(precision_score(target.ravel(), pred.ravel()))
    assert s["recall"] == pytest.approx(recall_score(target.ravel(), pred.ravel()))
    assert binary_scores(target, target)["iou"] == 1.0
    assert binary_scores(np.zeros(5, bool), np.zeros(5, bool))["dice"] == 1.0


def test_kmeans_on_nuclei_reaches_the_known_baseline():
    # measured independently before seglab existed: IoU 0.717, precision 0.878, recall 0.796
    s = nuclei_kmeans_foreground(2, "gray")
    assert s["iou"] == pytest.approx(0.717, abs=0.005)
    assert s["precision"] == pytest.approx(0.878, abs=0.005)
    assert s["recall"] == pytest.approx(0.796, abs=0.005)
