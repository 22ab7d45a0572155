"""Mask R-CNN: the model, instance datasets, COCO AP, training by the engine, inference, CLI."""

import json

import numpy as np
import pytest
import torch
from _helpers import needs
from torch import nn

from seglab.cli import main
from seglab.data import CocoInstances, InstanceFolder, NucleiInstances, SyntheticInstances
from seglab.models import build, count_parameters

needs_coco = needs("pycocotools", "pip install 'seglab[coco]'")
pytestmark = pytest.mark.slow  # trains a small Mask R-CNN (a minute and a half)

FAST = {  # fewer proposals and sampled regions: several times faster on a CPU
    "backbone": "resnet18",
    "min_size": 128,
    "max_size": 128,
    "anchor_sizes": [8, 16, 32, 64, 128],
    "rpn_pre_nms_top_n_train": 300,
    "rpn_post_nms_top_n_train": 150,
    "rpn_pre_nms_top_n_test": 200,
    "rpn_post_nms_top_n_test": 100,
    "box_batch_size_per_image": 64,
}


def test_parameters_match_torchvision_and_interface():
    import torchvision

    ref = torchvision.models.detection.maskrcnn_resnet50_fpn(weights=None, weights_backbone=None)
    assert count_parameters("mask_rcnn", 91, backbone="resnet50") == sum(
        p.numel() for p in ref.parameters()
    )
    model = build("mask_rcnn", num_classes=3, backbone="resnet34", min_size=96, max_size=96)
    model.eval()
    with torch.no_grad():
        out = model([torch.rand(3, 80, 100), torch.rand(3, 64, 64)])
    assert len(out) == 2 and set(out[0]) == {"boxes", "labels", "scores", "masks"}
    assert out[0]["masks"].shape[1:] == (1, 80, 100)
    fine = build("mask_rcnn", num_classes=2, backbone="resnet18", mask_resolution=56)
    assert fine.roi_heads.mask_roi_pool.output_size == (28, 28)
    with pytest.raises(ValueError, match="background"):
        build("mask_rcnn", num_classes=1)
    with pytest.raises(ValueError, match="backbone"):
        build("mask_rcnn", num_classes=2, backbone="vgg16")


def test_the_detectors_score_floor_has_its_own_name():
    model = build("mask_rcnn", num_classes=2, backbone="resnet18", box_score_threshold=0.2)
    assert model.roi_heads.score_thresh == 0.2
    assert build("mask_rcnn", num_classes=2, backbone="resnet18").roi_heads.score_thresh == 0.05
    with pytest.warns(FutureWarning, match="box_score_threshold"):
        old = build("mask_rcnn", num_classes=2, backbone="resnet18", score_threshold=0.3)
    assert old.roi_heads.score_thresh == 0.3


def test_weights_from_a_file_reinitialise_the_class_layers(tmp_path):
    donor = build("mask_rcnn", num_classes=5, backbone="resnet18")
    torch.save(donor.state_dict(), tmp_path / "donor.pth")
    with pytest.warns(UserWarning, match="re-initialised"):
        model = build(
            "mask_rcnn", num_classes=3, backbone="resnet18", weights=tmp_path / "donor.pth"
        )
    assert model.reinitialized_ and all(
        k.startswith(("roi_heads.box_predictor", "roi_heads.mask_predictor.mask_fcn_logits"))
        for k in model.reinitialized_
    )
    torch.testing.assert_close(model.backbone.body.conv1.weight, donor.backbone.body.conv1.weight)
    with pytest.raises(ValueError, match=r"torch hub cache|torchvision weights"):
        build("mask_rcnn", num_classes=2, backbone="resnet18", weights="NoSuch_Weights.X")


@needs_coco
def test_coco_ap_equals_pycocotools_on_the_same_detections(tmp_path):
    from pycocotools import mask as mask_utils
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    from seglab.metrics import coco_metrics

    rng = np.random.default_rng(0)
    targets, preds, gt_json, dt_json = [], [], [], []
    for img in range(3):
        ds = SyntheticInstances(1, (64, 80), seed=10 + img)
        _, t = ds[0]
        m = t["masks"].numpy().astype(bool)
        noisy = m.copy()
        noisy[:, rng.integers(0, 64, 30), rng.integers(0, 80, 30)] ^= True  # imperfect masks
        scores = rng.uniform(0.3, 1.0, len(m))
        labels = t["labels"].numpy().copy()
        labels[0] = 3 - labels[0]  # one wrong class
        preds.append(
            {
                "masks": torch.from_numpy(noisy[:, None].astype(np.float32)),
                "labels": torch.from_numpy(labels),
                "scores": torch.from_numpy(scores.astype(np.float32)),
                "boxes": t["boxes"] + torch.from_numpy(rng.normal(0, 1.5, (len(m), 4))).float(),
            }
        )
        targets.append(t)
        for k in range(len(m)):
            r = mask_utils.encode(np.asfortranarray(m[k].astype(np.uint8)))
            r["counts"] = r["counts"].decode()
            gt_json.append(
                {
                    "id": len(gt_json) + 1,
                    "image_id": img,
                    "category_id": int(t["labels"][k]),
                    "segmentation": r,
                    "area": float(m[k].sum()),
                    "bbox": list(mask_utils.toBbox(r)),
                    "iscrowd": 0,
                }
            )
            d = mask_utils.encode(np.asfortranarray(noisy[k].astype(np.uint8)))
            d["counts"] = d["counts"].decode()
            x0, y0, x1, y1 = preds[-1]["boxes"][k].tolist()
            dt_json.append(
                {
                    "image_id": img,
                    "category_id": int(labels[k]),
                    "score": float(np.float32(scores[k])),
                    "segmentation": d,
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                }
            )
    (tmp_path / "gt.json").write_text(
        json.dumps(
            {
                "images": [{"id": i, "height": 64, "width": 80} for i in range(3)],
                "annotations": gt_json,
                "categories": [{"id": 1}, {"id": 2}],
            }
        )
    )
    gt = COCO(str(tmp_path / "gt.json"))
    dt = gt.loadRes(dt_json)
    ours = coco_metrics(targets, preds)
    for kind, iou_type in (("box", "bbox"), ("mask", "segm")):
        ev = COCOeval(gt, dt, iou_type)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
        assert ours[f"{kind}_ap"] == pytest.approx(ev.stats[0], abs=1e-6)
        assert ours[f"{kind}_ap50"] == pytest.approx(ev.stats[1], abs=1e-6)
        assert ours[f"{kind}_ap75"] == pytest.approx(ev.stats[2], abs=1e-6)
    assert 0 < ours["mask_ap"] < 1


def test_instance_f1_counts():
    from seglab.metrics import instance_f1

    gt = np.zeros((3, 10, 10), bool)
    gt[0, :3, :3] = gt[1, 5:, 5:] = gt[2, 0, 9] = True
    pred = np.zeros((3, 10, 10), bool)
    pred[0, :3, :3] = True  # exact
    pred[1, 5:, 6:] = True  # IoU 0.8
    pred[2, 8:, :2] = True  # nothing there
    assert instance_f1(gt, pred) == {
        "tp": 2,
        "fp": 1,
        "fn": 1,
        "precision": 2 / 3,
        "recall": 2 / 3,
        "f1": 2 / 3,
    }
    assert instance_f1(gt[:0], pred[:0])["f1"] == 1.0


def _coco_json(ds, polygons: bool) -> dict:
    from pycocotools import mask as mask_utils
    from skimage import measure

    images, anns = [], []
    for i in range(len(ds)):
        _, t = ds[i]
        h, w = t["masks"].shape[-2:]
        images.append({"id": 100 + i, "file_name": f"im{i}.png", "height": h, "width": w})
        for m, label in zip(t["masks"].numpy(), t["labels"].tolist(), strict=True):
            if polygons:
                contour = measure.find_contours(np.pad(m, 1), 0.5)[0] - 1
                segm = [np.flip(contour, 1).ravel().round(2).tolist()]
            else:
                segm = mask_utils.encode(np.asfortranarray(m))
                segm["counts"] = segm["counts"].decode()
            ys, xs = np.nonzero(m)
            anns.append(
                {
                    "id": len(anns) + 7,
                    "image_id": 100 + i,
                    "category_id": label,
                    "segmentation": segm,
                    "bbox": [
                        int(xs.min()),
                        int(ys.min()),
                        int(np.ptp(xs)) + 1,
                        int(np.ptp(ys)) + 1,
                    ],
                    "area": int(m.sum()),
                    "iscrowd": 0,
                }
            )
    return {
        "images": images,
        "annotations": anns,
        "categories": [{"id": 1, "name": "square"}, {"id": 2, "name": "disc"}],
    }


@needs_coco
@pytest.mark.parametrize("polygons", [False, True])
def test_coco_json_round_trip(tmp_path, polygons):
    from seglab.io import write_image

    ds = SyntheticInstances(3, (60, 70), seed=5)
    for i in range(3):
        write_image(tmp_path / f"im{i}.png", ds.instances(i)[0])
    data = _coco_json(ds, polygons)
    (tmp_path / "ann.json").write_text(json.dumps(data))
    coco = CocoInstances(tmp_path, tmp_path / "ann.json")
    json_boxes = {}
    for ann in data["annotations"]:
        x, y, w, h = ann["bbox"]
        json_boxes.setdefault(ann["image_id"], []).append([x, y, x + w, y + h])
    assert len(coco) == 3 and coco.class_map.names == ("background", "square", "disc")
    for i in range(3):
        image, target = coco[i]
        _, truth = ds[i]
        assert image.shape == (3, 60, 70) and target["image_id"] == 100 + i
        assert target["masks"].dtype == torch.uint8
        assert torch.equal(target["labels"], truth["labels"])  # the JSON's order and ids
        assert target["boxes"].tolist() == json_boxes[100 + i]  # the JSON's boxes, as xyxy
        if polygons:  # polygons through pixel corners: the same shapes, up to the outline
            inter = (target["masks"] & truth["masks"]).sum((1, 2)).float()
            union = (target["masks"] | truth["masks"]).sum((1, 2)).float()
            assert (inter / union > 0.8).all()
        else:
            assert torch.equal(target["masks"], truth["masks"])
            torch.testing.assert_close(target["boxes"], truth["boxes"])


def test_instance_png_folder_round_trip(tmp_path):
    from seglab.io import write_image, write_labels

    ds = SyntheticInstances(2, (50, 60), seed=3)
    for sub in ("images", "instances", "classes"):
        (tmp_path / sub).mkdir()
    for i in range(2):
        image, masks, labels = ds.instances(i)
        ids = np.zeros((50, 60), np.uint16)
        cls = np.zeros((50, 60), np.uint8)
        for k, (m, c) in enumerate(zip(masks, labels, strict=True)):
            ids[m], cls[m] = 10 * (k + 1), c  # any non-zero values, not 1..N
        write_image(tmp_path / "images" / f"a{i}.png", image)
        write_labels(tmp_path / "instances" / f"a{i}.png", ids)
        write_labels(tmp_path / "classes" / f"a{i}.png", cls)
    folder = InstanceFolder(tmp_path, class_names=("square", "disc"))
    for i in range(2):
        _, got = folder[i]
        _, truth = ds[i]
        assert torch.equal(got["masks"], truth["masks"])
        assert torch.equal(got["labels"], truth["labels"])
    (tmp_path / "classes" / "a0.png").unlink()  # without class masks: one class
    assert set(InstanceFolder(tmp_path)[0][1]["labels"].tolist()) == {1}


def test_nuclei_instances_split():
    counts = {s: len(NucleiInstances(s)[0][1]["labels"]) for s in ("train", "val", "test")}
    assert all(c > 10 for c in counts.values())
    assert 125 <= sum(counts.values()) <= 125 + 20  # nuclei cut by a split line count twice
    tiles = NucleiInstances("train", tile=128, stride=64)
    image, target = tiles[0]
    assert image.shape == (3, 128, 128) and target["masks"].shape[1:] == (128, 128)


@needs_coco
def test_bad_annotations_are_reported_by_id(tmp_path):
    from seglab.io import write_image

    ds = SyntheticInstances(1, (40, 40), seed=1)
    write_image(tmp_path / "im0.png", ds.instances(0)[0])
    data = _coco_json(ds, polygons=True)
    first = data["annotations"][0]
    data["annotations"] += [
        {**first, "id": 901, "bbox": [3, 3, 0, 5]},
        {**first, "id": 902, "segmentation": [[0, 0, 90, 0, 90, 90]]},
        {**first, "id": 903, "category_id": 42},
    ]
    (tmp_path / "bad.json").write_text(json.dumps(data))
    with pytest.raises(
        ValueError, match=r"annotation 901.*zero area.*annotation 902.*outside.*903"
    ):
        CocoInstances(tmp_path, tmp_path / "bad.json")
    with pytest.warns(UserWarning, match="skipped 3"):
        coco = CocoInstances(tmp_path, tmp_path / "bad.json", bad="skip")
    assert len(coco[0][1]["labels"]) == len(data["annotations"]) - 3
    # the same through the command line: one line, exit status 2
    (tmp_path / "cfg.yaml").write_text(
        "data: {{dataset: coco_instances, root: {}, annotations: {{train: {}, val: {}}}}}\n"
        "model: {{name: mask_rcnn, options: {{backbone: resnet18}}}}\n".format(
            tmp_path, tmp_path / "bad.json", tmp_path / "bad.json"
        )
    )
    assert main(["train", str(tmp_path / "cfg.yaml"), "--out", str(tmp_path / "r"), "--quiet"]) == 2


class _BrightBlobs(nn.Module):
    """A stand-in detector: every connected bright region of the input is an instance (score
    0.9). With it, tiling and merging are tested without training a network."""

    def __init__(self) -> None:
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, images):
        from scipy import ndimage

        outs = []
        for x in images:
            labels, n = ndimage.label(x[0].numpy() > 0.5)
            masks = (
                np.stack([labels == i + 1 for i in range(n)]) if n else np.zeros((0, *labels.shape))
            )
            boxes = []
            for m in masks:
                ys, xs = np.nonzero(m)
                boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
            outs.append(
                {
                    "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(n, 4),
                    "labels": torch.ones(n, dtype=torch.int64),
                    "scores": torch.full((n,), 0.9),
                    "masks": torch.from_numpy(masks[:, None].astype(np.float32)),
                }
            )
        return outs


@needs_coco
def test_tiled_instances_are_merged_across_seams():
    from seglab.instances import predict_instances

    image = np.zeros((200, 300), np.uint8)
    image[90:100, 20:280] = 255  # a bar longer than any tile: cut by every seam
    image[20:30, 120:135] = 255  # a blob inside the overlap of two tiles
    image[150:170, 10:30] = 255  # a blob inside one tile only
    whole = predict_instances(_BrightBlobs(), image)
    tiled = predict_instances(_BrightBlobs(), image, tile=96, overlap=0.5)
    assert len(whole) == 3 and len(tiled) == 3  # no duplicates, no halves
    areas = sorted(i.area for i in tiled)
    assert areas == sorted(i.area for i in whole) == [150, 400, 2600]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A small Mask R-CNN trained by the engine on three synthetic images until it fits them."""
    from seglab.engine import load_config, train

    out = tmp_path_factory.mktemp("mask_rcnn")
    options = json.dumps(FAST | {"min_size": 96, "max_size": 96})  # 96 px: half the time of 128
    cfg = load_config(
        None,
        [
            "data.dataset=synthetic_instances",
            "data.size=[96, 96]",
            "data.n_train=3",
            "data.n_val=1",
            "data.hflip=false",
            "model.name=mask_rcnn",
            f"model.options={options}",
            "optimizer.lr=0.001",
            "schedule.name=constant",
            "train.epochs=60",
            "train.batch_size=3",
            "train.eval_every=60",
            "train.save_every=60",
            f"out={out}",
        ],
    )
    train(cfg, progress=False)
    return out


@needs_coco
def test_overfits_three_synthetic_images(trained):
    from seglab.engine import evaluate

    metrics = evaluate(trained / "last.pt", split="train", out=trained / "eval")
    assert metrics["mask_ap50"] >= 0.9, metrics
    assert metrics["f1_50"] >= 0.8  # at score 0.5: a stray low-scored detection may remain
    assert (trained / "eval" / "instances_0.png").is_file()
    rows = [json.loads(line) for line in (trained / "metrics.jsonl").read_text().splitlines()]
    assert {
        "loss_objectness",
        "loss_rpn_box_reg",
        "loss_classifier",
        "loss_box_reg",
        "loss_mask",
    } <= set(rows[0])
    assert rows[-1]["loss_mask"] < rows[0]["loss_mask"]


@needs_coco
def test_cli_predicts_instances(trained, tmp_path, capsys):
    from seglab.io import read_labels, write_image

    image, masks, _ = SyntheticInstances(3, (96, 96), seed=0).instances(1)
    write_image(tmp_path / "scene.png", image)
    rc = main(
        [
            "predict",
            "--model",
            "mask_rcnn",
            str(trained / "last.pt"),
            str(tmp_path / "scene.png"),
            "--out",
            str(tmp_path / "pred"),
            "--semantic",
            "--quiet",
        ]
    )
    assert rc == 0
    folder = tmp_path / "pred" / "scene"
    ids = read_labels(folder / "instances.png")
    results = json.loads((folder / "instances.json").read_text())
    assert 1 <= ids.max() <= len(results)  # an instance hidden under better ones has no pixel
    from seglab.metrics import instance_f1

    found = np.stack([ids == v for v in np.unique(ids[ids > 0])])
    assert instance_f1(masks, found)["recall"] == 1.0  # every object of the scene is there
    assert {"segmentation", "score", "bbox", "category_id"} <= set(results[0])
    assert read_labels(folder / "semantic.png").max() <= 2
    assert (folder / "overlay.png").is_file()
    # ONNX: the inference model exports with dynamic sizes, checked by onnxruntime on two sizes
    pytest.importorskip("onnxruntime")
    rc = main(["export", str(trained / "last.pt"), "--out", str(tmp_path / "mrcnn.onnx")])
    assert rc == 0 and "max abs difference" in capsys.readouterr().out
    meta = json.loads((tmp_path / "mrcnn.json").read_text())
    assert max(meta["max_abs_diff"]) < 0.05 and "masks" in meta["output"]
    import onnxruntime as ort

    session = ort.InferenceSession(str(tmp_path / "mrcnn.onnx"))
    x = torch.from_numpy(image.transpose(2, 0, 1) / 255.0).float()
    _, _, scores, onnx_masks = session.run(None, {"image": x.numpy()})
    assert (scores >= 0.5).sum() >= len(masks) and onnx_masks.shape[-2:] == (96, 96)
    rc = main(["predict", str(tmp_path / "mrcnn.onnx"), str(tmp_path / "scene.png")])
    assert rc == 2 and "Mask R-CNN" in capsys.readouterr().err
    # a checkpoint of another model
    rc = main(
        [
            "predict",
            "--model",
            "unet",
            str(trained / "last.pt"),
            str(tmp_path / "scene.png"),
            "--out",
            str(tmp_path / "p2"),
        ]
    )
    assert rc == 2 and "holds a mask_rcnn" in capsys.readouterr().err


@needs_coco
def test_images_without_instances_train_as_background_and_fixed_scale():
    model = build("mask_rcnn", num_classes=2, image_scale=2.0, **{**FAST, "min_size": 64})
    empty = {
        "boxes": torch.zeros(0, 4),
        "labels": torch.zeros(0, dtype=torch.int64),
        "masks": torch.zeros(0, 48, 40, dtype=torch.uint8),
    }
    losses = model.train()([torch.rand(3, 48, 40)], [empty])
    assert all(torch.isfinite(v) for v in losses.values())
    assert losses["loss_mask"] == 0 and losses["loss_box_reg"] == 0  # nothing to fit but "no"
    with torch.no_grad():
        out = model.eval()([torch.rand(3, 48, 40)])[0]
    assert out["masks"].shape[-2:] == (48, 40)  # mapped back from the 2x magnified image
