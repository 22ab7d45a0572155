import json

import numpy as np
import pytest
import torch
from _helpers import QUICKSTART, REPO
from PIL import Image

from seglab.cli import main
from seglab.data import ClassMap, FolderDataset, synthetic_scene
from seglab.engine import (
    ConfigError,
    TrainingError,
    evaluate,
    load_checkpoint,
    load_config,
    predict,
    train,
)

TINY = [
    "data.n_train=12",
    "data.n_val=4",
    "data.n_test=4",
    "data.size=[32, 32]",
    "model.options={width: 4, depth: 2}",
    "train.batch_size=4",
]


def _cfg(tmp_path, *extra):
    return load_config(QUICKSTART, [*TINY, f"out={tmp_path / 'run'}", *extra])


def test_train_checkpoint_evaluate_predict_end_to_end(tmp_path):
    cfg = _cfg(tmp_path, "train.epochs=2")
    metrics = train(cfg, progress=False)
    run = tmp_path / "run"
    assert (run / "best.pt").is_file() and (run / "last.pt").is_file()
    assert len((run / "metrics.csv").read_text().splitlines()) == 3
    ckpt = load_checkpoint(run / "best.pt")
    assert ckpt["class_map"]["names"][0] == "background" and ckpt["epoch"] in (0, 1)
    m = evaluate(run / "best.pt", "test", tmp_path / "eval")
    saved = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    for key in ("pixel_accuracy", "mean_accuracy", "mean_iou", "fw_iou", "iou"):
        assert key in saved
    assert len(saved["iou"]) == 4 and saved["mean_iou"] == pytest.approx(m["mean_iou"])
    # a trained model beats the same network untrained, on the same test images
    from seglab.data import make_dataset
    from seglab.engine import model_from_checkpoint, run_evaluation

    model, class_map = model_from_checkpoint(ckpt)
    torch.manual_seed(99)
    for layer in model.modules():
        if hasattr(layer, "reset_parameters"):
            layer.reset_parameters()
    test_set = make_dataset(cfg["data"], "test", train=False, seed=cfg["train"]["seed"])
    untrained = run_evaluation(model, test_set, class_map, torch.device("cpu"))
    assert m["pixel_accuracy"] > untrained["pixel_accuracy"] and metrics["mean_iou"] > 0
    assert (tmp_path / "eval" / "confusion.png").is_file() and (
        tmp_path / "eval" / "samples.png"
    ).is_file()
    img, _ = synthetic_scene((40, 56), 7)
    Image.fromarray(img).save(tmp_path / "scene.png")
    (folder,) = predict(run / "best.pt", [tmp_path / "scene.png"], tmp_path / "pred")
    labels = np.array(Image.open(folder / "labels.png"))
    assert labels.shape == (40, 56) and labels.max() < 4


@pytest.mark.slow
def test_resume_after_a_kill_gives_the_same_weights(tmp_path):
    full = _cfg(tmp_path, "train.epochs=3", "data.hflip=true", "data.scale=[0.8, 1.2]")
    full["out"] = str(tmp_path / "full")
    train(full, progress=False)
    cut = _cfg(tmp_path, "train.epochs=3", "data.hflip=true", "data.scale=[0.8, 1.2]")
    cut["out"] = str(tmp_path / "cut")

    def kill(step):
        if step == 5:  # mid-way through the second epoch (3 steps per epoch)
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(cut, progress=False, on_step=kill)
    assert load_checkpoint(tmp_path / "cut" / "last.pt")["epoch"] == 0
    train(cut, resume=True, progress=False)
    a = load_checkpoint(tmp_path / "full" / "last.pt")["model"]
    b = load_checkpoint(tmp_path / "cut" / "last.pt")["model"]
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)


def test_gradient_accumulation_steps_less_often_and_clipping_bounds_every_step(
    tmp_path, monkeypatch
):
    import seglab.engine.trainer as T

    lr, clip = 0.1, 0.000001
    cfg = _cfg(tmp_path, "train.epochs=1", "train.grad_accum=2", f"train.clip_grad={clip:f}",
               "optimizer.name=sgd", f"optimizer.lr={lr}", "optimizer.momentum=0",
               "optimizer.weight_decay=0", "schedule.name=constant", "schedule.warmup_iters=0")  # fmt: skip
    start, names, steps = {}, [], []
    setup = T.setup

    def recording(cfg, resume=False):
        run = setup(cfg, resume)
        names.extend(n for n, _ in run.model.named_parameters())
        start.update({n: p.detach().clone() for n, p in run.model.named_parameters()})
        return run

    monkeypatch.setattr(T, "setup", recording)
    train(cfg, progress=False, on_step=steps.append)
    assert len(steps) == 2  # 12 images, batches of 4: 3 batches, a step every 2 (and the last)
    end = load_checkpoint(tmp_path / "run" / "last.pt")["model"]
    moved = torch.sqrt(sum(((end[n] - start[n]) ** 2).sum() for n in names))
    assert 0 < moved <= len(steps) * lr * clip * 1.001  # each step moves at most lr * clip


def test_two_accumulated_half_batches_equal_one_whole_batch(tmp_path):
    # U-Net without batch norm, plain SGD, cross-entropy (a mean over the same number of pixels
    # in each half), no augmentation: the two runs see the same images in the same order
    common = ["train.epochs=1", "loss.name=ce", "optimizer.name=sgd", "optimizer.lr=0.5",
              "optimizer.momentum=0", "optimizer.weight_decay=0", "schedule.name=constant",
              "schedule.warmup_iters=0", "data.hflip=false", "data.vflip=false",
              "data.scale=[1.0, 1.0]", "data.color_jitter=0"]  # fmt: skip
    runs = {"whole": ("4", "1"), "halves": ("2", "2"), "small": ("2", "1")}
    weights = {}
    for name, (batch, accum) in runs.items():
        cfg = _cfg(
            tmp_path / name, *common, f"train.batch_size={batch}", f"train.grad_accum={accum}"
        )
        torch.manual_seed(0)
        train(cfg, progress=False)
        weights[name] = load_checkpoint(tmp_path / name / "run" / "last.pt")["model"]
    for k in weights["whole"]:
        torch.testing.assert_close(weights["halves"][k], weights["whole"][k], rtol=1e-4, atol=1e-6)
    # steps on half batches, without accumulating, end elsewhere: the check can fail
    assert any(not torch.allclose(weights["small"][k], weights["whole"][k], rtol=1e-3, atol=1e-5)
               for k in weights["whole"])  # fmt: skip


def test_nan_loss_stops_with_a_message(tmp_path, monkeypatch):
    import seglab.engine.trainer as T

    class Broken(torch.nn.Module):
        def forward(self, logits, target):
            return logits.sum() * float("nan")

    monkeypatch.setattr(T, "make_loss", lambda cfg, ds: Broken())
    with pytest.raises(TrainingError, match="loss became nan"):
        train(_cfg(tmp_path, "train.epochs=1"), progress=False)


@pytest.mark.parametrize(
    "override, match",
    [
        ("train.epoch=3", "unknown config key 'train.epoch'"),
        ("data.dataset=voc2099", "data.dataset must be one of"),
        ("train.batch_size=0", "train.batch_size"),
        ("loss=ce", "must be a section"),
        ("nonsense", "key=value"),
    ],
)
def test_config_errors_name_the_key(override, match):
    with pytest.raises(ConfigError, match=match):
        load_config(QUICKSTART, [override])


def _folder(tmp_path, n=3, bad_value=None, size_mismatch=False, drop_mask=False):
    root = tmp_path / "ds"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(n):
        img, mask = synthetic_scene((24, 32), i, 3)
        Image.fromarray(img).save(root / "images" / f"s{i}.png")
        if bad_value is not None and i == 1:
            mask[0, 0] = bad_value
        if size_mismatch and i == 2:
            mask = mask[:-1]
        if not (drop_mask and i == 0):
            Image.fromarray(mask).save(root / "masks" / f"s{i}.png")
    return root


def test_folder_dataset_checks_layout_and_values(tmp_path):
    cm = ClassMap(("bg", "square", "disc"))
    ds = FolderDataset(_folder(tmp_path / "ok"), cm)
    x, y = ds[0]
    assert x.shape == (3, 24, 32) and y.shape == (24, 32)
    with pytest.raises(ValueError, match="has no mask"):
        FolderDataset(_folder(tmp_path / "a", drop_mask=True), cm)
    with pytest.raises(ValueError, match=r"mask .* is 32x23"):
        FolderDataset(_folder(tmp_path / "b", size_mismatch=True), cm)
    bad = FolderDataset(_folder(tmp_path / "c", bad_value=7), cm)
    with pytest.raises(ValueError, match=r"s1\.png: mask value 7 is neither a class"):
        bad[1]
    with pytest.raises(FileNotFoundError, match="dataset folder not found"):
        FolderDataset(tmp_path / "nowhere", cm)


def test_cli_train_evaluate_predict_and_bad_input(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", QUICKSTART, "--out", str(out), "--quiet"]
    sets = [part for s in [*TINY, "train.epochs=1"] for part in ("--set", s)]
    assert main([*args, *sets]) == 0
    assert (
        main(["evaluate", str(out / "best.pt"), "--split", "test", "--out", str(tmp_path / "ev")])
        == 0
    )
    saved = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert saved["mean_iou"] == pytest.approx(
        np.nanmean([v for v in saved["iou"] if v is not None])
    )
    capsys.readouterr()
    cases = [
        (["train", str(tmp_path / "missing.yaml")], "config file not found"),
        (
            [
                "train",
                QUICKSTART,
                "--set",
                "model.name=resnet9000",
                "--out",
                str(tmp_path / "x"),
            ],
            "unknown model",
        ),
        (["evaluate", str(tmp_path / "none.pt")], "checkpoint not found"),
        (["predict", str(out / "best.pt"), str(tmp_path / "nope.png")], "image file not found"),
    ]
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    cases.append((["evaluate", str(tmp_path / "junk.pt")], "not a seglab checkpoint"))
    ckpt = torch.load(out / "best.pt", weights_only=True)
    ckpt["config"]["model"]["options"]["width"] = 8  # the weights no longer fit the model
    torch.save(ckpt, tmp_path / "wrong.pt")
    cases.append((["evaluate", str(tmp_path / "wrong.pt")], "does not fit"))
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], (argv, err)


def test_fine_tuning_to_another_class_count_reinitialises_the_classifier(tmp_path, caplog):
    src = _cfg(tmp_path, "train.epochs=1")  # 4 synthetic classes
    train(src, progress=False)
    root = _folder(tmp_path / "three", n=4)
    for split in ("train", "val", "test"):
        (root / split).mkdir()
        for sub in ("images", "masks"):
            (root / split / sub).symlink_to(root / sub, target_is_directory=True)
    cfg = load_config(
        QUICKSTART,
        [
            *TINY,
            "data.dataset=folder",
            f"data.root={root}",
            "data.classes=[bg, square, disc]",
            f"model.pretrained={tmp_path / 'run' / 'best.pt'}",
            "train.epochs=1",
            f"out={tmp_path / 'ft'}",
        ],
    )
    with caplog.at_level("INFO", logger="seglab"):
        train(cfg, progress=False)
    out = caplog.text
    assert "re-initialised" in out and "head.weight" in out and "down.0.0.weight" not in out
    before = load_checkpoint(tmp_path / "run" / "best.pt")["model"]["down.0.0.weight"]
    after = load_checkpoint(tmp_path / "ft" / "last.pt")["model"]["down.0.0.weight"]
    assert torch.allclose(before, after, atol=0.05)  # started from the pretrained encoder


def _ddp_worker(rank, cfg, port):
    import os

    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        WORLD_SIZE="2",
        RANK=str(rank),
        LOCAL_RANK=str(rank),
    )
    torch.set_num_threads(1)
    train(cfg, progress=False)


@pytest.mark.slow
def test_ddp_with_gloo_matches_one_process(tmp_path):
    import socket

    base = [*TINY, "data.hflip=false", "loss.name=ce", "train.epochs=2", "train.batch_size=4"]
    torch.set_num_threads(1)
    one = load_config(QUICKSTART, [*base, f"out={tmp_path / 'one'}"])
    train(one, progress=False)
    two = load_config(QUICKSTART, [*base, f"out={tmp_path / 'two'}"])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    torch.multiprocessing.spawn(_ddp_worker, args=(two, port), nprocs=2, join=True)
    a = load_checkpoint(tmp_path / "one" / "last.pt")["model"]
    b = load_checkpoint(tmp_path / "two" / "last.pt")["model"]
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5)


def test_every_shipped_config_is_valid():

    from seglab.models import list_models

    configs = sorted((REPO / "configs").glob("*.yaml"))
    assert len(configs) >= 8
    for path in configs:
        cfg = load_config(path)
        assert cfg["model"]["name"] in list_models(), path


def test_tensorboard_scalars_are_logged_when_available(tmp_path, monkeypatch):
    import sys
    import types

    logged = []

    class FakeWriter:
        def __init__(self, logdir):
            self.logdir = logdir

        def add_scalar(self, key, value, step):
            logged.append((key, step))

        def flush(self):
            pass

        def close(self):
            pass

    fake = types.ModuleType("torch.utils.tensorboard")
    fake.SummaryWriter = FakeWriter
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", fake)
    train(_cfg(tmp_path, "train.epochs=2", "train.tensorboard=true"), progress=False)
    assert ("mean_iou", 2) in logged and ("train_loss", 1) in logged


def test_cli_names_a_bad_mask_value_and_a_size_mismatch(tmp_path, capsys):
    for name, kwargs, message in (
        ("badvalue", {"bad_value": 9}, "mask value 9 is neither a class"),
        ("mismatch", {"size_mismatch": True}, "but its mask"),
    ):
        root = _folder(tmp_path / name, n=3, **kwargs)
        for split in ("train", "val", "test"):
            (root / split).mkdir()
            for sub in ("images", "masks"):
                (root / split / sub).symlink_to(root / sub, target_is_directory=True)
        argv = [
            "train",
            str(REPO / "configs" / "my_folder.yaml"),
            "--quiet",
            "--out",
            str(tmp_path / f"run_{name}"),
        ]
        for s in (
            f"data.root={root}",
            "data.classes=[bg, square, disc]",
            "data.crop=16",
            "train.epochs=1",
        ):
            argv += ["--set", s]
        capsys.readouterr()
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err


def test_the_config_schema_checks_every_key():
    from seglab.engine.config import CONSTRAINTS, DEFAULTS, leaves

    assert set(leaves(DEFAULTS)) == set(CONSTRAINTS)  # no key without its constraint
    for override, words in [
        ("train.clip_grad=-1", "train.clip_grad must be a number > 0 or None"),
        ("optimizer.momentum=2", "optimizer.momentum must be a number >= 0 and <= 1"),
        ("train.amp=maybe", "train.amp must be true or false or one of 'auto'"),
        ("data.hflip=1", "data.hflip must be true or false"),
        ("train.num_workers=-2", "train.num_workers must be an integer >= 0"),
    ]:
        with pytest.raises(ConfigError, match=words.replace("(", r"\(").replace(")", r"\)")):
            load_config(QUICKSTART, [override])
