"""The Berkeley benchmark's measures: against pyEdgeEval's matching, hand-worked values, and a
synthetic folder in the benchmark's layout."""

import numpy as np
import pytest
from PIL import Image

from seglab import metrics
from seglab.cli import main


def test_boundary_matching_agrees_with_pyedgeeval():
    lib = pytest.importorskip("pyEdgeEval._lib", reason="pip install pyEdgeEval (the oracle)")
    rng = np.random.default_rng(0)
    for _ in range(20):
        h, w = rng.integers(30, 90, 2)
        a = rng.random((h, w)) < rng.uniform(0.02, 0.2)
        b = rng.random((h, w)) < rng.uniform(0.02, 0.2)
        max_dist = rng.uniform(0.01, 0.05)
        m1, m2, *_ = lib.correspond_pixels(a, b, max_dist=max_dist)
        p1, p2 = metrics.correspond_pixels(a, b, max_dist * np.hypot(h, w))
        # one-to-one counts: ours is a maximum matching, so never fewer pairs than BSDS's solver
        # (randomised, with sparse outlier edges), which misses at most a few in a thousand
        theirs, ours = int((m1 > 0).sum()), int(p1.sum())
        assert int((m2 > 0).sum()) == theirs and int(p2.sum()) == ours
        assert theirs <= ours <= theirs + max(2, theirs // 200)


def test_berkeley_boundary_f_is_one_to_one_and_thinned():
    truth = np.zeros((60, 60), int)
    truth[:, 30:] = 1
    assert metrics.boundary_f1(truth, truth)["f1"] == 1.0
    sliver = truth.copy()
    sliver[:, 30:32] = 2  # a 2-pixel sliver: two edges where the truth has one
    f = metrics.boundary_f1(truth, sliver)
    assert f["recall"] == 1.0 and f["precision"] == pytest.approx(0.5)
    assert f["f1"] == pytest.approx(2 / 3)
    assert metrics.boundary_f1_nearest(truth, sliver)["f1"] == 1.0  # the loose score misses it
    # several truths: recall counts every human's pixels, precision any match
    other = np.zeros_like(truth)
    other[30:, :] = 1
    both = metrics.boundary_f1([truth, other], truth)
    assert both["precision"] == 1.0 and both["recall"] == pytest.approx(0.5, abs=0.02)


def test_region_measures_hand_worked():
    truth = np.array([[0, 0, 1, 1]])
    pred = np.array([[0, 0, 0, 1]])
    # covering: region {0,1} best IoU 2/3, region {2,3} best IoU 1/2 -> (2*2/3 + 2*1/2) / 4
    assert metrics.segmentation_covering(truth, pred) == pytest.approx((4 / 3 + 1) / 4)
    assert metrics.segmentation_covering(truth, truth) == 1.0
    from sklearn.metrics import rand_score

    assert metrics.probabilistic_rand_index(truth, pred) == pytest.approx(
        rand_score(truth.ravel(), pred.ravel())
    )
    assert metrics.probabilistic_rand_index([truth, pred], pred) == pytest.approx(
        (rand_score(truth.ravel(), pred.ravel()) + 1) / 2
    )
    assert np.isnan(metrics.adjusted_rand_index([[255, 255]], [[0, 1]], ignore_index=255))


def test_metric_convention():
    truth, pred = np.array([0, 0, 1, 1, 255, 255]), np.array([0, 0, 1, 1, 1, 1])
    assert metrics.adjusted_rand_index(truth, pred) == pytest.approx(0.4444, abs=1e-4)
    assert metrics.adjusted_rand_index(truth, pred, ignore_index=255) == 1.0
    with pytest.raises(ValueError, match="integer labels"):
        metrics.adjusted_rand_index([0.2, 0.7, 1.2, 1.7], [0, 1, 2, 3])
    s = metrics.binary_scores(truth=np.array([1, 1, 0, 0], bool), pred=np.array([1, 0, 0, 0], bool))
    assert s["precision"] == 1.0 and s["recall"] == 0.5  # truth first, as scikit-learn


def test_benchmark_command_on_a_folder_in_the_layout(tmp_path, capsys):
    from _helpers import shapes_image
    from scipy.io import savemat

    root = tmp_path / "BSDS"
    for sub in ("images/test", "groundTruth/test"):
        (root / sub).mkdir(parents=True)
    for i in range(2):
        image = shapes_image(seed=i)
        Image.fromarray(image).save(root / "images/test" / f"{i}.jpg", quality=95)
        seg = np.ones(image.shape[:2], np.uint16)
        seg[8:24, 8:28] = 2
        seg2 = seg.copy()
        seg2[30:, :] = 3
        cells = np.empty((1, 2), dtype=object)
        cells[0, 0] = {"Segmentation": seg, "Boundaries": metrics.seg2bdry(seg)}
        cells[0, 1] = {"Segmentation": seg2, "Boundaries": metrics.seg2bdry(seg2)}
        savemat(root / "groundTruth/test" / f"{i}.mat", {"groundTruth": cells})
    out = tmp_path / "out"
    args = ["bsds", str(root), "--split", "test", "--method", "kmeans", "--values", "2,3",
            "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    import json

    data = json.loads((out / "results.json").read_text())
    s = data["summary"]
    for name in ("boundary_f1", "segmentation_covering", "probabilistic_rand_index"):
        assert 0 < s[name]["ods"] <= s[name]["ois"] <= 1  # per-image best is never worse
    assert s["variation_of_information"]["ois"] <= s["variation_of_information"]["ods"]
    assert (out / "sweep.png").stat().st_size > 1000
    assert "ODS" in capsys.readouterr().out
