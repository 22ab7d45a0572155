"""Tiled inference, test-time augmentation and ONNX export."""

import json

import numpy as np
import pytest
import torch
from torch import nn

from seglab.cli import main
from seglab.inference import estimate_memory, export_onnx, parse_tta, predict_tiled
from seglab.models import build


@pytest.fixture
def ort():
    """onnxruntime, or a skip for the tests that need it (the others run without it)."""
    return pytest.importorskip("onnxruntime", reason="pip install 'seglab[onnx]'")


def _image(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _whole(model: nn.Module, image: np.ndarray) -> np.ndarray:
    x = torch.from_numpy(image.transpose(2, 0, 1) / 255.0).float()[None]
    with torch.no_grad():
        return model(x).softmax(1)[0].numpy()


def _small_rf_model(k: int = 4) -> nn.Module:
    """Three 3x3 convolutions: receptive field radius 3."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, k, 3, padding=1),
    ).eval()


@pytest.mark.parametrize("weighting", ["gaussian", "uniform"])
@pytest.mark.parametrize(("h", "w", "tile"), [(301, 437, 64), (97, 131, 40), (64, 64, 64)])
def test_tiled_equals_whole_when_the_receptive_field_fits_the_overlap(weighting, h, w, tile):
    model, image = _small_rf_model(), _image(h, w)
    probs = predict_tiled(
        model, image, tile=tile, overlap=0.25, batch_size=3, weighting=weighting, output="probs"
    )
    assert probs.shape == (4, h, w) and probs.dtype == np.float32
    np.testing.assert_allclose(probs, _whole(model, image), atol=1e-5)
    labels = predict_tiled(model, image, tile=tile, overlap=0.25)
    assert labels.shape == (h, w) and labels.dtype == np.uint8
    np.testing.assert_array_equal(labels, probs.argmax(0))


def test_unet_tiles_match_the_whole_image_when_aligned_to_its_stride():
    # depth 3: stride 8, receptive field radius < 64 = half the overlap of 256-pixel tiles at 0.5
    model = build("unet", num_classes=3, width=8, depth=3).eval()
    image = _image(301, 437, seed=1)
    probs = predict_tiled(model, image, tile=256, overlap=0.5, output="probs")
    np.testing.assert_allclose(probs, _whole(model, image), atol=1e-4)


class _Constant(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.logits = nn.Parameter(torch.tensor([0.3, -1.0, 2.0]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        return self.logits.view(1, 3, 1, 1).expand(b, 3, h, w)


@pytest.mark.parametrize("weighting", ["gaussian", "uniform"])
def test_constant_model_gives_a_constant_result_no_seams(weighting):
    probs = predict_tiled(
        _Constant(), _image(203, 517), tile=96, overlap=0.3, weighting=weighting, output="probs"
    )
    expected = torch.tensor([0.3, -1.0, 2.0]).softmax(0).numpy()
    np.testing.assert_allclose(probs, np.broadcast_to(expected[:, None, None], probs.shape), 1e-6)


def test_image_smaller_than_a_tile_and_odd_sizes():
    model = build("unet", num_classes=2, width=4, depth=2).eval()
    for h, w in [(17, 23), (1, 1), (5, 300)]:
        image = _image(h, w, seed=h)
        probs = predict_tiled(model, image, tile=512, output="probs")
        np.testing.assert_allclose(probs, _whole(model, image), atol=1e-5)


def test_flip_tta_of_a_flip_equivariant_model_equals_the_plain_result():
    conv = nn.Conv2d(3, 4, 5, padding=2)
    with torch.no_grad():  # kernels symmetric under both flips: the model is flip-equivariant
        k = conv.weight
        conv.weight.copy_((k + k.flip(-1) + k.flip(-2) + k.flip(-1, -2)) / 4)
    image = _image(70, 90)
    plain = predict_tiled(conv, image, tile=48, output="probs")
    aug = predict_tiled(conv, image, tile=48, output="probs", tta=("hflip", "vflip"))
    np.testing.assert_allclose(aug, plain, atol=1e-6)
    # a model that is not equivariant does change (the averaging is real)
    lopsided = nn.Conv2d(3, 4, 5, padding=2)
    a = predict_tiled(lopsided, image, tile=48, output="probs")
    b = predict_tiled(lopsided, image, tile=48, output="probs", tta=("hflip",))
    assert np.abs(a - b).max() > 1e-3


def test_multiscale_tta_of_a_pointwise_model_on_a_flat_image():
    model = nn.Conv2d(3, 3, 1)
    flat = np.full((40, 50, 3), 120, np.uint8)
    plain = predict_tiled(model, flat, tile=32, output="probs")
    aug = predict_tiled(model, flat, tile=32, output="probs", tta=("hflip", (0.75, 1.0, 1.25)))
    np.testing.assert_allclose(aug, plain, atol=1e-6)
    assert parse_tta("hflip,0.75,1.25") == (["hflip"], [0.75, 1.0, 1.25])
    assert parse_tta(("vflip", (0.5, 2))) == (["vflip"], [0.5, 1.0, 2.0])


def test_dict_outputs_and_low_resolution_logits():
    class DictModel(nn.Module):  # torchvision's segmentation models return {"out": logits}
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 2, 1)

        def forward(self, x):
            return {"out": self.conv(x), "aux": None}

    class Coarse(nn.Module):  # logits at 1/4 resolution are resized to the tile
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 2, 4, stride=4)

        def forward(self, x):
            return self.conv(x)

    image = _image(50, 70)
    m = DictModel().eval()
    probs = predict_tiled(m, image, tile=32, output="probs")
    np.testing.assert_allclose(probs, _whole(m.conv, image), atol=1e-5)
    assert predict_tiled(Coarse(), image, tile=32).shape == (50, 70)


def test_tensor_path_and_preprocess_inputs(tmp_path):
    import tifffile

    model, image = _small_rf_model(3), _image(120, 90)
    ref = predict_tiled(model, image, tile=48, output="probs")
    chw = torch.from_numpy(image.transpose(2, 0, 1) / 255.0).float()
    np.testing.assert_allclose(predict_tiled(model, chw, tile=48, output="probs"), ref, atol=1e-6)
    tifffile.imwrite(tmp_path / "big.tif", image)  # uncompressed: read tile by tile (memmap)
    np.testing.assert_allclose(
        predict_tiled(model, tmp_path / "big.tif", tile=48, output="probs"), ref, atol=1e-6
    )
    doubled = predict_tiled(
        model,
        image,
        tile=48,
        output="probs",
        preprocess=lambda r: torch.from_numpy(r.transpose(2, 0, 1) / 127.5).float(),
    )
    assert np.abs(doubled - ref).max() > 1e-3  # the callable replaced the [0, 1] scaling
    gray = image[..., 0]  # a gray image for an RGB model is replicated
    np.testing.assert_allclose(
        predict_tiled(model, gray, tile=48, output="probs"),
        predict_tiled(model, np.repeat(gray[..., None], 3, 2), tile=48, output="probs"),
    )


@pytest.mark.parametrize("suffix", [".tif", ".npy"])
def test_output_memory_mapped_to_a_file(tmp_path, suffix):
    model, image = _small_rf_model(), _image(150, 170)
    ref = predict_tiled(model, image, tile=64)
    target = tmp_path / f"labels{suffix}"
    got = predict_tiled(model, image, tile=64, out=target)
    np.testing.assert_array_equal(np.asarray(got), ref)
    if suffix == ".tif":
        import tifffile

        np.testing.assert_array_equal(tifffile.imread(target), ref)
    else:
        np.testing.assert_array_equal(np.load(target), ref)
    assert [p.name for p in tmp_path.iterdir()] == [target.name]  # no temporary file left


def test_memory_estimate_and_budget():
    # 8000 x 8000, 2 classes, labels: output 64 MB + one row of tiles + the batch + the image
    need = estimate_memory(8000, 8000, 2, tile=512, batch_size=4)
    assert need == 8000 * 8000 + 3 * 512 * 8000 * 4 + 4 * 5 * 512 * 512 * 4 + 8000 * 8000 * 3
    with pytest.raises(ValueError, match="max_memory"):
        predict_tiled(_small_rf_model(), _image(64, 64), tile=32, max_memory="10kB")


def test_bad_input_is_explained():
    model, image = _small_rf_model(), _image(40, 40)
    with pytest.raises(ValueError, match="tile"):
        predict_tiled(model, image, tile=0)
    with pytest.raises(ValueError, match="overlap"):
        predict_tiled(model, image, overlap=1.0)
    with pytest.raises(ValueError, match="overlap"):
        predict_tiled(model, image, overlap=-0.1)
    with pytest.raises(ValueError, match="expects 3"):
        predict_tiled(model, np.zeros((40, 40, 4), np.uint8))
    with pytest.raises(ValueError, match="output"):
        predict_tiled(model, image, output="logits")
    with pytest.raises(ValueError, match="augmentation"):
        predict_tiled(model, image, tta=("rotate",))
    with pytest.raises(FileNotFoundError):
        predict_tiled(model, "missing.tif")


def test_onnx_export_parity_on_two_sizes_and_tiled_onnx(tmp_path, ort):
    model = build("unet", num_classes=3, width=8, depth=3).eval()
    report = export_onnx(model, tmp_path / "unet.onnx", sizes=((64, 80), (97, 131)))
    assert len(report["max_abs_diff"]) == 2 and max(report["max_abs_diff"]) < 1e-4
    session = ort.InferenceSession(str(tmp_path / "unet.onnx"))
    dims = session.get_inputs()[0].shape
    assert isinstance(dims[0], str) and isinstance(dims[2], str) and isinstance(dims[3], str)
    image = _image(150, 200)
    via_onnx = predict_tiled(str(tmp_path / "unet.onnx"), image, tile=64, output="probs")
    via_torch = predict_tiled(model, image, tile=64, output="probs")
    np.testing.assert_allclose(via_onnx, via_torch, atol=1e-4)
    # the sliding-window classifier exports as its fully convolutional twin
    patch = build("patch_classifier", num_classes=2, patch_size=15, width=4, convs=[1, 1])
    export_onnx(patch, tmp_path / "patch.onnx", sizes=((32, 40), (45, 33)))


def test_cli_predict_tiled_tta_and_export(tmp_path, capsys, ort):
    from seglab.engine import load_config, train
    from seglab.io import read_labels, write_image

    cfg = load_config(
        None,
        [
            "model.options={width: 4, depth: 2}",
            "data.size=[32, 32]",
            "data.n_train=4",
            "data.n_val=1",
            "train.epochs=1",
            f"out={tmp_path / 'run'}",
        ],
    )
    train(cfg, progress=False)
    ckpt = str(tmp_path / "run" / "last.pt")
    write_image(tmp_path / "big.png", _image(150, 170))
    rc = main(
        [
            "predict",
            ckpt,
            str(tmp_path / "big.png"),
            "--tile",
            "64",
            "--overlap",
            "0.25",
            "--tta",
            "hflip",
            "--out",
            str(tmp_path / "pred"),
            "--quiet",
        ]
    )
    assert rc == 0
    summary = json.loads((tmp_path / "pred" / "big" / "summary.json").read_text())
    assert summary["tile"] == 64 and summary["tta"] == "hflip"
    assert read_labels(tmp_path / "pred" / "big" / "labels.png").shape == (150, 170)

    assert main(["export", ckpt, "--format", "onnx", "--out", str(tmp_path / "m.onnx")]) == 0
    assert "max abs difference" in capsys.readouterr().out
    meta = json.loads((tmp_path / "m.json").read_text())
    assert meta["classes"][0] == "background" and len(meta["max_abs_diff"]) == 2
    rc = main(
        [
            "predict",
            str(tmp_path / "m.onnx"),
            str(tmp_path / "big.png"),
            "--tile",
            "64",
            "--out",
            str(tmp_path / "pred_onnx"),
            "--quiet",
        ]
    )
    assert rc == 0
    a = read_labels(tmp_path / "pred_onnx" / "big" / "labels.png")
    b = predict_tiled(str(tmp_path / "m.onnx"), _image(150, 170), tile=64)
    np.testing.assert_array_equal(a, b)

    # bad input: one line on stderr, exit status 2
    for bad in (["--tile", "0"], ["--overlap", "1"], ["--tta", "spin"]):
        assert main(["predict", ckpt, str(tmp_path / "big.png"), *bad]) == 2
        assert "error" in capsys.readouterr().err
    one = load_config(None, ["model.options={width: 4, depth: 2, in_channels: 1}"])
    from seglab.data import ClassMap
    from seglab.engine import save_checkpoint

    save_checkpoint(
        tmp_path / "gray.pt",
        {
            "model": build("unet", num_classes=2, in_channels=1, width=4, depth=2).state_dict(),
            "config": one,
            "class_map": ClassMap(("a", "b")).to_dict(),
        },
    )
    rc = main(["predict", str(tmp_path / "gray.pt"), str(tmp_path / "big.png"), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and "channel" in err and len(err.strip().splitlines()) == 1


def test_a_torchvision_segmentation_model_runs_tiled():
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.segmentation.lraspp_mobilenet_v3_large(
        weights=None, weights_backbone=None, num_classes=3
    ).eval()
    image = _image(100, 130)
    labels = predict_tiled(model, image, tile=64, overlap=0.25, batch_size=2)
    assert labels.shape == (100, 130) and labels.max() < 3
    probs = predict_tiled(model, image, tile=256, output="probs")  # one tile: the whole image
    x = torch.from_numpy(image.transpose(2, 0, 1) / 255.0).float()[None]
    with torch.no_grad():
        whole = model(x)["out"].softmax(1)[0].numpy()
    np.testing.assert_allclose(probs, whole, atol=1e-5)


def test_tiff_rows_reads_regions_of_uncompressed_tiffs(tmp_path):
    import tifffile

    from seglab.inference import TiffRows, open_image

    gray = np.random.default_rng(0).integers(0, 65535, (37, 53), dtype=np.uint16)
    rgb = np.random.default_rng(1).integers(0, 255, (37, 53, 3), dtype=np.uint8)
    cases = {
        "gray.tif": (gray, {}),
        "big_endian.tif": (gray, {"byteorder": ">"}),
        "strips.tif": (rgb, {"rowsperstrip": 5}),
    }
    for name, (array, kwargs) in cases.items():
        tifffile.imwrite(tmp_path / name, array, **kwargs)
        r = open_image(tmp_path / name)
        assert isinstance(r, TiffRows) and r.shape == array.shape
        np.testing.assert_array_equal(r[3:9, 5:20], array[3:9, 5:20])
        np.testing.assert_array_equal(r[::4, ::3], array[::4, ::3])
        np.testing.assert_array_equal(np.asarray(r), array)
    # compressed or planar files are decoded whole, as (H, W, C)
    tifffile.imwrite(tmp_path / "zip.tif", rgb, compression="zlib")
    np.testing.assert_array_equal(open_image(tmp_path / "zip.tif"), rgb)
    tifffile.imwrite(
        tmp_path / "planar.tif", rgb.transpose(2, 0, 1), planarconfig="separate", photometric="rgb"
    )
    np.testing.assert_array_equal(open_image(tmp_path / "planar.tif"), rgb)
    model = _small_rf_model()
    np.testing.assert_array_equal(
        predict_tiled(model, tmp_path / "gray.tif", tile=16),
        predict_tiled(model, gray, tile=16),
    )
