"""seglab compare: every method on the same images, scored against oracles nobody here wrote."""

import json

import numpy as np
import pytest
from _helpers import QUICKSTART, shapes_image
from PIL import Image

from seglab.cli import main
from seglab.compare import score
from seglab.data import synthetic_scene
from seglab.io import read_labels, write_labels
from seglab.metrics import (
    ConfusionMatrix,
    adjusted_rand_index,
    boundary_f1_nearest,
    variation_of_information,
)
from seglab.segment import Segmentation, segment


def test_partition_metrics_match_scikit_learn_and_scikit_image():
    from skimage.metrics import variation_of_information as skimage_vi
    from sklearn.metrics import adjusted_rand_score

    r = np.random.default_rng(0)
    truth = r.integers(0, 4, (30, 40))
    pred = np.where(r.random((30, 40)) < 0.7, truth, r.integers(0, 6, (30, 40)))
    assert adjusted_rand_index(truth, pred, None) == pytest.approx(
        adjusted_rand_score(truth.ravel(), pred.ravel()), abs=1e-12
    )
    assert variation_of_information(truth, pred, None) == pytest.approx(
        sum(skimage_vi(truth, pred)), abs=1e-9
    )
    ignored = truth.copy()
    ignored[:10] = 255
    keep = ignored != 255
    assert adjusted_rand_index(ignored, pred, ignore_index=255) == pytest.approx(
        adjusted_rand_score(ignored[keep], pred[keep]), abs=1e-12
    )
    renamed = (truth + 7) * 3  # label names do not matter
    assert adjusted_rand_index(truth, renamed, None) == pytest.approx(1.0)
    assert variation_of_information(truth, renamed, None) == pytest.approx(0.0, abs=1e-12)


def test_nearest_boundary_f_measure_tolerance():
    truth = np.zeros((40, 40), int)
    truth[:, 20:] = 1
    shifted = np.zeros_like(truth)
    shifted[:, 22:] = 1
    assert boundary_f1_nearest(truth, truth)["f1"] == 1.0
    assert boundary_f1_nearest(truth, shifted, tolerance=2)["f1"] == 1.0
    assert boundary_f1_nearest(truth, shifted, tolerance=1)["f1"] == 0.0
    noisy = shifted.copy()
    noisy[5, 5] = 1  # a speck: extra boundary, lower precision, same recall
    f = boundary_f1_nearest(truth, noisy, tolerance=2)
    assert f["recall"] == 1.0 and f["precision"] < 1.0


def test_score_of_a_perfect_instance_prediction():
    instances = np.zeros((32, 32), np.int64)
    instances[2:8, 2:8], instances[15:25, 10:20], instances[20:30, 25:31] = 1, 2, 3
    truth = (instances > 0).astype(np.int64)
    perfect = Segmentation("net", truth.copy(), 0.1, {}, kind="classes", class_names=("bg", "fg"))
    m = score(perfect, truth, instances)
    assert m["adjusted_rand_index"] == 1.0 and m["mean_iou"] == 1.0 and m["pixel_accuracy"] == 1.0
    assert m["mask_ap50"] == pytest.approx(1.0) and m["f1_50"] == 1.0
    clusters = Segmentation("km", 1 - truth, 0.1, {}, kind="clusters")  # names swapped
    m = score(clusters, truth, instances)
    assert m["adjusted_rand_index"] == 1.0 and "mean_iou" not in m and m["f1_50"] == 1.0


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    """Two synthetic scenes with class truth (one pixel ignored) and a tiny trained U-Net."""
    root = tmp_path_factory.mktemp("scenes")
    (root / "truth").mkdir()
    for seed in (3, 4):
        image, mask = synthetic_scene((48, 40), seed)
        Image.fromarray(image).save(root / f"scene{seed}.png")
        mask = mask.astype(np.int64)
        mask[0, 0] = 255
        write_labels(root / "truth" / f"scene{seed}.png", mask)
    tiny = ["data.n_train=8", "data.n_val=2", "data.size=[32, 32]", "train.epochs=1",
            "model.options={width: 4, depth: 2}", "train.batch_size=4"]  # fmt: skip
    args = ["train", QUICKSTART, "--out", str(root / "run"), "--quiet"]
    assert main([*args, *[a for s in tiny for a in ("--set", s)]]) == 0
    return root


def test_compare_end_to_end_with_truth(scenes, tmp_path):
    from sklearn.metrics import adjusted_rand_score

    out = tmp_path / "cmp"
    images = [str(scenes / "scene3.png"), str(scenes / "scene4.png")]
    args = ["compare", *images, "--methods", "kmeans,meanshift", "--k", "4", "--truth",
            str(scenes / "truth"), "--checkpoint", f"unet={scenes / 'run' / 'last.pt'}",
            "--out", str(out), "--quiet"]  # fmt: skip
    assert main(args) == 0
    data = json.loads((out / "results.json").read_text())
    assert len(data["results"]) == 6 and data["methods"] == ["kmeans", "meanshift", "unet"]
    for r in data["results"]:
        labels = read_labels(out / r["image"] / r["method"] / "labels.png")
        truth = read_labels(scenes / "truth" / f"{r['image']}.png")
        keep = truth != 255
        assert r["metrics"]["adjusted_rand_index"] == pytest.approx(
            adjusted_rand_score(truth[keep], labels[keep]), abs=1e-9
        )
        assert r["seconds"] >= 0 and r["n_segments"] == len(np.unique(labels))
        if r["method"] == "unet":
            cm = ConfusionMatrix(4)
            cm.update(truth, labels)
            assert r["metrics"]["mean_iou"] == pytest.approx(cm.compute()["mean_iou"])
        else:
            assert "mean_iou" not in r["metrics"]
    page = (out / "index.html").read_text()
    assert "scene3/unet/overlay.png" in page and "http" not in page.replace("http-equiv", "")


def _bad_cases(scenes, tmp_path):
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    write_labels(wrong / "scene3.png", np.zeros((10, 10), np.int64))
    notckpt = tmp_path / "model.pt"
    notckpt.write_bytes(b"not a checkpoint")
    img = str(scenes / "scene3.png")
    return {
        "missing image": ([str(tmp_path / "nope.png")], "not found"),
        "truth size": ([img, "--truth", str(wrong)], "10 x 10"),
        "unknown method": ([img, "--methods", "kmeans,sparkles"], "unknown method 'sparkles'"),
        "not a checkpoint": ([img, "--checkpoint", str(notckpt)], "not a seglab checkpoint"),
    }


@pytest.mark.parametrize(
    "case", ["missing image", "truth size", "unknown method", "not a checkpoint"]
)
def test_compare_bad_inputs(case, scenes, tmp_path, capsys):
    args, message = _bad_cases(scenes, tmp_path)[case]
    out = tmp_path / "out"
    assert main(["compare", *args, "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("seglab: error:") and message in err[0], err
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.slow
def test_report_in_a_real_browser(scenes, tmp_path, browser):
    from _helpers import broken_images, open_page

    out = tmp_path / "cmp"
    images = [str(scenes / "scene3.png"), str(scenes / "scene4.png")]
    args = ["compare", *images, "--truth", str(scenes / "truth"), "--checkpoint",
            str(scenes / "run" / "last.pt"), "--out", str(out), "--quiet"]  # fmt: skip
    assert main(args) == 0
    page = open_page(browser, (out / "index.html").as_uri())
    n = page.evaluate("document.images.length")
    assert n == 2 * (2 + 3) + 1  # per image: itself, truth, 3 methods; plus the plot
    assert broken_images(page) == [] and page.console_errors == [] and page.outside == []
    best = page.evaluate("document.querySelectorAll('td.best').length")
    assert best >= 3
    page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
    assert (tmp_path / "report.png").stat().st_size > 10_000
    page.close()


def test_reported_seconds_leave_compiling_out():
    import seglab.segment as seg_module

    image = shapes_image(seed=5)
    seg_module._WARM.clear()
    first = segment(image, "kmeans", n_clusters=3)
    second = segment(image, "kmeans", n_clusters=3)
    assert first.compile_seconds > 0 and second.compile_seconds == 0.0  # warmed up once
    assert np.array_equal(first.labels, second.labels)
    from seglab.segment import summary

    assert summary(first, image, None)["compile_seconds"] == round(first.compile_seconds, 4)
