"""Nothing lost, hostile files refused cleanly, and one-line errors (issue: real-world inputs)."""

import json
import os
import stat
import struct
import zlib

import numpy as np
import pytest
from _helpers import QUICKSTART, one_error_line, shapes_image, snapshot, train_args
from PIL import Image

from seglab import io
from seglab.cli import main
from seglab.segment import Segmentation, segment, write_segmentation


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    """A finished one-epoch run, shared by the tests that must not change it."""
    out = tmp_path_factory.mktemp("run") / "run"
    assert main(train_args(out)) == 0
    return out


# ----------------------------------------------------------------------------- runs and results


def test_second_run_with_another_config_is_refused_and_changes_nothing(run_folder, capsys):
    before = snapshot(run_folder)
    assert main(train_args(run_folder, "optimizer.lr=0.01")) == 2
    one_error_line(capsys, "already holds a training run", "--resume", "--overwrite")
    assert snapshot(run_folder) == before


def test_resume_with_another_config_is_one_line(run_folder, capsys):
    before = snapshot(run_folder)
    args = train_args(run_folder, "model.options={width: 8, depth: 2}")
    assert main([*args, "--resume"]) == 2
    one_error_line(capsys, "config differs", "model.options")
    assert snapshot(run_folder) == before


def test_resume_on_nothing_is_an_error(tmp_path, capsys):
    assert main([*train_args(tmp_path / "none"), "--resume"]) == 2
    one_error_line(capsys, "nothing to resume")


def test_overwrite_replaces_the_run_and_resume_drops_duplicate_rows(tmp_path):
    out = tmp_path / "run"
    assert main(train_args(out)) == 0
    assert main([*train_args(out, "optimizer.lr=0.002"), "--overwrite"]) == 0
    assert len((out / "metrics.csv").read_text().splitlines()) == 2  # header + one epoch
    # a kill after epoch 2 was logged but before its checkpoint was written
    with open(out / "metrics.csv", "a") as f:
        f.write("2,0.5,0.001,1.0\n")
    with open(out / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"epoch": 2, "train_loss": 0.5}) + "\n")
    stale = out / f".last.pt.seglab-{io.owner_tag().split('-')[0]}-999999999.abc.tmp"
    stale.write_bytes(b"half a checkpoint")
    args = [*train_args(out, "optimizer.lr=0.002", "train.epochs=2"), "--resume"]
    assert main(args) == 0
    epochs = [int(r.split(",")[0]) for r in (out / "metrics.csv").read_text().splitlines()[1:]]
    assert epochs == [1, 2]
    rows = [json.loads(r) for r in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    assert not stale.exists()


def test_files_follow_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        path = io.write_json(tmp_path / "a.json", {"x": 1})
        picture = io.write_image(tmp_path / "b.png", np.zeros((2, 2), np.uint8))
    finally:
        os.umask(old)
    for p in (path, picture):
        assert stat.S_IMODE(p.stat().st_mode) == 0o640


def test_failing_segment_run_keeps_earlier_results(tmp_path, capsys):
    good, other = tmp_path / "good.png", tmp_path / "other.png"
    Image.fromarray(shapes_image()).save(good)
    Image.fromarray(shapes_image(seed=3)).save(other)
    out = tmp_path / "out"
    assert main(["segment", str(good), "--k", "3", "--out", str(out), "--quiet"]) == 0
    (out / "someone_else").mkdir()
    (out / "someone_else" / "result.txt").write_text("another run's work")
    before = snapshot(out)
    tiny = tmp_path / "tiny.png"  # fails mid-run: more clusters than pixels
    Image.fromarray(np.zeros((2, 2, 3), np.uint8)).save(tiny)
    args = ["segment", str(good), str(other), str(tiny), "--k", "5", "--out", str(out), "--quiet"]
    assert main(args) == 2
    one_error_line(capsys, "number of pixels")
    assert snapshot(out) == before  # good/ restored, other/ removed, someone_else/ kept
    assert sorted(p.name for p in out.iterdir()) == ["good", "someone_else"]


def test_skip_existing_keeps_finished_images_and_resumes(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(shapes_image(seed=i)).save(folder / f"p{i}.png")
    out = tmp_path / "out"
    assert main(["segment", str(folder), "--k", "2", "--out", str(out), "--quiet"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["p0", "p1", "p2"]
    stamp = (out / "p0" / "labels.png").stat().st_mtime_ns
    import shutil

    shutil.rmtree(out / "p1")
    args = ["segment", str(folder / "*.png"), "--k", "2", "--skip-existing", "--out", str(out)]
    assert main([*args, "--quiet"]) == 0
    assert (out / "p1" / "labels.png").is_file()
    assert (out / "p0" / "labels.png").stat().st_mtime_ns == stamp


def test_unwritable_output_is_one_line(tmp_path, capsys, monkeypatch):
    import seglab.batch

    photo = tmp_path / "a.png"
    Image.fromarray(shapes_image()).save(photo)

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(tmp_path / "ro"))

    monkeypatch.setattr(seglab.batch.tempfile, "mkdtemp", denied)
    assert main(["segment", str(photo), "--out", str(tmp_path / "ro"), "--quiet"]) == 2
    one_error_line(capsys, "permission denied")


# ----------------------------------------------------------------------------- hostile inputs


def _png_header_only(path, width, height):
    """A small PNG file whose header claims width x height (the pixel data is cut short)."""

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    data = zlib.compress(b"\0" * 1000)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", data))
    return path


@pytest.mark.parametrize("side", [100_000, 13_000])
def test_huge_pictures_are_refused_from_the_header(side, tmp_path, capsys):
    bomb = _png_header_only(tmp_path / "bomb.png", side, side)
    assert bomb.stat().st_size < 10_000
    assert main(["segment", str(bomb), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    one_error_line(capsys, f"{side} x {side}", "--max-pixels")
    assert not (tmp_path / "o").exists()
    with pytest.raises(ValueError, match="more than the limit"):
        io.read_image(bomb)


def test_the_pixel_limit_can_be_raised(tmp_path, monkeypatch):
    photo = tmp_path / "a.png"
    Image.fromarray(shapes_image()).save(photo)  # 48 x 64
    with pytest.raises(ValueError, match="limit of 1,000"):
        io.read_image(photo, max_pixels=1000)
    monkeypatch.setenv("SEGLAB_MAX_PIXELS", "1000")
    with pytest.raises(ValueError, match="limit of 1,000"):
        io.read_image(photo)
    assert io.read_image(photo, max_pixels=48 * 64).shape == (48, 64, 3)


def test_memory_estimate_refuses_before_work():
    image = shapes_image()
    with pytest.raises(ValueError, match="GiB of memory"):
        segment(image, "meanshift", max_memory=10_000)


def test_labels_beyond_16_bits_are_written_as_32_bit_tiff(tmp_path):
    image = np.zeros((300, 300, 3), np.uint8)
    labels = np.arange(300 * 300, dtype=np.int64).reshape(300, 300)  # 90000 regions
    result = Segmentation("meanshift", labels, 0.1, {}, kind="regions")
    info = write_segmentation(tmp_path / "r", image, result)
    assert info["labels"] == "labels.tif" and not (tmp_path / "r" / "labels.png").exists()
    back = io.read_labels(tmp_path / "r" / "labels.tif")
    assert np.array_equal(back, labels)


def test_export_refuses_a_folder_and_an_existing_file(run_folder, tmp_path, capsys):
    assert main(["export", str(run_folder / "last.pt"), "--out", str(tmp_path)]) == 2
    one_error_line(capsys, "is a folder")
    target = tmp_path / "m.onnx"
    target.write_text("an earlier export")
    assert main(["export", str(run_folder / "last.pt"), "--out", str(target)]) == 2
    one_error_line(capsys, "exists", "--overwrite")
    assert target.read_text() == "an earlier export"


def test_predict_takes_folders_and_refuses_a_five_channel_tiff_cleanly(
    run_folder, tmp_path, capsys
):
    import tifffile

    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(2):
        Image.fromarray(shapes_image(32, 32, seed=i)).save(folder / f"a{i}.png")
    out = tmp_path / "pred"
    assert (
        main(["predict", str(run_folder / "last.pt"), str(folder), "--out", str(out), "--quiet"])
        == 0
    )
    assert sorted(p.name for p in out.iterdir()) == ["a0", "a1"]
    tifffile.imwrite(folder / "b.tif", np.zeros((32, 32, 5), np.uint8))
    out2 = tmp_path / "pred2"
    assert (
        main(["predict", str(run_folder / "last.pt"), str(folder), "--out", str(out2), "--quiet"])
        == 2
    )
    one_error_line(capsys)
    assert not out2.exists() or not any(out2.iterdir())


def test_config_size_names_the_key():
    from seglab.engine import ConfigError, load_config

    with pytest.raises(ConfigError, match=r"data\.size"):
        load_config(QUICKSTART, ["data.size=[64]"])
