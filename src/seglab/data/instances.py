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

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ..image import mask_box
from ..io import read_image, read_labels
from .datasets import IMAGE_SUFFIXES, NUCLEI_SPLITS, ClassMap
from .registry import register_dataset, split_name, synthetic_args


def masks_to_target(masks: np.ndarray, labels, image_id: int = 0) -> dict:
    """(N, H, W) boolean masks and N labels -> a torchvision detection target."""
    masks = np.asarray(masks, dtype=bool)
    n = len(masks)
    boxes = np.zeros((n, 4), np.float32)
    for i, m in enumerate(masks):
        box = mask_box(m)
        if box is None:
            raise ValueError(f"instance {i} of image {image_id} has an empty mask; drop it")
        boxes[i] = box
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
        """(image, (N, H, W) bool masks, (N,) labels) of item ``index``."""
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
        """(image, (N, H, W) bool masks, (N,) labels) of item ``index``."""
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
        """(image, (N, H, W) bool masks, (N,) labels) of item ``index``."""
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
def _synthetic_instances(d: dict, split: str, train: bool, seed: int) -> SyntheticInstances:
    n, seed = synthetic_args(d, split, seed)
    transform = InstanceFlips(d["hflip"], d["vflip"]) if train else None
    return SyntheticInstances(n, tuple(d["size"]), seed=seed, transform=transform)


@register_dataset("nuclei_instances", instance=True)
def _nuclei_instances(d: dict, split: str, train: bool, seed: int) -> NucleiInstances:
    if train:
        return NucleiInstances(
            "train", d["tile"], d["tile"] // 2, InstanceFlips(d["hflip"], d["vflip"])
        )
    return NucleiInstances(split)


@register_dataset("instance_folder", needs_root=True, instance=True)
def _instance_folder(d: dict, split: str, train: bool, seed: int) -> InstanceFolder:
    transform = InstanceFlips(d["hflip"], d["vflip"]) if train else None
    classes = tuple(d["classes"] or ("object",))
    return InstanceFolder(d["root"], split_name(d, split) or None, classes, transform)
