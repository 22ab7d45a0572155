"""COCO instance annotations, as annotation tools write them: :class:`CocoInstances` (see
:mod:`seglab.data.instances` for the target format and how bad annotations are handled)."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ..io import read_image
from .datasets import ClassMap
from .instances import InstanceFlips, _image_tensor, _InstanceDataset, masks_to_target
from .registry import register_dataset, split_name


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
        self._map_labels(path, cats, contiguous)
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

    def _map_labels(self, path: Path, cats: dict[int, str], contiguous: bool | None) -> None:
        """``label_of`` (category id -> label) and ``class_map``: labels are the ids unless that
        cannot work (id 0 is the background, 255 the ignore index, and ids far beyond the number
        of categories would size every class table by the id), then 1..K in id order."""
        used = {int(a["category_id"]) for anns in self.annotations.values() for a in anns}
        top = max(cats, default=0)
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
                    stacklevel=4,
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
        """(image, (N, H, W) bool masks, (N,) labels) of item ``index``."""
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


@register_dataset("coco_instances", needs_root=True, instance=True)
def _coco_instances(d: dict, split: str, train: bool, seed: int) -> CocoInstances:
    annotations = d["annotations"] or {}
    if split not in annotations:
        raise ValueError(
            f"data.annotations has no {split!r} entry: give the COCO JSON of each split, e.g. "
            "{train: ann/train.json, val: ann/val.json}"
        )
    sub = split_name(d, split)
    root = Path(d["root"]) / sub if sub and (Path(d["root"]) / sub).is_dir() else Path(d["root"])
    transform = InstanceFlips(d["hflip"], d["vflip"]) if train else None
    return CocoInstances(
        root,
        annotations[split],
        transform,
        bad=d["bad_annotations"],
        contiguous=d["contiguous_labels"],
    )
