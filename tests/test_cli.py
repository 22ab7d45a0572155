import json
import subprocess
import sys

import numpy as np
import pytest
from _helpers import shapes_image
from PIL import Image

from seglab import __version__
from seglab.cli import main
from seglab.io import read_labels


@pytest.fixture()
def photo(tmp_path):
    p = tmp_path / "in" / "shapes.png"
    p.parent.mkdir()
    Image.fromarray(shapes_image()).save(p)
    return p


def test_segment_writes_all_files(photo, tmp_path):
    out = tmp_path / "out"
    assert (
        main(
            ["segment", str(photo), "--method", "kmeans", "--k", "3", "--out", str(out), "--quiet"]
        )
        == 0
    )
    d = out / "shapes"
    for name in ["labels.png", "overlay.png", "mean_color.png", "boundaries.png", "summary.json"]:
        assert (d / name).is_file(), name
    with Image.open(d / "labels.png") as im:
        assert np.array(im).dtype == np.uint16
    labels = read_labels(d / "labels.png")
    assert labels.shape == (48, 64) and set(np.unique(labels)) == {0, 1, 2}
    s = json.loads((d / "summary.json").read_text())
    assert s["inertia"] > 0 and s["n_iter"] >= 1
    assert s["seconds"] > 0 and s["compile_seconds"] >= 0 and "seglab_version" in s
    assert sum(s["pixels_per_label"].values()) == 48 * 64
    assert s["parameters"]["n_clusters"] == 3
    assert [p.name for p in out.iterdir()] == ["shapes"]  # no staging folder left


def test_several_k_write_the_sweep_figure(photo, tmp_path):
    out = tmp_path / "out"
    assert main(["segment", str(photo), "--k", "2,3", "--out", str(out), "--quiet"]) == 0
    d = out / "shapes"
    assert (d / "k_sweep.png").is_file() and (d / "k2" / "labels.png").is_file()
    runs = json.loads((d / "summary.json").read_text())["runs"]
    assert [r["n_clusters"] for r in runs] == [2, 3] and runs[1]["inertia"] <= runs[0]["inertia"]


def test_min_region_size_and_several_images(photo, tmp_path):
    second = photo.with_name("other.png")
    Image.fromarray(shapes_image(seed=5)).save(second)
    out = tmp_path / "out"
    args = [
        "segment",
        str(photo),
        str(second),
        "--k",
        "4",
        "--min-region-size",
        "25",
        "--out",
        str(out),
        "--quiet",
    ]
    assert main(args) == 0
    s = json.loads((out / "other" / "summary.json").read_text())
    assert s["n_regions"] >= 1 and (out / "shapes" / "labels.png").exists()


def _bad_inputs(tmp_path, photo):
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    cut = tmp_path / "cut.png"
    cut.write_bytes(photo.read_bytes()[:200])
    floaty = tmp_path / "float.tif"
    Image.fromarray(np.zeros((4, 4), np.float32)).save(floaty)
    tiny = tmp_path / "tiny.png"
    Image.fromarray(np.zeros((2, 2, 3), np.uint8)).save(tiny)
    return {
        "missing": ([str(tmp_path / "nope.jpg")], "not found"),
        "non-image": ([str(text)], "not an image"),
        "truncated": ([str(cut)], "truncated"),
        "mode": ([str(floaty)], "mode"),
        "k-zero": ([str(photo), "--k", "0"], ">= 1"),
        "k-too-big": ([str(tiny), "--k", "5"], "number of pixels"),
        "feature": ([str(photo), "--features", "lab+sparkle"], "unknown feature"),
        "weight": ([str(photo), "--spatial-weight", "-1"], ">= 0"),
        "second-bad": ([str(photo), str(text)], "not an image"),
    }


@pytest.mark.parametrize(
    "case",
    [
        "missing",
        "non-image",
        "truncated",
        "mode",
        "k-zero",
        "k-too-big",
        "feature",
        "weight",
        "second-bad",
    ],
)
def test_bad_input_exit_2_one_line_no_files(case, photo, tmp_path, capsys):
    args, message = _bad_inputs(tmp_path, photo)[case]
    out = tmp_path / "out"
    assert main(["segment", *args, "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("seglab: error:") and message in err[0]
    assert not out.exists() or not any(out.iterdir())


def test_existing_output_is_not_touched_on_error(photo, tmp_path):
    out = tmp_path / "out"
    (out / "keep").mkdir(parents=True)
    code = main(
        ["segment", str(photo), str(tmp_path / "missing.png"), "--out", str(out), "--quiet"]
    )
    assert code == 2
    assert [p.name for p in out.iterdir()] == ["keep"]


@pytest.mark.slow
def test_subprocess_exit_status_and_help(photo, tmp_path):
    exe = [sys.executable, "-m", "seglab"]
    r = subprocess.run([*exe, "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and __version__ in r.stdout
    for cmd in ([], ["segment"], ["demo"], ["models"]):
        r = subprocess.run([*exe, *cmd, "--help"], capture_output=True, text=True)
        assert r.returncode == 0 and "example" in r.stdout
    r = subprocess.run(
        [*exe, "segment", str(tmp_path / "nope.png"), "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
    )
    assert (
        r.returncode == 2
        and len(r.stderr.strip().splitlines()) == 1
        and "Traceback" not in r.stderr
    )


@pytest.mark.slow
def test_quick_demo_writes_the_report(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out), "--quiet"]) == 0
    assert str((out / "index.html").resolve()) in capsys.readouterr().out
    page = (out / "index.html").read_text()
    for picture in ("photos/chelsea/kmeans/overlay.png", "nuclei/nuclei/meanshift/overlay.png"):
        assert picture in page and (out / picture).is_file()
    results = json.loads((out / "nuclei" / "results.json").read_text())["results"]
    assert {r["method"] for r in results} == {"kmeans", "meanshift"}
    assert all(0.5 < r["metrics"]["adjusted_rand_index"] <= 1 for r in results)


def test_meanshift_end_to_end(photo, tmp_path):
    out = tmp_path / "out"
    args = ["segment", str(photo), "--method", "meanshift", "--hs", "7", "--hr", "6.5"]
    assert (
        main([*args, "--kernel", "flat", "--min-region-size", "20", "--out", str(out), "--quiet"])
        == 0
    )
    d = out / "shapes"
    for name in ["labels.png", "overlay.png", "mean_color.png", "boundaries.png", "filtered.png"]:
        assert (d / name).is_file(), name
    s = json.loads((d / "summary.json").read_text())
    assert s["n_regions"] >= 3 and s["n_modes"] >= s["n_regions"] - 5 and s["seconds"] > 0
    labels = read_labels(d / "labels.png")
    assert labels.max() + 1 == s["n_regions"] and np.bincount(labels.ravel()).min() >= 20


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--hs", "0"], "> 0"),
        (["--hr", "-2"], "> 0"),
        (["--hr", "nan"], "> 0"),
        (["--kernel", "box"], "invalid choice"),
        (["--features", "lab+xy"], "xy"),
    ],
)
def test_meanshift_bad_input(extra, message, photo, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(
        ["segment", str(photo), "--method", "meanshift", *extra, "--out", str(out), "--quiet"]
    )
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not out.exists() or not any(out.iterdir())


def test_meanshift_tiny_bandwidth_warns_in_one_line(tmp_path, capsys):
    p = tmp_path / "noise.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (12, 12, 3)).astype(np.uint8)).save(p)
    args = ["segment", str(p), "--method", "meanshift", "--hs", "0.5", "--hr", "0.01"]
    assert main([*args, "--min-region-size", "0", "--out", str(tmp_path / "o"), "--quiet"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("seglab: warning:") and "own mode" in err[0]


def test_library_words_become_the_commands_flags():
    from seglab.cli import _common, build_parser

    flags = _common.option_strings(build_parser())
    message = "pass `overwrite=True`, another `out`, `tile=512`, or raise `max_pixels`; `foo` stays"
    assert _common.in_flags(message, flags) == (
        "pass --overwrite, another --out, --tile 512, or raise --max-pixels; foo stays"
    )
