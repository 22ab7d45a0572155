"""Instance segmentation datasets: each item is ``(image, target)`` in torchvision's detection
format, ``image`` a (3, H, W) float tensor in [0, 1] and ``target`` a dict with ``masks`` (N, H, W)
uint8, ``boxes`` (N, 4) float xyxy (pixel edges: a one-pixel object at (x, y) is
``[x, y, x + 1, y + 1]``), ``labels`` (N,) int64 (0 is the background, never an instance),
``area``, ``iscrowd`` and ``image_id``. An image without instances gives N = 0 and trains as
background.

* :class:`CocoInstances`: a COCO-style JSON (polygons, RLE) via pycocotools, as annotation tools
  write it (labelme, Roboflow, CVAT, Label Studio: categories may start at 0, be sparse, or be
  declared and never used); labels are the JSON's category ids (torchvision's COCO reference),
  or, with ``contiguous=True``, 1..K in category-id order with ``class_map.ids`` giving each
  label's category id back (used by every output). Instances keep the JSON's annotation order.
* :class:`InstanceFolder`: ``images/`` and ``instances/`` (16-bit PNGs, each non-zero value one
  instance), optionally ``classes/`` (a class id per pixel; an instance takes its majority class).
* :class:`NucleiInstances`: the bundled DSB2018 image (125 nuclei), split by columns.

Bad annotations (a box of zero area, a polygon outside the image or with an odd number of
coordinates, an unknown category, a malformed field; empty masks are dropped) are reported with the annotation's id: ``bad="raise"`` (default) stops with all of them
listed, ``bad="skip"`` leaves them out with a warning.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ..io import read_image, read_labels
from .datasets import IMAGE_SUFFIXES, NUCLEI_SPLITS, ClassMap
from .registry import register_dataset, split_name, synthetic_args


def masks_to_target(masks: np.ndarray, labels, image_id: int = 0) -> dict:
    """(N, H, W) boolean masks and N labels -> a torchvision detection target."""
    masks = np.asarray(masks, dtype=bool)
    n = len(masks)
    boxes = np.zeros((n, 4), np.float32)
    for i, m in enumerate(masks):
        ys, xs = np.nonzero(m.any(axis=1))[0], np.nonzero(m.any(axis=0))[0]
        boxes[i] = (xs[0], ys[0], xs[-1] + 1, ys[-1] + 1)
    return {
        "boxes": torch.from_numpy(boxes).reshape(n, 4),
        "labels": torch.as_tensor(np.asarray(labels, dtype=np.int64)).reshape(n),
        "masks": torch.from_numpy(masks.astype(np.uint8)),
        "area": torch.from_numpy(masks.reshape(n, -1).sum(1).astype(np.float32)),
        "iscrowd": torch.zeros(n, dtype=torch.int64),
        "image_id": int(image_id),
    }


def _image_tensor(image: np.ndarray) -> torch.Tensor:
    from ..image import to_rgb_float

    return torch.from_numpy(np.ascontiguousarray(to_rgb_float(image).transpose(2, 0, 1)))


class InstanceFlips:
    """Random horizontal / vertical flips of an image and its instances (boxes follow)."""

    def __init__(self, hflip: bool = True, vflip: bool = False) -> None:
        self.hflip, self.vflip = hflip, vflip

    def __call__(self, image: torch.Tensor, target: dict) -> tuple[torch.Tensor, dict]:
        target = dict(target)
        _, h, w = image.shape
        if self.hflip and torch.rand(()) < 0.5:
            image, target["masks"] = image.flip(-1), target["masks"].flip(-1)
            b = target["boxes"].clone()
            b[:, [0, 2]] = w - target["boxes"][:, [2, 0]]
            target["boxes"] = b
        if self.vflip and torch.rand(()) < 0.5:
            image, target["masks"] = image.flip(-2), target["masks"].flip(-2)
            b = target["boxes"].clone()
            b[:, [1, 3]] = h - target["boxes"][:, [3, 1]]
            target["boxes"] = b
        return image, target


class _InstanceDataset(Dataset):
    class_map: ClassMap
    transform: Callable | None

    def instances(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(image array, (N, H, W) bool masks, (N,) labels)."""
        raise NotImplementedError  # pragma: no cover - abstract

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict]:
        image, masks, labels = self.instances(index)
        img = _image_tensor(image)
        target = masks_to_target(masks, labels, image_id=index)
        if self.transform is not None:
            img, target = self.transform(img, target)
        return img, target


class CocoInstances(_InstanceDataset):
    """Images under ``image_root`` and their instances from a COCO JSON (see the module doc)."""

    def __init__(
        self,
        image_root: str | Path,
        annotation_json: str | Path,
        transform: Callable | None = None,
        bad: str = "raise",
        include_crowd: bool = False,
        contiguous: bool | None = None,
    ) -> None:
        if bad not in ("raise", "skip"):
            raise ValueError(f"bad must be 'raise' or 'skip', got {bad!r}")
        self.image_root, self.transform = Path(image_root), transform
        path = Path(annotation_json)
        if not path.is_file():
            raise FileNotFoundError(f"annotation file not found: {path}")
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"{path} is not valid JSON: {exc}") from None
        for key in ("images", "annotations", "categories"):
            if not isinstance(data.get(key), list):
                raise ValueError(f"{path} is not a COCO annotation file: no '{key}' list")
        try:
            cats = {int(c["id"]): str(c.get("name", c["id"])) for c in data["categories"]}
            by_id = {int(im["id"]): im for im in data["images"]}
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}: a category or image has no integer 'id' ({exc})") from None
        if not cats:
            raise ValueError(f"{path} declares no categories")
        self.images = list(data["images"])
        self.annotations: dict[int, list[dict]] = {i: [] for i in by_id}
        problems = []
        for ann in data["annotations"]:
            problem = self._check(ann, by_id, cats)
            if problem:
                problems.append(problem)
                continue
            if ann.get("iscrowd", 0) and not include_crowd:
                continue
            self.annotations[int(ann["image_id"])].append(ann)
        used = {int(a["category_id"]) for anns in self.annotations.values() for a in anns}
        top = max(cats, default=0)
        # labels are ids unless that cannot work: id 0 is the background, 255 the ignore index,
        # and ids far beyond the number of categories would size every class table by the id
        why = (
            "category id 0 is used, but label 0 is the background"
            if 0 in used
            else f"category id {top} is not below 255, the ignore index"
            if top >= 255
            else None
        )
        if contiguous is None:
            contiguous = why is not None or top > 4 * len(cats) + 16
            if why is not None:
                warnings.warn(
                    f"{path}: {why}; labels are mapped to 1..K in category-id order "
                    "(class_map.ids maps them back)",
                    stacklevel=2,
                )
        elif not contiguous and why is not None:
            raise ValueError(
                f"{path}: {why}; pass contiguous=True (data.contiguous_labels: true) to map the "
                "ids to 1..K"
            )
        if contiguous:  # declared categories, less an unused id 0 (labelme's _background_)
            kept = sorted(c for c in cats if c != 0 or 0 in used)
            self.label_of = {c: i + 1 for i, c in enumerate(kept)}
            names = ["background"] + [cats[c] for c in kept]
            self.class_map = ClassMap(tuple(names), ids=(0, *kept))
        else:
            self.label_of = {c: c for c in cats}
            names = ["background"] + [cats.get(i, f"unused_{i}") for i in range(1, max(cats) + 1)]
            self.class_map = ClassMap(tuple(names))
        self.category_ids = sorted(cats)
        if problems:
            listed = "; ".join(problems[:10]) + (
                f"; and {len(problems) - 10} more" if len(problems) > 10 else ""
            )
            if bad == "raise":
                raise ValueError(
                    f"{path}: {len(problems)} bad annotation(s): {listed} (pass bad='skip', or "
                    "data.bad_annotations: skip, to leave them out)"
                )
            warnings.warn(
                f"{path}: skipped {len(problems)} bad annotation(s): {listed}", stacklevel=2
            )

    @staticmethod
    def _check(ann: dict, images: dict, cats: dict) -> str | None:
        """What is wrong with an annotation, naming it by id; None if nothing is."""
        aid = ann.get("id", "?") if isinstance(ann, dict) else "?"
        try:
            return CocoInstances._problem(ann, aid, images, cats)
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            return f"annotation {aid}: malformed ({type(exc).__name__}: {exc})"

    @staticmethod
    def _problem(ann: dict, aid, images: dict, cats: dict) -> str | None:
        image = images.get(int(ann.get("image_id", -1)))
        if image is None:
            return f"annotation {aid}: unknown image id {ann.get('image_id')}"
        if int(ann.get("category_id", -1)) not in cats:
            return f"annotation {aid}: unknown category id {ann.get('category_id')}"
        w, h = int(image["width"]), int(image["height"])
        bbox = ann.get("bbox")
        if bbox is not None and (len(bbox) != 4 or bbox[2] <= 0 or bbox[3] <= 0):
            return f"annotation {aid}: box {bbox} has zero area"
        segm = ann.get("segmentation")
        if segm is None:
            return f"annotation {aid}: no segmentation"
        if isinstance(segm, list):
            for poly in segm:
                if len(poly) % 2:
                    return (
                        f"annotation {aid}: a polygon has an odd number of coordinates "
                        f"({len(poly)}); expected x, y pairs"
                    )
                xy = np.asarray(poly, dtype=np.float64).reshape(-1, 2)
                if len(xy) < 3:
                    return f"annotation {aid}: a polygon needs at least 3 points"
                if (
                    (xy[:, 0] < -1).any()
                    or (xy[:, 0] > w + 1).any()
                    or (xy[:, 1] < -1).any()
                    or (xy[:, 1] > h + 1).any()
                ):
                    return f"annotation {aid}: polygon outside the {w} x {h} image"
        elif isinstance(segm, dict):
            if list(segm.get("size", [])) != [h, w]:
                return (
                    f"annotation {aid}: RLE size {segm.get('size')} is not the image's [{h}, {w}]"
                )
        else:
            return f"annotation {aid}: segmentation must be polygons or RLE"
        return None

    def __len__(self) -> int:
        return len(self.images)

    def _decode(self, ann: dict, h: int, w: int) -> np.ndarray:
        from pycocotools import mask as mask_utils

        segm = ann["segmentation"]
        if isinstance(segm, list):
            rle = mask_utils.merge(mask_utils.frPyObjects(segm, h, w))
        elif isinstance(segm["counts"], list):
            rle = mask_utils.frPyObjects(segm, h, w)
        else:
            rle = segm
        return mask_utils.decode(rle).astype(bool)

    def _image_path(self, file_name: str) -> Path:
        """``image_root/file_name``; tools that write their own folders into ``file_name``
        (Label Studio's ``images/...``, labelme's ``JPEGImages/...``) also find the bare name."""
        path = self.image_root / file_name
        if not path.exists() and (self.image_root / Path(file_name).name).exists():
            return self.image_root / Path(file_name).name
        return path

    def instances(self, index: int):
        image, masks, labels, _ = self._load(index)
        return image, masks, labels

    def _load(self, index: int):
        """(image, masks, labels, annotations) of the annotations whose mask is not empty."""
        info = self.images[index]
        image = read_image(self._image_path(info["file_name"]))
        h, w = image.shape[:2]
        if (h, w) != (int(info["height"]), int(info["width"])):
            raise ValueError(
                f"{info['file_name']} is {h} x {w}, the annotation file says "
                f"{info['height']} x {info['width']}"
            )
        anns = self.annotations[int(info["id"])]
        masks = np.zeros((len(anns), h, w), bool)
        for i, ann in enumerate(anns):
            masks[i] = self._decode(ann, h, w)
        keep = masks.reshape(len(anns), -1).any(1) if anns else np.zeros(0, bool)
        labels = np.array([self.label_of[int(a["category_id"])] for a in anns], np.int64)
        kept = [a for a, k in zip(anns, keep, strict=True) if k]
        return image, masks[keep], labels[keep], kept

    def __getitem__(self, index: int):
        """As torchvision's COCO reference: boxes are the JSON's ``bbox`` (xywh -> xyxy, clipped
        to the image) where given, else the mask's extent."""
        image, masks, labels, anns = self._load(index)
        img = _image_tensor(image)
        target = masks_to_target(masks, labels, image_id=int(self.images[index]["id"]))
        h, w = masks.shape[-2:] if len(masks) else image.shape[:2]
        for i, ann in enumerate(anns):
            if ann.get("bbox") is not None:
                x, y, bw, bh = (float(v) for v in ann["bbox"])
                target["boxes"][i] = torch.tensor(
                    [max(0.0, x), max(0.0, y), min(float(w), x + bw), min(float(h), y + bh)]
                )
        if self.transform is not None:
            img, target = self.transform(img, target)
        return img, target


class InstanceFolder(_InstanceDataset):
    """``root/[split/]images/*`` with ``instances/<stem>.png`` (instance ids, 0 = background) and,
    optionally, ``classes/<stem>.png`` (class ids; an instance takes its majority class). Without
    ``classes/`` every instance is ``class_names[0]`` (label 1)."""

    def __init__(
        self,
        root: str | Path,
        split: str | None = None,
        class_names: tuple[str, ...] = ("object",),
        transform: Callable | None = None,
    ) -> None:
        base = Path(root) / split if split else Path(root)
        self.transform = transform
        self.class_map = ClassMap(("background", *class_names))
        folder = base / "images"
        if not folder.is_dir():
            raise FileNotFoundError(f"no images folder: {folder} (expected images/ and instances/)")
        self.items = []
        for f in sorted(folder.iterdir()):
            if f.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            inst = _find(base / "instances", f.stem)
            if inst is None:
                raise FileNotFoundError(f"no instance mask for {f.name} in {base / 'instances'}")
            self.items.append((f, inst, _find(base / "classes", f.stem)))
        if not self.items:
            raise FileNotFoundError(f"no images in {folder}")

    def __len__(self) -> int:
        return len(self.items)

    def instances(self, index: int):
        image_path, inst_path, cls_path = self.items[index]
        image = read_image(image_path)
        ids = read_labels(inst_path)
        if ids.shape != image.shape[:2]:
            raise ValueError(f"{inst_path} is {ids.shape}, its image {image.shape[:2]}")
        values = np.unique(ids[ids > 0])
        masks = ids[None] == values[:, None, None]
        if cls_path is None:
            labels = np.ones(len(values), np.int64)
        else:
            classes = read_labels(cls_path)
            labels = np.array([np.bincount(classes[m]).argmax() for m in masks], np.int64).reshape(
                len(values)
            )
            bad = labels[(labels < 1) | (labels >= self.class_map.num_classes)]
            if bad.size:
                raise ValueError(
                    f"{cls_path}: an instance's class {int(bad[0])} is not in 1.."
                    f"{self.class_map.num_classes - 1} (class_names has "
                    f"{self.class_map.num_classes - 1} names)"
                )
        return image, masks, labels


def _find(folder: Path, stem: str) -> Path | None:
    for suffix in (".png", ".tif", ".tiff"):
        if (folder / f"{stem}{suffix}").is_file():
            return folder / f"{stem}{suffix}"
    return None


class NucleiInstances(_InstanceDataset):
    """The bundled DSB2018 nuclei (one class) of a column split (``NUCLEI_SPLITS``), as the whole
    strip or cut into ``tile`` x ``tile`` tiles (``stride`` apart) for training. Nuclei cut by a
    split or tile border keep their visible part."""

    def __init__(
        self,
        split: str = "train",
        tile: int | None = None,
        stride: int | None = None,
        transform: Callable | None = None,
    ) -> None:
        from . import nuclei

        if split not in NUCLEI_SPLITS:
            raise ValueError(
                f"unknown nuclei split {split!r}; choose one of {', '.join(NUCLEI_SPLITS)}"
            )
        image, labels = nuclei()
        lo, hi = NUCLEI_SPLITS[split]
        self.image = np.round(image.astype(np.float64) / image.max() * 255).astype(np.uint8)[
            :, lo:hi
        ]
        self.labels = labels[:, lo:hi]
        self.class_map = ClassMap(("background", "nucleus"))
        self.transform = transform
        h, w = self.labels.shape
        if tile is None:
            self.windows = [(0, 0, h, w)]
        else:
            t_h, t_w, s = min(tile, h), min(tile, w), stride or tile
            self.windows = [
                (y, x, t_h, t_w) for y in range(0, h - t_h + 1, s) for x in range(0, w - t_w + 1, s)
            ]

    def __len__(self) -> int:
        return len(self.windows)

    def instances(self, index: int):
        y, x, th, tw = self.windows[index]
        ids = self.labels[y : y + th, x : x + tw]
        values = np.unique(ids[ids > 0])
        masks = ids[None] == values[:, None, None]
        return self.image[y : y + th, x : x + tw], masks, np.ones(len(values), np.int64)


def instance_collate(batch):
    """Detection batches are lists: images may differ in size, targets in instance count."""
    images, targets = zip(*batch, strict=True)
    return list(images), list(targets)


class SyntheticInstances(_InstanceDataset):
    """``n`` deterministic images of a few non-overlapping squares (class 1) and discs (class 2)
    on a textured background: for tests and quick checks of instance models."""

    def __init__(
        self,
        n: int = 8,
        size: tuple[int, int] = (128, 128),
        seed: int = 0,
        max_objects: int = 4,
        transform: Callable | None = None,
    ) -> None:
        self.n, self.size, self.seed, self.max_objects = n, tuple(size), seed, max_objects
        self.class_map = ClassMap(("background", "square", "disc"))
        self.transform = transform

    def __len__(self) -> int:
        return self.n

    def instances(self, index: int):
        if not 0 <= index < self.n:
            raise IndexError(index)
        h, w = self.size
        r = np.random.default_rng(self.seed + index)
        yy, xx = np.mgrid[0:h, 0:w]
        image = 70 + 10 * np.sin(xx / 6.0) * np.cos(yy / 9.0) + r.normal(0, 6, (h, w))
        image = np.repeat(image[..., None], 3, axis=2)
        taken = np.zeros((h, w), bool)
        masks, labels = [], []
        for _ in range(50):  # place up to max_objects without overlap
            if len(masks) == self.max_objects:
                break
            s = int(r.integers(max(6, min(h, w) // 10), max(7, min(h, w) // 4)))
            cy, cx = int(r.integers(s, h - s)), int(r.integers(s, w - s))
            cls = int(r.integers(1, 3))
            if cls == 1:
                m = (abs(yy - cy) <= s // 2) & (abs(xx - cx) <= s // 2)
            else:
                m = (yy - cy) ** 2 + (xx - cx) ** 2 <= (s // 2) ** 2
            grown = (abs(yy - cy) <= s // 2 + 2) & (abs(xx - cx) <= s // 2 + 2)
            if (grown & taken).any():
                continue
            taken |= grown
            colour = (200, 80, 60) if cls == 1 else (60, 120, 220)
            image[m] = np.array(colour) + r.normal(0, 8, 3)
            masks.append(m)
            labels.append(cls)
        image = np.clip(image + r.normal(0, 4, image.shape), 0, 255).astype(np.uint8)
        masks_arr = np.array(masks, bool).reshape(len(masks), h, w)
        return image, masks_arr, np.array(labels, np.int64)


# ----------------------------------------------------------------------------- registry entries


@register_dataset("synthetic_instances", instance=True)
def _synthetic_instances(cfg: dict, split: str, train: bool) -> SyntheticInstances:
    d = cfg["data"]
    n, seed = synthetic_args(cfg, split)
    transform = InstanceFlips(d["hflip"], d["vflip"]) if train else None
    return SyntheticInstances(n, tuple(d["size"]), seed=seed, transform=transform)


@register_dataset("nuclei_instances", instance=True)
def _nuclei_instances(cfg: dict, split: str, train: bool) -> NucleiInstances:
    d = cfg["data"]
    if train:
        return NucleiInstances(
            "train", d["tile"], d["tile"] // 2, InstanceFlips(d["hflip"], d["vflip"])
        )
    return NucleiInstances(split)


@register_dataset("instance_folder", needs_root=True, instance=True)
def _instance_folder(cfg: dict, split: str, train: bool) -> InstanceFolder:
    d = cfg["data"]
    transform = InstanceFlips(d["hflip"], d["vflip"]) if train else None
    classes = tuple(d["classes"] or ("object",))
    return InstanceFolder(d["root"], split_name(cfg, split) or None, classes, transform)


@register_dataset("coco_instances", needs_root=True, instance=True)
def _coco_instances(cfg: dict, split: str, train: bool) -> CocoInstances:
    d = cfg["data"]
    annotations = d["annotations"] or {}
    if split not in annotations:
        raise ValueError(
            f"data.annotations has no {split!r} entry: give the COCO JSON of each split, e.g. "
            "{train: ann/train.json, val: ann/val.json}"
        )
    sub = split_name(cfg, split)
    root = Path(d["root"]) / sub if sub and (Path(d["root"]) / sub).is_dir() else Path(d["root"])
    transform = InstanceFlips(d["hflip"], d["vflip"]) if train else None
    return CocoInstances(
        root,
        annotations[split],
        transform,
        bad=d["bad_annotations"],
        contiguous=d["contiguous_labels"],
    )
