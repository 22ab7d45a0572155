"""Datasets of images and masks for training and evaluating segmentation networks.

One :class:`ClassMap` per dataset (class names, colours, the ignore index) is what the loss, the
metrics and the pictures all read, so they cannot disagree on what is ignored. Masks are checked:
a value that is neither a class nor the ignore index is an error naming the file and the value.

* :class:`FolderDataset`: ``root/images/*`` and ``root/masks/*`` matched by file stem (index PNG
  masks), optionally ``root/<split>/images`` ...; the layout is checked up front.
* :class:`SyntheticScenes`: deterministic textured shapes on a background, any size and count.
* :class:`NucleiTiles`: the bundled DSB2018 image split spatially into train / val / test strips.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from .._checks import check_positive_int
from ..io import read_image, read_labels
from ..viz import voc_palette
from .registry import register_dataset, split_name, synthetic_args

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


@dataclass(frozen=True)
class ClassMap:
    """Class names, their colours (VOC palette by default) and the ignore index; ``ids``, where
    the dataset numbers its classes otherwise (a COCO file's category ids), gives each class's
    own id, so that outputs can speak the dataset's language."""

    names: tuple[str, ...]
    ignore_index: int = 255
    colors: tuple[tuple[int, int, int], ...] = field(default=())
    ids: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if not self.names:
            raise ValueError("a class map needs at least one class")
        if 0 <= self.ignore_index < len(self.names):
            raise ValueError(
                f"ignore_index {self.ignore_index} collides with class {self.ignore_index}"
            )
        if not self.colors:
            pal = voc_palette(256)
            object.__setattr__(
                self, "colors", tuple(tuple(int(v) for v in pal[i]) for i in range(len(self.names)))
            )

    @property
    def num_classes(self) -> int:
        """The number of classes, background included."""
        return len(self.names)

    def check_mask(self, mask: np.ndarray, source: str) -> np.ndarray:
        """Raise ValueError naming ``source`` if the mask holds a value that is neither a class nor
        the ignore index."""
        values = np.unique(mask)
        bad = values[(values >= self.num_classes) & (values != self.ignore_index) | (values < 0)]
        if len(bad):
            raise ValueError(
                f"{source}: mask value {int(bad[0])} is neither a class (0..{self.num_classes - 1}) nor "
                f"the ignore index {self.ignore_index}"
            )
        return mask

    def dataset_id(self, label: int) -> int:
        """The dataset's own id of class ``label`` (the label itself when ``ids`` is None)."""
        return int(label) if self.ids is None else self.ids[int(label)]

    def to_dict(self) -> dict:
        """The class map as plain data, for checkpoints and JSON."""
        return {
            "names": list(self.names),
            "ignore_index": self.ignore_index,
            "colors": [list(c) for c in self.colors],
            "ids": None if self.ids is None else list(self.ids),
        }

    @classmethod
    def from_dict(cls, d: dict) -> ClassMap:
        """The class map :meth:`to_dict` wrote."""
        ids = d.get("ids")
        return cls(
            tuple(d["names"]),
            int(d.get("ignore_index", 255)),
            tuple(tuple(c) for c in d.get("colors", ())),
            None if ids is None else tuple(int(i) for i in ids),
        )


def to_tensor_pair(image: np.ndarray, mask: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """(H, W[, 3]) uint8/uint16 image and (H, W) mask -> float (3, H, W) in [0, 1], long (H, W)."""
    from ..image import to_rgb_float

    img = torch.from_numpy(np.ascontiguousarray(to_rgb_float(image).transpose(2, 0, 1)))
    return img, torch.from_numpy(np.asarray(mask, dtype=np.int64))


class _PairDataset(Dataset):
    """Shared by the datasets: (image, mask) numpy pairs -> tensors through a joint transform."""

    class_map: ClassMap

    def __init__(self, transform: Callable | None = None) -> None:
        self.transform = transform

    def pair(self, index: int) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - abstract
        raise NotImplementedError

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, mask = self.pair(index)
        img, m = to_tensor_pair(image, mask)
        if self.transform is not None:
            img, m = self.transform(img, m)
        return img, m


class FolderDataset(_PairDataset):
    """``root/images`` + ``root/masks`` (or ``root/<split>/images`` + ``masks``), matched by stem.

    Masks are index images (PNG, TIFF) whose values are class ids or the ignore index. The layout
    is checked when the dataset is made: a missing folder, an image without a mask (or the
    reverse), or an image/mask size mismatch is a ValueError/FileNotFoundError naming the file.
    """

    def __init__(
        self,
        root: str | Path,
        class_map: ClassMap,
        split: str | None = None,
        transform: Callable | None = None,
    ) -> None:
        super().__init__(transform)
        self.class_map = class_map
        base = Path(root) / split if split else Path(root)
        img_dir, mask_dir = base / "images", base / "masks"
        for d in (img_dir, mask_dir):
            if not d.is_dir():
                raise FileNotFoundError(
                    f"dataset folder not found: {d} (expected {base}/images and {base}/masks)"
                )
        images = {
            p.stem: p for p in sorted(img_dir.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES
        }
        masks = {
            p.stem: p for p in sorted(mask_dir.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES
        }
        if not images:
            raise ValueError(f"no images in {img_dir}")
        missing = sorted(set(images) - set(masks))
        if missing:
            raise ValueError(
                f"image {images[missing[0]]} has no mask in {mask_dir} (matched by file stem)"
            )
        extra = sorted(set(masks) - set(images))
        if extra:
            raise ValueError(f"mask {masks[extra[0]]} has no image in {img_dir}")
        self.items = [(images[s], masks[s]) for s in sorted(images)]
        from PIL import Image

        self.sizes = []  # (width, height) of each image, from the headers: cheap
        for ip, mp in self.items:
            with Image.open(ip) as a, Image.open(mp) as b:
                if a.size != b.size:
                    raise ValueError(
                        f"{ip} is {a.size[0]}x{a.size[1]} but its mask {mp} is {b.size[0]}x{b.size[1]}"
                    )
                self.sizes.append(a.size)

    def __len__(self) -> int:
        return len(self.items)

    def pair(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(image, mask) of item ``index`` before any transform."""
        ip, mp = self.items[index]
        mask = read_labels(mp)
        return read_image(ip), self.class_map.check_mask(mask, str(mp))


SHAPES_CLASSES = ClassMap(("background", "square", "disc", "triangle"))


def synthetic_scene(
    size: tuple[int, int] = (64, 64), seed: int = 0, num_classes: int = 4
) -> tuple[np.ndarray, np.ndarray]:
    """One deterministic scene: a textured background with squares, discs and triangles (class
    1, 2, 3; fewer with ``num_classes`` < 4), each with its own colour, texture and noise."""
    if not 2 <= num_classes <= 4:
        raise ValueError("synthetic scenes have 2 to 4 classes")
    h, w = size
    r = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.array([90, 120, 80], float) + r.normal(0, 10, 3)
    img = np.broadcast_to(base, (h, w, 3)).copy()
    img += 12 * np.sin(xx[..., None] / 5.0 + r.uniform(0, 6)) * np.cos(yy[..., None] / 7.0)
    mask = np.zeros((h, w), np.uint8)
    colors = {1: (200, 60, 50), 2: (60, 80, 210), 3: (230, 210, 60)}
    for _ in range(r.integers(2, 6)):
        cls = int(r.integers(1, num_classes))
        s = int(r.integers(max(4, min(h, w) // 8), max(5, min(h, w) // 3)))
        cy, cx = int(r.integers(0, h)), int(r.integers(0, w))
        if cls == 1:
            region = (abs(yy - cy) <= s // 2) & (abs(xx - cx) <= s // 2)
        elif cls == 2:
            region = (yy - cy) ** 2 + (xx - cx) ** 2 <= (s // 2) ** 2
        else:
            region = (
                (yy >= cy - s // 2)
                & (yy <= cy + s // 2)
                & (abs(xx - cx) <= (yy - (cy - s // 2)) // 2)
            )
        mask[region] = cls
        tex = 15 * np.sin((xx + yy) / (2.0 + cls))[..., None]
        img[region] = (np.array(colors[cls]) + r.normal(0, 8, 3) + tex)[region]
    img += r.normal(0, 6, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8), mask


class SyntheticScenes(_PairDataset):
    """``n`` deterministic scenes (scene i uses seed ``seed + i``): for tests and the quick start."""

    def __init__(
        self,
        n: int = 64,
        size: tuple[int, int] = (64, 64),
        seed: int = 0,
        num_classes: int = 4,
        transform: Callable | None = None,
    ) -> None:
        super().__init__(transform)
        self.n, self.size, self.seed = n, tuple(size), seed
        self.class_map = ClassMap(SHAPES_CLASSES.names[:num_classes])

    def __len__(self) -> int:
        return self.n

    def pair(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(image, mask) of item ``index`` before any transform."""
        if not 0 <= index < self.n:
            raise IndexError(index)
        return synthetic_scene(self.size, self.seed + index, self.class_map.num_classes)


NUCLEI_CLASSES = ClassMap(("background", "nucleus"))
#: Column ranges of the 512x512 nuclei image: train on the left half, validate on the next 64
#: columns, hold out the right 192 columns for the test (no overlap).
NUCLEI_SPLITS = {"train": (0, 256), "val": (256, 320), "test": (320, 512)}


class NucleiTiles(_PairDataset):
    """The DSB2018 nuclei image cut into square tiles of one split (see ``NUCLEI_SPLITS``); the
    mask is binary (nucleus = 1). Intensities are rescaled by the image maximum to 8 bits."""

    def __init__(
        self,
        split: str = "train",
        tile: int = 64,
        stride: int | None = None,
        transform: Callable | None = None,
    ) -> None:
        super().__init__(transform)
        from . import nuclei

        if split not in NUCLEI_SPLITS:
            raise ValueError(
                f"unknown nuclei split {split!r}; choose one of {', '.join(NUCLEI_SPLITS)}"
            )
        image, labels = nuclei()
        lo, hi = NUCLEI_SPLITS[split]
        img8 = np.round(image.astype(np.float64) / image.max() * 255).astype(np.uint8)[:, lo:hi]
        mask = (labels[:, lo:hi] > 0).astype(np.uint8)
        stride = stride or tile
        tile_w = min(tile, hi - lo)
        self.class_map = NUCLEI_CLASSES
        self.tiles = [
            (img8[y : y + tile, x : x + tile_w], mask[y : y + tile, x : x + tile_w])
            for y in range(0, img8.shape[0] - tile + 1, stride)
            for x in range(0, img8.shape[1] - tile_w + 1, stride)
        ]
        self.strip = (img8, mask)  # the whole split, for evaluation at full size

    def __len__(self) -> int:
        return len(self.tiles)

    def pair(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(image, mask) of item ``index`` before any transform."""
        return self.tiles[index]


class JointTransform:
    """Random scale, crop, flips and colour jitter applied to an image and its mask together
    (torchvision.transforms.v2; masks are resized with nearest neighbour, padded with the ignore
    index). ``crop`` None keeps the size."""

    def __init__(
        self,
        crop: int | Sequence[int] | None = None,
        scale: tuple[float, float] = (1.0, 1.0),
        hflip: bool = True,
        vflip: bool = False,
        color_jitter: float = 0.0,
        ignore_index: int = 255,
    ) -> None:
        from torchvision import tv_tensors
        from torchvision.transforms import v2

        fill = {tv_tensors.Image: 0, tv_tensors.Mask: ignore_index}
        ops = []
        if scale != (1.0, 1.0):
            ops.append(v2.RandomAffine(degrees=0, scale=scale, fill=fill))
        if crop is not None:
            ops.append(v2.RandomCrop(crop, pad_if_needed=True, fill=fill))
        if hflip:
            ops.append(v2.RandomHorizontalFlip())
        if vflip:
            ops.append(v2.RandomVerticalFlip())
        if color_jitter:
            ops.append(v2.ColorJitter(color_jitter, color_jitter, color_jitter))
        self.ops = v2.Compose(ops) if ops else None  # nothing to do: the identity
        self.ignore_index = ignore_index

    def __call__(
        self, image: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        from torchvision import tv_tensors

        if self.ops is None:
            return image, mask
        img, m = self.ops(tv_tensors.Image(image), tv_tensors.Mask(mask))
        return img.as_subclass(torch.Tensor), m.as_subclass(torch.Tensor)


class PatchDataset(Dataset):
    """Centre-pixel patches cut from the images of a segmentation dataset, for training a
    :class:`~seglab.models.sliding.PatchClassifier`.

    Each image is reflect-padded by ``patch_size // 2`` (as ``segment_sliding`` pads at test time)
    and ``per_image`` centres are drawn once, with a fixed seed; pixels marked with the ignore index
    are never centres. ``balanced`` draws the same number of centres from every class present in
    the image (class-balanced sampling), otherwise uniformly over the pixels. Items are
    ``(patch (C, P, P) float, label ())``; ``hflip`` / ``vflip`` flip a patch at random (the centre
    stays the centre). ``base`` is any dataset with ``pair(i) -> (image, mask)`` and a
    ``class_map``: the synthetic scenes, the nuclei tiles, a folder, the public readers.
    """

    def __init__(
        self,
        base,
        patch_size: int,
        per_image: int = 256,
        balanced: bool = True,
        seed: int = 0,
        hflip: bool = False,
        vflip: bool = False,
    ) -> None:
        if isinstance(patch_size, bool) or not isinstance(patch_size, int) or patch_size % 2 == 0:
            raise ValueError(f"patch_size must be an odd integer, got {patch_size!r}")
        check_positive_int(per_image, "per_image")
        self.class_map = base.class_map
        self.patch_size, self.hflip, self.vflip = patch_size, hflip, vflip
        r = patch_size // 2
        rng = np.random.default_rng(seed)
        self.images: list[torch.Tensor] = []
        centres, labels = [], []
        for i in range(len(base)):
            image, mask = base.pair(i)
            img, m = to_tensor_pair(image, mask)
            h, w = m.shape
            if min(h, w) < patch_size:
                raise ValueError(
                    f"image {i} of the dataset is {h} x {w}, smaller than the {patch_size} x "
                    f"{patch_size} patches; use smaller patches or larger images"
                )
            self.images.append(torch.nn.functional.pad(img[None], (r, r, r, r), "reflect")[0])
            flat = m.reshape(-1).numpy()
            valid = np.flatnonzero(flat != self.class_map.ignore_index)
            if valid.size == 0:
                continue
            if balanced:
                present = np.unique(flat[valid])
                share = np.full(len(present), per_image // len(present))
                share[: per_image % len(present)] += 1
                picks = [
                    rng.choice(valid[flat[valid] == c], size=n, replace=True)
                    for c, n in zip(present, share, strict=True)
                    if n
                ]
                pick = np.concatenate(picks)
            else:
                pick = rng.choice(valid, size=per_image, replace=valid.size < per_image)
            centres.append(np.stack([np.full(pick.size, i), pick // w, pick % w], axis=1))
            labels.append(flat[pick])
        if not centres:
            raise ValueError("the dataset has no labelled pixel to centre a patch on")
        self.centres = torch.from_numpy(np.concatenate(centres))
        self.labels = torch.from_numpy(np.concatenate(labels).astype(np.int64))

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        i, y, x = (int(v) for v in self.centres[index])
        p = self.patch_size
        patch = self.images[i][:, y : y + p, x : x + p]  # centre (y, x) after padding by p // 2
        if self.hflip and torch.rand(()) < 0.5:
            patch = patch.flip(-1)
        if self.vflip and torch.rand(()) < 0.5:
            patch = patch.flip(-2)
        return patch.contiguous(), self.labels[index]


# ----------------------------------------------------------------------------- registry entries


def train_transform(d: dict) -> JointTransform | None:
    """The training augmentation that a config's data section describes."""
    return JointTransform(
        crop=d["crop"],
        scale=tuple(d["scale"]),
        hflip=d["hflip"],
        vflip=d["vflip"],
        color_jitter=d["color_jitter"],
        ignore_index=d["ignore_index"],
    )


@register_dataset("synthetic")
def _synthetic(d: dict, split: str, train: bool, seed: int) -> SyntheticScenes:
    n, seed = synthetic_args(d, split, seed)
    transform = train_transform(d) if train else None
    return SyntheticScenes(n, tuple(d["size"]), seed=seed, transform=transform)


@register_dataset("nuclei")
def _nuclei(d: dict, split: str, train: bool, seed: int):
    if train:
        tile = d["tile"]
        return NucleiTiles("train", tile, stride=tile // 2, transform=train_transform(d))
    return WholeStrip(NucleiTiles(split))


@register_dataset("folder", needs_root=True)
def _folder(d: dict, split: str, train: bool, seed: int) -> FolderDataset:
    if not d["classes"]:
        raise ValueError("data.dataset 'folder' needs data.classes (class names, index = value)")
    class_map = ClassMap(tuple(d["classes"]), d["ignore_index"])
    transform = train_transform(d) if train else None
    return FolderDataset(d["root"], class_map, split_name(d, split) or None, transform)


class WholeStrip(Dataset):
    """One item: the whole nuclei strip of a split (evaluation at full size, no tiling seams)."""

    def __init__(self, tiles: NucleiTiles) -> None:
        self.class_map = tiles.class_map
        self.strip = tiles.strip

    def __len__(self) -> int:
        return 1

    def pair(self, index: int):
        """(image, mask) of item ``index`` before any transform."""
        if index != 0:
            raise IndexError(index)
        return self.strip

    def __getitem__(self, index: int):
        return to_tensor_pair(*self.pair(index))
