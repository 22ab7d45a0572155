"""The sliding-window baseline and its fully convolutional twin: same weights, same class map."""

import json

import numpy as np
import pytest
import torch
from torch import nn

from seglab.cli import main
from seglab.data import ClassMap, PatchDataset, SyntheticScenes
from seglab.models import build, count_parameters
from seglab.models.sliding import (
    PatchClassifier,
    segment_patch_fcn,
    segment_sliding,
    to_fully_convolutional,
)


def _random_classifier(seed: int, **kwargs) -> PatchClassifier:
    """Random weights and random batch-norm statistics (so the eval-mode affine is not identity)."""
    torch.manual_seed(seed)
    model = PatchClassifier(**kwargs)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.3, 0.3)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    return model.eval()


@pytest.mark.parametrize(
    ("patch_size", "convs", "size"),
    [(33, (2, 1, 1), (37, 45)), (15, (1, 1), (31, 17)), (21, (1, 2), (23, 40)), (9, (1,), (9, 9))],
)
def test_dense_twin_gives_the_sliding_window_map(patch_size, convs, size):
    # float64 so that a near-tie between two classes cannot flip the argmax by rounding
    model = _random_classifier(
        patch_size, patch_size=patch_size, num_classes=5, width=8, convs=convs
    ).double()
    image = torch.rand(3, *size, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    slow = segment_sliding(model, image, batch_size=97, progress=False)
    twin = to_fully_convolutional(model)
    logits = twin(image[None])
    assert logits.shape == (1, 5, *size)
    assert torch.equal(slow, logits.argmax(1)[0])
    # and the logits themselves are the patch classifier's, pixel by pixel
    r = patch_size // 2
    padded = nn.functional.pad(image[None], (r, r, r, r), mode="reflect")
    for y, x in [(0, 0), (size[0] - 1, size[1] - 1), (size[0] // 2, 3)]:
        patch = padded[:, :, y : y + patch_size, x : x + patch_size]
        torch.testing.assert_close(model(patch)[0], logits[0, :, y, x])


def test_float32_maps_agree_too():
    model = _random_classifier(0, patch_size=17, num_classes=3, width=8, convs=(1, 1))
    image = torch.rand(3, 41, 29, generator=torch.Generator().manual_seed(2))
    assert torch.equal(
        segment_sliding(model, image, progress=False), segment_patch_fcn(model, image)
    )


def test_twin_has_the_same_parameters():
    model = _random_classifier(3, patch_size=33, num_classes=4)
    twin = to_fully_convolutional(model)
    a = [p.detach().flatten() for p in model.parameters()]
    b = [p.detach().flatten() for p in twin.parameters()]
    assert sum(p.numel() for p in a) == sum(p.numel() for p in b)
    assert torch.equal(torch.cat(a), torch.cat(b))  # same values, in the same order
    convs = [m for m in twin.modules() if isinstance(m, nn.Conv2d)]
    assert not any(isinstance(m, nn.Linear) for m in twin.modules())
    # the first former FC layer reads the last 2x2 feature map with the accumulated dilation 8
    assert convs[-2].kernel_size == (2, 2) and convs[-2].dilation == (8, 8)
    assert count_parameters("patch_classifier", 4) == sum(p.numel() for p in a)


def test_stride_gives_the_subsampled_map():
    model = _random_classifier(4, patch_size=11, num_classes=3, width=6, convs=(1,))
    image = torch.rand(3, 26, 19, generator=torch.Generator().manual_seed(3))
    full = segment_sliding(model, image, progress=False)
    for s in (2, 3, 5):
        sub = segment_sliding(model, image, stride=s, progress=False)
        assert sub.shape == (-(-26 // s), -(-19 // s))
        assert torch.equal(sub, full[::s, ::s])


def test_numpy_uint8_image_is_scaled():
    model = _random_classifier(5, patch_size=9, num_classes=2, width=4, convs=(1,))
    rgb = np.random.default_rng(0).integers(0, 256, (20, 23, 3), dtype=np.uint8)
    as_tensor = torch.from_numpy(rgb.transpose(2, 0, 1) / 255.0).float()
    assert torch.equal(
        segment_sliding(model, rgb, progress=False),
        segment_sliding(model, as_tensor, progress=False),
    )


def test_bad_input_is_explained():
    with pytest.raises(ValueError, match="odd"):
        PatchClassifier(patch_size=32)
    with pytest.raises(ValueError, match="too small"):
        PatchClassifier(patch_size=9, convs=(2, 1, 1))
    model = _random_classifier(6, patch_size=15, num_classes=2, width=4, convs=(1,))
    image = torch.rand(3, 20, 20)
    with pytest.raises(ValueError, match="stride"):
        segment_sliding(model, image, stride=0)
    with pytest.raises(ValueError, match="larger than the image"):
        segment_sliding(model, torch.rand(3, 14, 40))
    with pytest.raises(ValueError, match="larger than the image"):
        to_fully_convolutional(model)(torch.rand(1, 3, 40, 12))
    with pytest.raises(ValueError, match=r"\(3, H, W\)"):
        segment_sliding(model, torch.rand(1, 20, 20))
    with pytest.raises(ValueError, match="patches"):
        model(torch.rand(1, 3, 20, 20))  # a whole image into the patch classifier
    with pytest.raises(ValueError, match="PatchClassifier-like"):
        to_fully_convolutional(nn.Conv2d(3, 2, 3))


def test_patch_dataset_centres_and_balance():
    base = SyntheticScenes(3, (40, 48), seed=0)
    ds = PatchDataset(base, 9, per_image=60, balanced=True, seed=0)
    assert len(ds) == 180
    for i in (0, 17, 179):
        patch, label = ds[i]
        assert patch.shape == (3, 9, 9)
        img, mask = base[int(ds.centres[i, 0])]
        y, x = int(ds.centres[i, 1]), int(ds.centres[i, 2])
        assert int(label) == int(mask[y, x])
        torch.testing.assert_close(patch[:, 4, 4], img[:, y, x])  # the centre is the pixel
    # balanced: every class present in an image gets (about) the same share of its centres
    first = ds.labels[:60]
    counts = torch.bincount(first)
    assert counts[counts > 0].max() - counts[counts > 0].min() <= 1


def test_engine_trains_a_patch_classifier_and_cli_segments(tmp_path):
    from seglab.engine import load_config, train

    cfg = load_config(
        None,
        [
            "model.name=patch_classifier",
            "model.options={patch_size: 11, width: 8, convs: [1], fc_width: 16}",
            "data.size=[32, 32]",
            "data.n_train=6",
            "data.n_val=2",
            "data.patches_per_image=128",
            "train.epochs=3",
            "train.batch_size=64",
            "optimizer.lr=0.01",
            f"out={tmp_path / 'run'}",
        ],
    )
    metrics = train(cfg, progress=False)
    # validated as the dense twin on whole scenes; trained on centre pixels of patches: it beats
    # the same network untrained on the same scenes
    from seglab.data import make_dataset
    from seglab.engine import run_evaluation

    ckpt = tmp_path / "run" / "last.pt"
    torch.manual_seed(7)
    model = build("patch_classifier", num_classes=4, patch_size=11, width=8, convs=[1], fc_width=16)
    val = make_dataset(cfg["data"], "val", train=False, seed=cfg["train"]["seed"])
    untrained = run_evaluation(model, val, val.class_map, torch.device("cpu"))
    assert metrics["mean_iou"] > untrained["mean_iou"] + 0.1
    assert sorted(torch.load(ckpt, weights_only=True)["model"]) == sorted(model.state_dict())

    from seglab.io import write_image

    image, _ = SyntheticScenes(1, (30, 34), seed=99).pair(0)
    write_image(tmp_path / "scene.png", image)
    maps = {}
    for method in ("sliding", "patch-fcn"):
        out = tmp_path / method
        rc = main(
            [
                "segment",
                str(tmp_path / "scene.png"),
                "--method",
                method,
                "--checkpoint",
                str(ckpt),
                "--out",
                str(out),
                "--quiet",
            ]
        )
        assert rc == 0
        summary = json.loads((out / "scene" / "summary.json").read_text())
        assert summary["seconds"] >= 0 and summary["map_size"] == [30, 34]
        assert (out / "scene" / "overlay.png").is_file()
        from seglab.io import read_labels

        maps[method] = read_labels(out / "scene" / "labels.png")
    np.testing.assert_array_equal(maps["sliding"], maps["patch-fcn"])
    # an image smaller than the patches: one line, exit status 2
    write_image(tmp_path / "tiny.png", np.zeros((7, 40, 3), np.uint8))
    rc = main(
        [
            "segment",
            str(tmp_path / "tiny.png"),
            "--method",
            "sliding",
            "--checkpoint",
            str(ckpt),
            "--out",
            str(tmp_path / "tiny"),
            "--quiet",
        ]
    )
    assert rc == 2 and not (tmp_path / "tiny").exists()


def test_cli_patch_methods_reject_bad_input(tmp_path, capsys):
    from seglab.io import write_image

    write_image(tmp_path / "a.png", np.zeros((20, 20, 3), np.uint8))
    assert main(["segment", str(tmp_path / "a.png"), "--method", "sliding"]) == 2
    assert "--checkpoint" in capsys.readouterr().err
    rc = main(
        [
            "segment",
            str(tmp_path / "a.png"),
            "--method",
            "sliding",
            "--checkpoint",
            "nope.pt",
            "--out",
            str(tmp_path / "o"),
        ]
    )
    assert rc == 2 and "not found" in capsys.readouterr().err
    rc = main(["segment", str(tmp_path / "a.png"), "--method", "sliding", "--stride", "0"])
    assert rc == 2 and "--stride" in capsys.readouterr().err
    # a checkpoint of another model
    from seglab.engine import load_config, save_checkpoint

    unet = build("unet", num_classes=2, width=4, depth=2)
    cfg = load_config(None, ["model.options={width: 4, depth: 2}"])
    save_checkpoint(
        tmp_path / "unet.pt",
        {
            "model": unet.state_dict(),
            "config": cfg,
            "class_map": ClassMap(("a", "b")).to_dict(),
        },
    )
    rc = main(
        [
            "segment",
            str(tmp_path / "a.png"),
            "--method",
            "patch-fcn",
            "--checkpoint",
            str(tmp_path / "unet.pt"),
            "--out",
            str(tmp_path / "o"),
        ]
    )
    assert rc == 2 and "not a patch_classifier" in capsys.readouterr().err
