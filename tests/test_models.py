import re

import pytest
import torch
import torchvision
from torch import nn

from seglab.cli import main
from seglab.models import build, count_parameters, list_models, model_info, valid_output_size

NAMES = [
    "fcn32s",
    "fcn16s",
    "fcn8s",
    "deconvnet",
    "segnet",
    "unet",
    "fc_densenet56",
    "fc_densenet67",
    "fc_densenet103",
]

# thin versions for forward/backward tests (the counts below use the full models)
THIN = {
    "fcn32s": {"width": 0.0625},
    "fcn16s": {"width": 0.0625},
    "fcn8s": {"width": 0.0625},
    "deconvnet": {"width": 0.0625},
    "segnet": {"width": 0.125},
    "unet": {"width": 8, "depth": 3},
    "fc_densenet56": {},
    "fc_densenet67": {},
    "fc_densenet103": {},
}

# millions of parameters reported by the papers (FC-DenseNet56: see test below)
PAPER = {
    "fcn32s": 134.0,
    "fcn16s": 134.0,
    "fcn8s": 134.0,
    "deconvnet": 252.0,
    "segnet": 29.5,
    "unet": 31.0,
    "fc_densenet67": 3.5,
    "fc_densenet103": 9.4,
}


def test_registry_lists_every_model():
    assert sorted([*NAMES, "mask_rcnn", "patch_classifier"]) == list_models()


# the FC-DenseNets take a second each: in the whole suite, not the fast subset
@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if "densenet" in n else n for n in NAMES]
)
def test_output_is_input_size_for_odd_sizes(name):
    model = build(name, num_classes=3, **THIN[name]).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 97, 131))
    assert out.shape == (2, 3, 97, 131)


@pytest.mark.parametrize("backbone", ["resnet18", "resnet34"])
def test_fcn_with_resnet_backbone(backbone):
    for name in ("fcn32s", "fcn16s", "fcn8s"):
        model = build(name, num_classes=4, backbone=backbone).eval()
        with torch.no_grad():
            assert model(torch.randn(1, 3, 45, 70)).shape == (1, 4, 45, 70)


@pytest.mark.parametrize("name", sorted(PAPER))
def test_parameter_count_matches_the_paper(name):
    n = count_parameters(name) / 1e6
    assert n == pytest.approx(PAPER[name], rel=0.02), f"{name}: {n:.2f} M"


def test_fc_densenet56_count():
    # Jégou et al. quote "1.5 M" (rounded); the architecture they describe (4 layers per block,
    # growth 12, 48 first maps) has 1.377 M parameters, as every public reimplementation finds.
    assert count_parameters("fc_densenet56") / 1e6 == pytest.approx(1.377, rel=0.005)


def test_unet_valid_is_the_original():
    assert valid_output_size(572) == 388
    model = build("unet", num_classes=2, padding="valid", width=4).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 572, 572)).shape == (1, 2, 388, 388)
    with pytest.raises(ValueError, match="572"):
        model(torch.randn(1, 3, 100, 100))
    assert count_parameters("unet", padding="valid") == count_parameters("unet")


@pytest.mark.parametrize("upsampling", ["transpose", "bilinear", "nearest"])
def test_unet_upsampling_options(upsampling):
    model = build("unet", num_classes=2, width=4, depth=2, upsampling=upsampling).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 33, 21)).shape == (1, 2, 33, 21)


def _two_shapes(h=32, w=32):
    """One tiny batch: two images with a bright square (class 1) and disc (class 2)."""
    torch.manual_seed(0)
    x = torch.rand(2, 3, h, w) * 0.2
    y = torch.zeros(2, h, w, dtype=torch.long)
    y[0, 4:14, 6:18] = 1
    y[1, 16:28, 10:24] = 2
    x[:, 0] += (y == 1).float()
    x[:, 2] += (y == 2).float()
    return x, y


def _halves(size=64):
    """A coarse tiny batch for the stride-32/16 FCNs: half of each image is one class."""
    torch.manual_seed(0)
    x = torch.rand(2, 3, size, size) * 0.2
    y = torch.zeros(2, size, size, dtype=torch.long)
    y[0, : size // 2] = 1
    y[1, :, : size // 2] = 2
    x[:, 0] += (y == 1).float()
    x[:, 2] += (y == 2).float()
    return x, y


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_overfits_one_tiny_batch(name):
    """Training loss on one batch of two pictures goes (nearly) to zero: the net can fit."""
    torch.manual_seed(0)
    options = dict(THIN[name])
    if name.startswith("fcn"):
        options["width"] = 0.125
    model = build(name, num_classes=3, **options)
    for m in model.modules():  # dropout only slows memorising
        if isinstance(m, (nn.Dropout, nn.Dropout2d)):
            m.p = 0.0
    # the output stride bounds how sharp a net can be (the FCN paper's upper-bound argument):
    # the stride-32 and -16 FCNs get pictures whose classes are coarse enough for them
    x, y = _halves() if name in ("fcn32s", "fcn16s") else _two_shapes()
    lr = 1e-2 if name in ("segnet", "deconvnet") else 1e-3  # batch-normalised VGGs take more
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    first = None
    for _ in range(300):
        opt.zero_grad()
        out = model(x)
        loss = nn.functional.cross_entropy(out, y)
        first = first if first is not None else loss.item()
        loss.backward()
        opt.step()
        if loss.item() < 0.05:
            break
    pixel_acc = (out.argmax(1) == y).float().mean().item()
    msg = f"{name}: loss {first:.3f} -> {loss.item():.3f}, pixel accuracy {pixel_acc:.3f}"
    assert loss.item() < 0.1 * first and pixel_acc > 0.97, msg


@pytest.mark.slow
def test_vgg16_state_dict_maps_onto_fcn(tmp_path):
    vgg = torchvision.models.vgg16(weights=None)
    path = tmp_path / "vgg16.pth"
    torch.save(vgg.state_dict(), path)
    model = build("fcn8s", num_classes=21)
    report = model.load_backbone(path)
    assert report["missing"] == [] and report["unexpected"] == []
    assert report["dropped"] == ["classifier.6.weight", "classifier.6.bias"]
    torch.testing.assert_close(model.features[28].weight, vgg.features[28].weight)
    torch.testing.assert_close(model.fc6.weight, vgg.classifier[0].weight.view(4096, 512, 7, 7))
    torch.testing.assert_close(model.fc7.weight.flatten(1), vgg.classifier[3].weight)
    expected = vgg.features[28].weight.detach().clone()
    del vgg, model
    # the builder takes the same file: the backbone holds its weights
    built = build("fcn32s", num_classes=2, weights_backbone=str(path))
    torch.testing.assert_close(built.features[28].weight, expected)


def test_vgg16_bn_and_resnet_weights_map_onto_their_encoders(tmp_path):
    cfg = torchvision.models.vgg.cfgs["D"]
    features = torchvision.models.vgg.make_layers(cfg, batch_norm=True)
    sd = {f"features.{k}": v for k, v in features.state_dict().items()}
    path = tmp_path / "vgg16_bn.pth"
    torch.save(sd, path)
    seg = build("segnet", num_classes=5, weights_backbone=path)
    torch.testing.assert_close(seg.encoder.features[0].weight, features[0].weight)
    torch.testing.assert_close(seg.encoder.features[41].running_var, features[41].running_var)
    resnet = torchvision.models.resnet18(weights=None)
    rpath = tmp_path / "r18.pth"
    torch.save(resnet.state_dict(), rpath)
    fcn = build("fcn8s", num_classes=3, backbone="resnet18", weights_backbone=rpath)
    torch.testing.assert_close(
        fcn.backbone["layer4"][1].conv2.weight, resnet.layer4[1].conv2.weight
    )


def test_backbone_weights_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        build("segnet", num_classes=2, weights_backbone=tmp_path / "none.pth")
    torch.save({"features.0.weight": torch.zeros(3, 3, 3, 3)}, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match=r"cannot fill|do not fit"):
        build("segnet", num_classes=2, weights_backbone=tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="weights_backbone"):
        build("unet", num_classes=2, weights_backbone="x.pth")


@pytest.mark.parametrize(
    "args, match",
    [
        (("nope",), "unknown model"),
        (("unet",), None),
    ],
)
def test_build_errors(args, match):
    if match:
        with pytest.raises(ValueError, match=match):
            build(*args)
    with pytest.raises(ValueError, match="num_classes"):
        build("unet", num_classes=0)
    with pytest.raises(ValueError, match=r"unknown option.*'colour'; it takes .*width"):
        build("unet", num_classes=2, colour="red")
    with pytest.raises(ValueError, match="expects a"):
        build("unet", num_classes=2, width=4)(torch.zeros(1, 1, 16, 16))


def test_models_command_lists_every_model(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name in NAMES:
        assert name in out
    assert "134.49 M" in out and model_info("fcn8s").output_stride == 8


def test_a_bug_inside_a_builder_propagates_and_a_wrong_option_is_named(monkeypatch):
    from seglab.models import registry

    with pytest.raises(ValueError, match=r"unet: .*'colour'"):
        build("unet", num_classes=2, colour="red")
    import dataclasses

    def broken(num_classes, in_channels):
        return len(None)  # a TypeError inside the builder: a bug, not a user's mistake

    info = dataclasses.replace(registry.model_info("unet"), builder=broken)
    monkeypatch.setitem(registry._REGISTRY, "unet", info)
    with pytest.raises(TypeError, match="NoneType"):
        build("unet", num_classes=2)


@pytest.mark.parametrize(
    "name, option, bad, words",
    [
        ("unet", "depth", 0, "unet: depth must be an integer >= 1; got 0"),
        ("unet", "padding", "full", "one of 'same', 'valid'"),
        ("fcn8s", "width", -0.5, "fcn8s: width must be a number > 0"),
        ("fc_densenet56", "dropout", 1.0, "dropout must be a number >= 0 and < 1"),
        ("mask_rcnn", "mask_resolution", 14, "one of 28, 56"),
        ("mask_rcnn", "trainable_backbone_layers", 6, "None (null) or an integer >= 0 and <= 5"),
        ("patch_classifier", "patch_size", 1, "patch_size must be an integer >= 3"),
        ("segnet", "num_classes", 0, "segnet: num_classes must be an integer >= 1"),
    ],
)
def test_builders_check_their_declared_constraints(name, option, bad, words):
    from seglab.models import build

    with pytest.raises(ValueError, match=re.escape(words)):
        build(name, **{"num_classes": 2, option: bad})


def test_declared_constraints_name_real_options():
    from seglab.models import list_models
    from seglab.models.registry import accepted_options, model_info

    for name in list_models():
        info = model_info(name)
        known = accepted_options(info.builder)
        if known is not None:
            assert set(info.constraints) <= known | {"num_classes", "in_channels"}, name
