"""Instance segmentation inference: run a Mask R-CNN on an image of any size and turn its output
into an instance-label image, COCO-style results (RLE masks with scores) and a semantic map.

Large images are cut into overlapping tiles (starts and sizes as in :mod:`seglab.inference`).
An object cut by a seam appears whole in one tile and cut in its neighbour; a tile keeps only the
instances whose box centre lies in its own part of the image (its half of every overlap), and
instances of neighbouring tiles that still overlap (an object larger than the overlap, split in
two) are merged when their masks share more than ``merge_threshold`` of the smaller one. So an
object is reported once, and whole.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ._checks import check_positive_int
from .image import mask_box


@dataclass
class Instance:
    """One object: class, score, box (x0, y0, x1, y1, pixel edges) and its mask inside the box."""

    label: int
    score: float
    box: tuple[int, int, int, int]
    mask: np.ndarray  # bool, (y1 - y0, x1 - x0)

    @property
    def area(self) -> int:
        """Pixels in the mask."""
        return int(self.mask.sum())

    def full_mask(self, shape: tuple[int, int]) -> np.ndarray:
        """The mask at the size of the whole image."""
        out = np.zeros(shape, bool)
        x0, y0, x1, y1 = self.box
        out[y0:y1, x0:x1] = self.mask
        return out


def instances_from_output(
    out: dict, score_threshold: float, mask_threshold: float, dy: int = 0, dx: int = 0
):
    """Instances of one image from torchvision's output dict, shifted by (dy, dx)."""
    found = []
    masks = out["masks"]
    for k in range(len(out["scores"])):
        score = float(out["scores"][k])
        if score < score_threshold:
            continue
        m = (masks[k, 0] > mask_threshold).cpu().numpy()
        box = mask_box(m)
        if box is None:
            continue
        x0, y0, x1, y1 = box
        found.append(
            Instance(
                int(out["labels"][k]),
                score,
                (int(x0 + dx), int(y0 + dy), int(x1 + dx), int(y1 + dy)),
                m[y0:y1, x0:x1].copy(),
            )
        )
    return found


def _overlap(a: Instance, b: Instance) -> float:
    """Shared pixels over the smaller instance's area."""
    x0, y0 = max(a.box[0], b.box[0]), max(a.box[1], b.box[1])
    x1, y1 = min(a.box[2], b.box[2]), min(a.box[3], b.box[3])
    if x0 >= x1 or y0 >= y1:
        return 0.0
    ma = a.mask[y0 - a.box[1] : y1 - a.box[1], x0 - a.box[0] : x1 - a.box[0]]
    mb = b.mask[y0 - b.box[1] : y1 - b.box[1], x0 - b.box[0] : x1 - b.box[0]]
    inter = int((ma & mb).sum())
    return inter / max(1, min(a.area, b.area))


def _union(a: Instance, b: Instance) -> Instance:
    box = (
        min(a.box[0], b.box[0]),
        min(a.box[1], b.box[1]),
        max(a.box[2], b.box[2]),
        max(a.box[3], b.box[3]),
    )
    mask = np.zeros((box[3] - box[1], box[2] - box[0]), bool)
    for inst in (a, b):
        x0, y0, x1, y1 = inst.box
        mask[y0 - box[1] : y1 - box[1], x0 - box[0] : x1 - box[0]] |= inst.mask
    best = a if a.score >= b.score else b
    return Instance(best.label, max(a.score, b.score), box, mask)


def merge_instances(instances: list[Instance], threshold: float = 0.3) -> list[Instance]:
    """Merge instances of the same class whose masks share more than ``threshold`` of the smaller
    one (the two halves of an object split by a tile seam), repeatedly; highest score first."""
    pending = sorted(instances, key=lambda i: -i.score)
    merged: list[Instance] = []
    while pending:
        current = pending.pop(0)
        changed = True
        while changed:
            changed = False
            for other in list(pending):
                if other.label == current.label and _overlap(current, other) > threshold:
                    current = _union(current, other)
                    pending.remove(other)
                    changed = True
        merged.append(current)
    return merged


@torch.no_grad()
def predict_instances(
    model: nn.Module,
    image,
    score_threshold: float = 0.5,
    mask_threshold: float = 0.5,
    tile: int | None = None,
    overlap: float = 0.25,
    merge_threshold: float = 0.3,
    device=None,
    progress: bool = False,
) -> list[Instance]:
    """The instances in ``image`` ((H, W[, 3]) array, uint8 scaled to [0, 1], or a (3, H, W)
    float tensor), best score first. ``tile`` runs overlapping tiles (see the module docstring)."""
    from .image import to_rgb_float
    from .inference.tiling import axis_tiles

    if not 0 <= overlap < 1:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    if isinstance(image, np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(to_rgb_float(image).transpose(2, 0, 1)))
    elif isinstance(image, torch.Tensor) and image.dim() == 3 and image.shape[0] == 3:
        x = image.float()
    else:
        raise ValueError("image must be an (H, W[, 3]) array or a (3, H, W) tensor")
    if device is None:
        p = next(model.parameters(), None)
        device = p.device if p is not None else torch.device("cpu")
    was_training = model.training
    model.eval()
    _, h, w = x.shape
    try:
        if tile is None or (h <= tile and w <= tile):
            out = model([x.to(device)])[0]
            return sorted(
                instances_from_output(out, score_threshold, mask_threshold), key=lambda i: -i.score
            )
        check_positive_int(tile, "tile")
        rows, cols = axis_tiles(h, tile, overlap, 32), axis_tiles(w, tile, overlap, 32)
        from tqdm.auto import tqdm

        found = []
        bar = tqdm(total=len(rows) * len(cols), desc="tiles", unit="tile", disable=not progress)
        for r, (y0, th, _) in enumerate(rows):
            top = y0 if r == 0 else (rows[r - 1][0] + rows[r - 1][1] + y0) / 2
            bottom = y0 + th if r == len(rows) - 1 else (y0 + th + rows[r + 1][0]) / 2
            for c, (x0, tw, _) in enumerate(cols):
                left = x0 if c == 0 else (cols[c - 1][0] + cols[c - 1][1] + x0) / 2
                right = x0 + tw if c == len(cols) - 1 else (x0 + tw + cols[c + 1][0]) / 2
                out = model([x[:, y0 : y0 + th, x0 : x0 + tw].to(device)])[0]
                for inst in instances_from_output(out, score_threshold, mask_threshold, y0, x0):
                    cy = (inst.box[1] + inst.box[3]) / 2
                    cx = (inst.box[0] + inst.box[2]) / 2
                    if top <= cy < bottom and left <= cx < right:  # this tile's own part
                        found.append(inst)
                bar.update()
        bar.close()
        return merge_instances(found, merge_threshold)
    finally:
        model.train(was_training)


def instances_to_labels(instances: list[Instance], shape: tuple[int, int]) -> np.ndarray:
    """(H, W) uint16/int32 image: 0 background, instance i (best score first) = i + 1; where
    instances overlap the better-scored one is on top."""
    dtype = np.uint16 if len(instances) < 65535 else np.int32
    out = np.zeros(shape, dtype)
    for i in range(len(instances) - 1, -1, -1):
        inst = instances[i]
        x0, y0, x1, y1 = inst.box
        out[y0:y1, x0:x1][inst.mask] = i + 1
    return out


def instances_to_semantic(instances: list[Instance], shape: tuple[int, int]) -> np.ndarray:
    """(H, W) class map: each pixel the class of the best-scored instance covering it, else 0."""
    out = np.zeros(
        shape, np.uint8 if max((i.label for i in instances), default=0) < 256 else np.int32
    )
    for inst in sorted(instances, key=lambda i: i.score):
        x0, y0, x1, y1 = inst.box
        out[y0:y1, x0:x1][inst.mask] = inst.label
    return out


def to_coco_results(
    instances: list[Instance],
    shape: tuple[int, int],
    image_id: int = 0,
    category_ids: Sequence[int] | None = None,
) -> list[dict]:
    """COCO results entries (``image_id``, ``category_id``, ``score``, ``bbox`` xywh,
    ``segmentation`` compressed RLE) for the instances of one image; ``category_ids[label]`` is
    the JSON's id of each label where the training data mapped ids to 1..K."""
    from pycocotools import mask as mask_utils

    results = []
    for inst in instances:
        rle = mask_utils.encode(np.asfortranarray(inst.full_mask(shape).astype(np.uint8)))
        x0, y0, x1, y1 = inst.box
        results.append(
            {
                "image_id": image_id,
                "category_id": inst.label if category_ids is None else category_ids[inst.label],
                "score": round(inst.score, 5),
                "bbox": [x0, y0, x1 - x0, y1 - y0],
                "segmentation": {
                    "size": list(rle["size"]),
                    "counts": rle["counts"].decode("ascii"),
                },
            }
        )
    return results


def instance_colors(n: int) -> np.ndarray:
    """``n`` distinct, saturated colours (hues a golden angle apart), uint8 (n, 3)."""
    import colorsys

    return np.array(
        [
            [round(255 * c) for c in colorsys.hsv_to_rgb((i * 0.618034) % 1.0, 0.85, 0.95)]
            for i in range(n)
        ],
        np.uint8,
    ).reshape(n, 3)


def overlay_instances(image: np.ndarray, labels: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Each instance of an instance-label image in its own colour over the image, with outlines."""
    from skimage.segmentation import find_boundaries

    from .image import to_uint8_rgb

    rgb = to_uint8_rgb(image).astype(np.float32)
    n = int(labels.max())
    colors = np.vstack([np.zeros((1, 3), np.uint8), instance_colors(n)]).astype(np.float32)
    fg = labels > 0
    rgb[fg] = (1 - alpha) * rgb[fg] + alpha * colors[labels[fg]]
    edges = find_boundaries(labels, mode="inner") & fg
    rgb[edges] = colors[labels[edges]]
    return np.clip(rgb, 0, 255).astype(np.uint8)
