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
