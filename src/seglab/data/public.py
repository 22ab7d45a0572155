"""Readers for the public benchmarks, each with its own class map. Nothing is downloaded: point
``root`` at the folder you extracted; the layout is checked up front and the first missing or
mismatched file is named.

Layouts::

    =============  =====================================================================  =========
    dataset        layout under ``root``                                                  classes
    =============  =====================================================================  =========
    PASCAL VOC     VOC2012/JPEGImages/*.jpg, VOC2012/SegmentationClass/*.png (palette PNG,  21 + 255
                   value = class, 255 = boundary), VOC2012/ImageSets/Segmentation/
                   {train,val}.txt; ``augmented=True`` reads SegmentationClassAug/ and
                   ImageSets/SegmentationAug/train_aug.txt (the SBD-augmented 10,582 list)
    CamVid         {train,val,test}/*.png and {train,val,test}annot/*.png (SegNet's           11 + void
                   version; void = 11 becomes the ignore index)
    Cityscapes     leftImg8bit/{split}/{city}/*_leftImg8bit.png and                          19
                   gtFine/{split}/{city}/*_gtFine_labelIds.png (label ids mapped to the 19
                   train ids, the rest ignored)
    ADE20K         ADEChallengeData2016/images/{training,validation}/*.jpg and              150
                   annotations/... *.png (0 = "other" becomes the ignore index, 1..150 ->
                   0..149)
    COCO           {split}2017/*.jpg and annotations/instances_{split}2017.json, painted     file's
                   into semantic masks with pycocotools (crowd regions ignored)             + bg
    =============  =====================================================================  =========
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..io import read_image, read_labels
from .datasets import ClassMap, _PairDataset, train_transform
from .registry import register_dataset, split_name

VOC_CLASSES = ClassMap(
    (
        "background",
        "aeroplane",
        "bicycle",
        "bird",
        "boat",
        "bottle",
        "bus",
        "car",
        "cat",
        "chair",
        "cow",
        "diningtable",
        "dog",
        "horse",
        "motorbike",
        "person",
        "pottedplant",
        "sheep",
        "sofa",
        "train",
        "tvmonitor",
    )
)
CAMVID_CLASSES = ClassMap(
    (
        "sky",
        "building",
        "pole",
        "road",
        "pavement",
        "tree",
        "signsymbol",
        "fence",
        "car",
        "pedestrian",
        "bicyclist",
    )
)
CITYSCAPES_CLASSES = ClassMap(
    (
        "road",
        "sidewalk",
        "building",
        "wall",
        "fence",
        "pole",
        "traffic light",
        "traffic sign",
        "vegetation",
        "terrain",
        "sky",
        "person",
        "rider",
        "car",
        "truck",
        "bus",
        "train",
        "motorcycle",
        "bicycle",
    )
)
#: Cityscapes label id -> train id (the 19 evaluated classes); every other id is ignored.
CITYSCAPES_TRAIN_IDS = {
    7: 0,
    8: 1,
    11: 2,
    12: 3,
    13: 4,
    17: 5,
    19: 6,
    20: 7,
    21: 8,
    22: 9,
    23: 10,
    24: 11,
    25: 12,
    26: 13,
    27: 14,
    28: 15,
    31: 16,
    32: 17,
    33: 18,
}
ADE20K_CLASSES = ClassMap(tuple(f"ade{i:03d}" for i in range(1, 151)))


def _lookup(mapping: dict[int, int], ignore: int = 255) -> np.ndarray:
    lut = np.full(256, ignore, dtype=np.int64)
    for k, v in mapping.items():
        lut[k] = v
    return lut


class _ListDataset(_PairDataset):
    """(image path, mask path) pairs, a mask lookup table, a class map."""

    def __init__(
        self,
        pairs: list[tuple[Path, Path]],
        class_map: ClassMap,
        lut: np.ndarray | None = None,
        transform: Callable | None = None,
    ) -> None:
        super().__init__(transform)
        if not pairs:
            raise ValueError("the dataset split is empty")
        for ip, mp in pairs:
            for p in (ip, mp):
                if not p.is_file():
                    raise FileNotFoundError(f"dataset file not found: {p}")
        self.items, self.class_map, self.lut = pairs, class_map, lut

    def __len__(self) -> int:
        return len(self.items)

    def pair(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        ip, mp = self.items[index]
        mask = read_labels(mp)
        if self.lut is not None:
            mask = self.lut[np.clip(mask, 0, 255)]
        return read_image(ip), self.class_map.check_mask(mask, str(mp))


def _need_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise FileNotFoundError(f"{what} folder not found: {path}")
    return path


def voc(
    root: str | Path,
    split: str = "train",
    augmented: bool = False,
    transform: Callable | None = None,
) -> _ListDataset:
    """PASCAL VOC 2012 segmentation (``split`` train or val; ``augmented`` train uses SBD's list)."""
    base = Path(root) / "VOC2012" if (Path(root) / "VOC2012").is_dir() else Path(root)
    _need_dir(base / "JPEGImages", "VOC JPEGImages")
    masks = _need_dir(
        base / ("SegmentationClassAug" if augmented else "SegmentationClass"), "VOC masks"
    )
    lists = base / "ImageSets" / ("SegmentationAug" if augmented else "Segmentation")
    listing = lists / ("train_aug.txt" if augmented and split == "train" else f"{split}.txt")
    if not listing.is_file():
        raise FileNotFoundError(f"VOC image list not found: {listing}")
    ids = [line.split()[0] for line in listing.read_text().splitlines() if line.strip()]
    pairs = [(base / "JPEGImages" / f"{i}.jpg", masks / f"{i}.png") for i in ids]
    return _ListDataset(pairs, VOC_CLASSES, None, transform)


def camvid(
    root: str | Path, split: str = "train", transform: Callable | None = None
) -> _ListDataset:
    """CamVid as SegNet ships it: 11 classes, void (11) ignored."""
    root = Path(root)
    img_dir, ann_dir = (
        _need_dir(root / split, "CamVid images"),
        _need_dir(root / f"{split}annot", "CamVid labels"),
    )
    pairs = [(p, ann_dir / p.name) for p in sorted(img_dir.glob("*.png"))]
    return _ListDataset(pairs, CAMVID_CLASSES, _lookup({i: i for i in range(11)}), transform)


def cityscapes(
    root: str | Path, split: str = "train", transform: Callable | None = None
) -> _ListDataset:
    """Cityscapes fine annotations, label ids mapped to the 19 train ids."""
    root = Path(root)
    img_dir = _need_dir(root / "leftImg8bit" / split, "Cityscapes images")
    gt_dir = _need_dir(root / "gtFine" / split, "Cityscapes annotations")
    pairs = []
    for p in sorted(img_dir.glob("*/*_leftImg8bit.png")):
        stem = p.name.replace("_leftImg8bit.png", "")
        pairs.append((p, gt_dir / p.parent.name / f"{stem}_gtFine_labelIds.png"))
    return _ListDataset(pairs, CITYSCAPES_CLASSES, _lookup(CITYSCAPES_TRAIN_IDS), transform)


def ade20k(
    root: str | Path, split: str = "train", transform: Callable | None = None
) -> _ListDataset:
    """ADE20K scene parsing (150 classes; "other" ignored)."""
    base = (
        Path(root) / "ADEChallengeData2016"
        if (Path(root) / "ADEChallengeData2016").is_dir()
        else Path(root)
    )
    sub = {"train": "training", "val": "validation"}.get(split, split)
    img_dir = _need_dir(base / "images" / sub, "ADE20K images")
    ann_dir = _need_dir(base / "annotations" / sub, "ADE20K annotations")
    pairs = [(p, ann_dir / f"{p.stem}.png") for p in sorted(img_dir.glob("*.jpg"))]
    return _ListDataset(
        pairs, ADE20K_CLASSES, _lookup({i: i - 1 for i in range(1, 151)}), transform
    )


class _CocoSemantic(_PairDataset):
    """COCO instance annotations painted into semantic masks (pycocotools)."""

    def __init__(
        self, images_dir: Path, annotation_file: Path, transform: Callable | None = None
    ) -> None:
        super().__init__(transform)
        try:
            from pycocotools.coco import COCO
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise ImportError("COCO needs pycocotools: pip install pycocotools") from exc
        if not annotation_file.is_file():
            raise FileNotFoundError(f"COCO annotation file not found: {annotation_file}")
        _need_dir(images_dir, "COCO images")
        import contextlib
        import io as _io

        with contextlib.redirect_stdout(_io.StringIO()):  # pycocotools prints progress
            self.coco = COCO(str(annotation_file))
        cats = sorted(self.coco.getCatIds())
        self.cat_to_class = {c: i + 1 for i, c in enumerate(cats)}  # 0 = background
        names = ("background", *(self.coco.loadCats(c)[0]["name"] for c in cats))
        self.class_map = ClassMap(names)
        self.ids = sorted(self.coco.getImgIds())
        if not self.ids:
            raise ValueError(f"{annotation_file} lists no images")
        self.images_dir = images_dir

    def __len__(self) -> int:
        return len(self.ids)

    def pair(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        info = self.coco.loadImgs(self.ids[index])[0]
        path = self.images_dir / info["file_name"]
        if not path.is_file():
            raise FileNotFoundError(f"COCO image not found: {path}")
        mask = np.zeros((info["height"], info["width"]), dtype=np.int64)
        anns = self.coco.loadAnns(self.coco.getAnnIds(imgIds=info["id"]))
        for ann in sorted(
            anns, key=lambda a: -a.get("area", 0)
        ):  # small objects drawn last, on top
            if ann["category_id"] not in self.cat_to_class:
                raise ValueError(
                    f"annotation {ann['id']} has unknown category id {ann['category_id']}"
                )
            m = self.coco.annToMask(ann).astype(bool)
            mask[m] = 255 if ann.get("iscrowd", 0) else self.cat_to_class[ann["category_id"]]
        return read_image(path), mask


def coco(
    root: str | Path, split: str = "train", year: int = 2017, transform: Callable | None = None
) -> _CocoSemantic:
    """COCO as semantic segmentation: ``root/{split}{year}/*.jpg`` with
    ``root/annotations/instances_{split}{year}.json``; classes are the annotation file's
    categories in id order after background; crowd regions are ignored."""
    root = Path(root)
    return _CocoSemantic(
        root / f"{split}{year}", root / "annotations" / f"instances_{split}{year}.json", transform
    )


READERS = {"voc": voc, "camvid": camvid, "cityscapes": cityscapes, "ade20k": ade20k, "coco": coco}


def _register(name: str, reader: Callable) -> None:
    def factory(d: dict, split: str, train: bool, seed: int):
        transform = train_transform(d) if train else None
        extra = {"augmented": d["augmented"] and train} if name == "voc" else {}
        return reader(d["root"], split_name(d, split), transform=transform, **extra)

    register_dataset(name, needs_root=True)(factory)


for _name, _reader in READERS.items():
    _register(_name, _reader)
