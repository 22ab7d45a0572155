import numpy as np
import pytest
from PIL import Image

from seglab.data.public import ade20k, camvid, cityscapes, voc


def _save(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def _rgb(h=6, w=8):
    return np.random.default_rng(0).integers(0, 255, (h, w, 3)).astype(np.uint8)


def test_voc_layout_palette_masks_and_boundary(tmp_path):
    base = tmp_path / "VOC2012"
    for i in ("a", "b"):
        _save(base / "JPEGImages" / f"{i}.jpg", _rgb())
        mask = np.zeros((6, 8), np.uint8)
        mask[1:3, 1:4] = 15  # person
        mask[3, :] = 255  # boundary
        im = Image.fromarray(mask, mode="L").convert("P")
        (base / "SegmentationClass").mkdir(parents=True, exist_ok=True)
        im.save(base / "SegmentationClass" / f"{i}.png")
    (base / "ImageSets" / "Segmentation").mkdir(parents=True)
    (base / "ImageSets" / "Segmentation" / "train.txt").write_text("a\nb\n")
    ds = voc(tmp_path, "train")
    x, y = ds[0]
    assert ds.class_map.num_classes == 21 and x.shape == (3, 6, 8)
    assert set(y.unique().tolist()) == {0, 15, 255}
    with pytest.raises(FileNotFoundError, match="image list"):
        voc(tmp_path, "val")


def test_camvid_void_is_ignored(tmp_path):
    _save(tmp_path / "train" / "0001.png", _rgb())
    _save(
        tmp_path / "trainannot" / "0001.png",
        np.array([[0, 3, 11, 10]] * 6, np.uint8)[:, :4].repeat(2, 1),
    )
    _, y = camvid(tmp_path, "train")[0]
    assert set(y.unique().tolist()) == {0, 3, 10, 255}


def test_cityscapes_label_ids_become_train_ids(tmp_path):
    _save(tmp_path / "leftImg8bit" / "val" / "ulm" / "ulm_000001_000019_leftImg8bit.png", _rgb())
    ids = np.array([[7, 8, 26, 0, 33, 1, 24, 4]] * 6, np.uint8)
    _save(tmp_path / "gtFine" / "val" / "ulm" / "ulm_000001_000019_gtFine_labelIds.png", ids)
    _, y = cityscapes(tmp_path, "val")[0]
    assert y[0].tolist() == [0, 1, 13, 255, 18, 255, 11, 255]


def test_ade20k_shifts_classes_and_ignores_other(tmp_path):
    base = tmp_path / "ADEChallengeData2016"
    _save(base / "images" / "training" / "ADE_train_1.jpg", _rgb())
    _save(
        base / "annotations" / "training" / "ADE_train_1.png",
        np.array([[0, 1, 150, 2]] * 6, np.uint8).repeat(2, 1),
    )
    ds = ade20k(tmp_path, "train")
    _, y = ds[0]
    assert ds.class_map.num_classes == 150 and set(y.unique().tolist()) == {255, 0, 149, 1}


def test_missing_annotation_is_named(tmp_path):
    _save(tmp_path / "train" / "0001.png", _rgb())
    (tmp_path / "trainannot").mkdir()
    with pytest.raises(FileNotFoundError, match=r"trainannot/0001\.png"):
        camvid(tmp_path, "train")


def test_coco_instances_become_a_semantic_mask(tmp_path):
    import json

    from pycocotools import mask as mask_utils

    from seglab.data.public import coco

    _save(tmp_path / "val2017" / "1.jpg", _rgb(10, 12))
    rle = np.zeros((10, 12), np.uint8, order="F")
    rle[6:9, 1:4] = 1
    encoded = mask_utils.encode(np.asfortranarray(rle))
    encoded["counts"] = encoded["counts"].decode()
    data = {
        "images": [{"id": 1, "file_name": "1.jpg", "height": 10, "width": 12}],
        "categories": [{"id": 18, "name": "dog"}, {"id": 1, "name": "person"}],
        "annotations": [
            {"id": 10, "image_id": 1, "category_id": 18, "iscrowd": 0, "area": 16,
             "segmentation": [[1, 1, 5, 1, 5, 5, 1, 5]], "bbox": [1, 1, 4, 4]},
            {"id": 11, "image_id": 1, "category_id": 1, "iscrowd": 1, "area": 9,
             "segmentation": encoded, "bbox": [1, 6, 3, 3]},
        ],
    }  # fmt: skip
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "instances_val2017.json").write_text(json.dumps(data))
    ds = coco(tmp_path, "val")
    assert ds.class_map.names == ("background", "person", "dog")
    _, y = ds[0]
    assert y[3, 3] == 2 and y[7, 2] == 255 and y[0, 11] == 0
