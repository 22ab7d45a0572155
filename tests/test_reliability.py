"""Every signal an interruption, every OS error one line, every input read as a viewer shows it
(issue: the remaining failure paths)."""

import errno
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from _helpers import one_error_line, shapes_image, snapshot, train_args
from PIL import Image

from seglab import io
from seglab.batch import OutputBatch
from seglab.cli import main


def _photos(folder, n, size=96):
    folder.mkdir()
    for i in range(n):
        image = np.array(Image.fromarray(shapes_image(seed=i)).resize((size, size)))
        Image.fromarray(image).save(folder / f"p{i:02d}.png")
    return folder


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_a_signal_mid_run_restores_every_earlier_result(tmp_path, signum):
    photos = _photos(tmp_path / "photos", 24)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "seglab", "segment", str(photos), "--out", str(out), "--quiet"]
    assert subprocess.run([*cmd, "--k", "2"], capture_output=True).returncode == 0
    before = snapshot(out)
    child = subprocess.Popen([*cmd, "--method", "meanshift", "--hs", "9"], stderr=subprocess.PIPE,
                             text=True)  # fmt: skip
    for _ in range(60_000):  # until the first image has replaced its earlier result
        if list(out.glob(".staging.seglab-*/.replaced-*")) or child.poll() is not None:
            break
        time.sleep(0.001)
    child.send_signal(signum)
    _, err = child.communicate(timeout=120)
    assert child.returncode == 128 + signum, err
    assert f"interrupted by {signal.Signals(signum).name}" in err and "Traceback" not in err
    assert snapshot(out) == before  # byte-identical, nothing of the new run, no staging left
    assert not list(out.glob(".*"))


def test_a_killed_runs_staging_is_recovered_not_deleted(tmp_path):
    out = tmp_path / "out"
    (out / "p0").mkdir(parents=True)
    (out / "p0" / "labels.png").write_text("the killed run's new result")
    staging = out / f".staging.seglab-{io.owner_tag().split('-')[0]}-{_dead_pid()}-x1"
    (staging / ".replaced-p0").mkdir(parents=True)
    (staging / ".replaced-p0" / "labels.png").write_text("the earlier result")
    with OutputBatch(out):
        pass
    assert (out / "p0" / "labels.png").read_text() == "the earlier result"
    assert not staging.exists()


def test_overwrite_keeps_the_old_run_until_the_new_one_has_started(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(train_args(out)) == 0
    before = snapshot(out)
    missing = tmp_path / "nowhere"
    args = [*train_args(out, "data.dataset=folder", f"data.root={missing}"), "--overwrite"]
    assert main(args) == 2
    capsys.readouterr()
    assert snapshot(out) == before  # setup failed: best.pt, last.pt and the metrics are kept
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []


def test_train_into_a_file_or_read_only_place_fails_before_any_epoch(tmp_path, capsys, monkeypatch):
    afile = tmp_path / "afile"
    afile.write_text("not a folder")
    assert main(train_args(afile)) == 2
    one_error_line(capsys, "is a file")
    assert main(train_args(afile / "sub")) == 2
    one_error_line(capsys, "not a directory")
    assert afile.read_text() == "not a folder"


@pytest.mark.parametrize(
    "code, words",
    [(errno.EROFS, "read-only file system"), (errno.ENOSPC, "no space left on device")],
)
def test_os_errors_are_one_line(tmp_path, capsys, monkeypatch, code, words):
    import seglab._files

    photo = tmp_path / "a.png"
    Image.fromarray(shapes_image()).save(photo)

    def fail(path, *args, **kwargs):
        raise OSError(code, os.strerror(code), str(path))

    monkeypatch.setattr(seglab._files, "atomic_write", fail)
    assert main(["segment", str(photo), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    one_error_line(capsys, words, "--out")
    assert not (tmp_path / "out").exists()  # the failed run removed the folder it made


def test_paths_that_are_files_or_leave_out_are_refused(tmp_path, capsys):
    photo = tmp_path / "p.png"
    Image.fromarray(shapes_image()).save(photo)
    afile = tmp_path / "afile"
    afile.write_text("mine")
    assert main(["segment", str(photo), "--out", str(afile / "sub"), "--quiet"]) == 2
    one_error_line(capsys)
    out = tmp_path / "out"
    out.mkdir()
    (out / "p").write_text("a file where a result folder would go")
    assert main(["segment", str(photo), "--out", str(out), "--quiet"]) == 2
    one_error_line(capsys, "not a result folder")
    assert (out / "p").read_text() == "a file where a result folder would go"
    args = ["compare", str(photo), "--out", str(out), "--checkpoint", f"../../x={photo}"]
    assert main(args) == 2
    one_error_line(capsys, "not a plain name")
    assert main(["compare", str(photo), "--methods", "", "--out", str(tmp_path / "c")]) == 2
    one_error_line(capsys, "no method")
    truth = tmp_path / "truth"
    truth.mkdir()
    Image.fromarray(np.zeros((48, 64), np.uint8)).save(truth / "p.jpg")
    assert main(["compare", str(photo), "--truth", str(truth), "--out", str(tmp_path / "c")]) == 2
    one_error_line(capsys, "p.png", "p.jpg")


def test_bad_truth_files_are_one_line_naming_the_file(tmp_path, capsys):
    photo = tmp_path / "p.png"
    Image.fromarray(shapes_image()).save(photo)
    truth = tmp_path / "truth"
    truth.mkdir()
    Image.fromarray(shapes_image()).save(truth / "p.png")  # RGB, not one id per pixel
    assert main(["compare", str(photo), "--truth", str(truth), "--out", str(tmp_path / "c")]) == 2
    one_error_line(capsys, "p.png", "colour")
    Image.fromarray(np.zeros((48, 64), np.uint8)).save(truth / "p.png")
    data = (truth / "p.png").read_bytes()
    (truth / "p.png").write_bytes(data[: len(data) // 2])  # truncated
    assert main(["compare", str(photo), "--truth", str(truth), "--out", str(tmp_path / "c")]) == 2
    one_error_line(capsys, "p.png")


def test_an_all_ignore_truth_scores_nothing_and_the_json_is_strict(tmp_path):
    photo = tmp_path / "p.png"
    Image.fromarray(shapes_image()).save(photo)
    truth = tmp_path / "truth"
    truth.mkdir()
    Image.fromarray(np.full((48, 64), 255, np.uint8)).save(truth / "p.png")
    out = tmp_path / "c"
    assert main(["compare", str(photo), "--truth", str(truth), "--out", str(out), "--quiet"]) == 0

    def refuse(name):
        raise AssertionError(f"{name} in results.json")

    data = json.loads((out / "results.json").read_text(), parse_constant=refuse)
    for record in data["results"]:
        assert record["metrics"]["adjusted_rand_index"] is None
        assert record["metrics"]["boundary_f1"] is None


def test_category_ids_of_any_size_load_mapped(tmp_path):
    from seglab.data import CocoInstances

    images = tmp_path / "images"
    images.mkdir()
    Image.fromarray(shapes_image()).save(images / "a.png")
    coco = {
        "images": [{"id": 1, "file_name": "a.png", "height": 48, "width": 64}],
        "categories": [{"id": 2**40, "name": "big"}, {"id": 300, "name": "mid"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 2**40, "bbox": [1, 1, 10, 10],
             "segmentation": [[1, 1, 11, 1, 11, 11, 1, 11]], "area": 100, "iscrowd": 0},
            {"id": 2, "image_id": 1, "category_id": 300, "bbox": [20, 20, 10, 10],
             "segmentation": [[20, 20, 30, 20, 30, 30, 20, 30]], "area": 100, "iscrowd": 0},
        ],
    }  # fmt: skip
    path = tmp_path / "coco.json"
    path.write_text(json.dumps(coco))
    with pytest.warns(UserWarning, match="mapped to 1..K"):
        data = CocoInstances(images, path)
    assert data.class_map.ids == (0, 300, 2**40)
    assert sorted(data[0][1]["labels"].tolist()) == [1, 2]
    with pytest.raises(ValueError, match="contiguous=True"):
        CocoInstances(images, path, contiguous=False)


def test_exif_orientation_is_applied_to_images_and_masks(tmp_path):
    image = shapes_image()  # 48 x 64, stored lying down with "rotate 90" in its EXIF
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(image).save(tmp_path / "photo.jpg", exif=exif, quality=95)
    mask = np.zeros((48, 64), np.uint8)
    mask[:10, :5] = 1
    Image.fromarray(mask).save(tmp_path / "mask.png", exif=exif)
    read = io.read_image(tmp_path / "photo.jpg")
    assert read.shape[:2] == (64, 48) and io.image_size(tmp_path / "photo.jpg") == (64, 48)
    labels = io.read_labels(tmp_path / "mask.png")
    assert labels.shape == (64, 48) and np.array_equal(labels, np.rot90(mask, -1))


def test_forged_tiff_and_raised_limits(tmp_path):
    import tifffile

    from seglab.inference.sources import open_image

    big = np.zeros((2000, 1000), np.uint8)
    tifffile.imwrite(tmp_path / "ok.tif", big)
    data = (tmp_path / "ok.tif").read_bytes()
    (tmp_path / "forged.tif").write_bytes(data[: len(data) // 3])
    with pytest.raises(ValueError, match="truncated or forged"):
        open_image(tmp_path / "forged.tif")
    with pytest.raises(ValueError, match="limit"):
        open_image(tmp_path / "ok.tif", max_pixels=1000)
    Image.MAX_IMAGE_PIXELS, saved = 500_000, Image.MAX_IMAGE_PIXELS  # Pillow's own bomb limit
    try:
        Image.fromarray(big).save(tmp_path / "big.tif")
        assert io.read_image(tmp_path / "big.tif", max_pixels=3_000_000).shape == (2000, 1000)
    finally:
        Image.MAX_IMAGE_PIXELS = saved
