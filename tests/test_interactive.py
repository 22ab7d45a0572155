"""Strokes to a segmenter: the forest's votes are scikit-learn's, a saved segmenter predicts a
folder through `seglab predict`, the masks export as COCO."""

import json

import numpy as np
import pytest
from _helpers import shapes_image
from PIL import Image

from seglab.cli import main
from seglab.interactive import (
    StrokeSegmenter,
    filter_bank,
    fit_strokes,
    forest_arrays,
    labels_to_coco,
)


def _scene_strokes(image):
    """Strokes inside the red square (class 2) and in the background (class 1)."""
    strokes = np.zeros(image.shape[:2], np.int64)
    strokes[2:4, 2:60] = 1
    strokes[40:44, 5:30] = 1
    strokes[28:32, 40:50] = 1  # the blue disc is background too
    strokes[12:14, 12:24] = 2
    return strokes


def test_forest_votes_equal_scikit_learns():
    from sklearn.ensemble import RandomForestClassifier

    from seglab._forest_kernels import forest_proba

    r = np.random.default_rng(0)
    X = r.normal(size=(400, 6)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] ** 2 > 0.5).astype(int) + (X[:, 2] > 1)
    rf = RandomForestClassifier(n_estimators=10, random_state=0).fit(X, y)
    f = forest_arrays(rf, 3)
    out = np.zeros((len(X), 3))
    forest_proba(
        X, f["roots"], f["left"], f["right"], f["feature"], f["threshold"], f["value"], out
    )
    np.testing.assert_allclose(out, rf.predict_proba(X), atol=1e-12)


def test_strokes_train_a_segmenter_that_finds_the_object(tmp_path):
    image = shapes_image()
    seg = fit_strokes(image, _scene_strokes(image), class_names=["background", "square"])
    labels = seg.predict(image)
    assert labels.shape == image.shape[:2] and set(np.unique(labels)) <= {1, 2}
    square = np.zeros(image.shape[:2], bool)
    square[8:24, 8:28] = True  # shapes_image's red square
    iou = (square & (labels == 2)).sum() / (square | (labels == 2)).sum()
    assert iou > 0.8
    untrained = np.full_like(labels, 1)  # every pixel background: what no strokes would give
    assert iou > (square & (untrained == 2)).sum() / square.sum()
    proba = seg.predict_proba(image)
    np.testing.assert_allclose(proba.sum(axis=2), 1.0)
    path = seg.save(tmp_path / "seg.npz")
    again = StrokeSegmenter.load(path)
    assert np.array_equal(again.predict(image), labels) and again.class_names == seg.class_names


def test_bad_strokes_are_refused_clearly():
    image = shapes_image()
    one = np.zeros(image.shape[:2], int)
    one[:3] = 1
    with pytest.raises(ValueError, match="at least two classes"):
        fit_strokes(image, one)
    with pytest.raises(ValueError, match="height and width"):
        fit_strokes(image, one[:10])
    with pytest.raises(ValueError, match="integer class ids"):
        fit_strokes(image, one.astype(float))
    with pytest.raises(ValueError, match="offers forest"):
        fit_strokes(image, _scene_strokes(image), method="svm")


def test_seglab_predict_applies_a_saved_segmenter_to_a_folder(tmp_path):
    image = shapes_image()
    seg = fit_strokes(image, _scene_strokes(image))
    model = seg.save(tmp_path / "strokes.npz")
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(shapes_image(seed=i)).save(folder / f"p{i}.png")
    out = tmp_path / "out"
    assert main(["predict", str(model), str(folder), "--out", str(out), "--quiet"]) == 0
    for i in range(3):
        expected = seg.predict(shapes_image(seed=i))
        written = np.array(Image.open(out / f"p{i}" / "labels.png")).astype(np.int64)
        assert np.array_equal(written, expected)
    bad = tmp_path / "other.npz"
    np.savez(bad, x=np.zeros(3))
    assert main(["predict", str(bad), str(folder), "--out", str(tmp_path / "o2")]) == 2


def test_masks_export_as_coco_that_pycocotools_reads():
    mask_utils = pytest.importorskip("pycocotools.mask")
    labels = np.ones((20, 30), np.int64)
    labels[2:6, 3:9] = 2
    labels[10:18, 20:28] = 2
    doc = labels_to_coco(labels, ["background", "cell"])
    cells = [a for a in doc["annotations"] if a["category_id"] == 2]
    assert len(cells) == 2 and len(doc["annotations"]) == 3
    for a in cells:
        rle = mask_utils.frPyObjects(a["segmentation"], 20, 30)
        mask = mask_utils.decode(rle).astype(bool)
        assert mask.sum() == a["area"] and np.all(labels[mask] == 2)
    json.dumps(doc)  # plain JSON


def test_filter_bank_treats_gray_as_rgb():
    gray = shapes_image()[:, :, 0]
    assert filter_bank(gray).shape == filter_bank(np.dstack([gray] * 3)).shape


def test_simulated_strokes_stay_inside_their_class_and_budget_and_corrections_go_where_wrong():
    from seglab.data import synthetic_scene
    from seglab.interactive import corrective_strokes, simulate_strokes

    image, classes = synthetic_scene((160, 160), seed=1)
    truth = (classes > 0).astype(np.int64) + 1
    strokes = simulate_strokes(truth, 0.01)
    painted = strokes > 0
    assert painted.mean() <= 0.01 and set(np.unique(strokes[painted])) == {1, 2}
    assert np.all(strokes[painted] == truth[painted])  # every stroke inside its own class
    pred = fit_strokes(image, strokes).predict(image)
    more = corrective_strokes(truth, pred, strokes, 0.005)
    assert np.all(more[painted] == strokes[painted]) and (more > 0).mean() <= 0.015
    new = (more > 0) & ~painted
    assert new.any() and np.all(pred[new] != truth[new])  # only where the prediction was wrong
    assert np.all(more[new] == truth[new])  # with the true class
