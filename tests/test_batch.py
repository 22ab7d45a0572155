"""Many images over many processes: inputs, shares, and torchrun."""

import os
import shutil
import subprocess
import sys

import pytest
from _helpers import QUICKSTART, shapes_image
from PIL import Image

from seglab.batch import find_images, process_group, shard
from seglab.cli import main


@pytest.fixture()
def folder(tmp_path):
    d = tmp_path / "imgs"
    (d / "sub").mkdir(parents=True)
    for i in range(5):
        Image.fromarray(shapes_image(24, 24, seed=i)).save(d / f"im{i}.png")
    Image.fromarray(shapes_image(24, 24)).save(d / "sub" / "deep.png")
    (d / "notes.txt").write_text("not an image")
    return d


def test_find_images_takes_files_folders_and_globs(folder):
    assert [p.name for p in find_images([folder])] == [f"im{i}.png" for i in range(5)]
    assert len(find_images([folder], recursive=True)) == 6
    assert [p.name for p in find_images([str(folder / "im[12].png")])] == ["im1.png", "im2.png"]
    with pytest.raises(FileNotFoundError, match="no image file matches"):
        find_images([str(folder / "*.jpg")])
    with pytest.raises(FileNotFoundError, match="not found"):
        find_images([folder / "missing.png"])
    shutil.copy(folder / "im0.png", folder / "sub" / "im0.png")
    with pytest.raises(ValueError, match="share the name 'im0'"):
        find_images([folder, folder / "sub" / "im0.png"])


def test_shards_are_disjoint_and_cover_everything(monkeypatch):
    items = list(range(11))
    shares = [shard(items, r, 3) for r in range(3)]
    assert sorted(x for share in shares for x in share) == items
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    assert process_group() == (1, 2) and shard(items) == items[1::2]
    monkeypatch.setenv("RANK", "2")
    with pytest.raises(ValueError, match="RANK"):
        process_group()


@pytest.mark.slow
def test_torchrun_spreads_a_folder_over_two_processes(folder, tmp_path):
    run = tmp_path / "run"
    tiny = ["data.n_train=4", "data.n_val=1", "data.size=[24, 24]", "train.epochs=1",
            "model.options={width: 4, depth: 2}", "train.batch_size=4"]  # fmt: skip
    args = ["train", QUICKSTART, "--out", str(run), "--quiet"]
    assert main([*args, *[a for s in tiny for a in ("--set", s)]]) == 0
    out = tmp_path / "pred"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "-m", "seglab",
           "predict", str(run / "last.pt"), str(folder), "--out", str(out)]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert sorted(p.name for p in out.iterdir()) == [f"im{i}" for i in range(5)]
    wrote = [line for line in r.stdout.splitlines() if "predictions to" in line]
    assert sorted(int(line.split("wrote ")[1].split()[0]) for line in wrote) == [2, 3]
    r = subprocess.run([*cmd, "--skip-existing"], capture_output=True, text=True, env=env)
    assert r.returncode == 0 and "wrote 0 predictions" in r.stdout
