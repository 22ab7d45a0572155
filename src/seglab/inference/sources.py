"""Image sources for tiled inference: arrays, tensors, and files read by region."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

TIFF_SUFFIXES = (".tif", ".tiff")


class ImageSource:
    """An image as (H, W, C) regions: a numpy array, a (C, H, W) tensor, or a file read by
    region where the format allows (TIFF through a memory map)."""

    def __init__(self, image: Any) -> None:
        self.chw = False
        if isinstance(image, (str, os.PathLike)):
            image = open_image(Path(image))
        if isinstance(image, torch.Tensor):
            if image.dim() == 2:
                image = image[None]
            if image.dim() != 3:
                raise ValueError(
                    f"a tensor image must be (C, H, W) or (H, W), got shape {tuple(image.shape)}"
                )
            self.chw = True
            self.array = image.detach().cpu()
            c, h, w = self.array.shape
        elif isinstance(image, (np.ndarray, TiffRows)):
            if image.ndim == 2:
                image = image[..., None] if isinstance(image, np.ndarray) else image.as_3d()
            if image.ndim != 3:
                raise ValueError(
                    f"an image array must be (H, W) or (H, W, C), got shape {image.shape}"
                )
            self.array = image
            h, w, c = image.shape
        else:
            raise ValueError(
                "image must be a numpy array (H, W[, C]), a (C, H, W) tensor or an image file "
                f"path, got {type(image).__name__}"
            )
        if h < 1 or w < 1:
            raise ValueError(f"the image is empty ({h} x {w})")
        self.height, self.width, self.channels = h, w, c

    def region(self, y0: int, y1: int, x0: int, x1: int):
        """The raw region: (h, w, C) array, or (C, h, w) tensor for tensor input."""
        if self.chw:
            return self.array[:, y0:y1, x0:x1]
        if isinstance(self.array, TiffRows):  # read the whole row of tiles once, then slice
            return self.array.rows(y0, y1)[:, x0:x1]
        return np.asarray(self.array[y0:y1, x0:x1])


class TiffRows:
    """An uncompressed, contiguous TIFF image read by rows on demand, array-like: ``shape``,
    ``dtype``, ``ndim`` and ``[rows, cols]`` indexing return numpy arrays. Only the rows asked for
    are read (with one seek), and the last block of rows is cached, so tiles of one row share a
    read; nothing stays mapped, so the resident memory is one row of tiles, not the file."""

    def __init__(self, path: Path, offset: int, shape: tuple[int, ...], dtype) -> None:
        self.path, self.offset = path, offset
        self.shape, self.dtype = tuple(shape), np.dtype(dtype)
        self.ndim = len(self.shape)
        self._row_bytes = int(np.prod(self.shape[1:])) * self.dtype.itemsize
        self._cache: tuple[int, int, np.ndarray] | None = None

    def as_3d(self) -> TiffRows:
        """The same file seen as (H, W, 1): a gray image with its channel axis."""
        return TiffRows(self.path, self.offset, (*self.shape, 1), self.dtype)

    def rows(self, y0: int, y1: int) -> np.ndarray:
        """Rows ``y0 .. y1`` as an array, read with one seek (the last block is cached)."""
        if self._cache is not None and self._cache[0] <= y0 and y1 <= self._cache[1]:
            c0, _, block = self._cache
            return block[y0 - c0 : y1 - c0]
        with open(self.path, "rb") as f:
            f.seek(self.offset + y0 * self._row_bytes)
            data = f.read((y1 - y0) * self._row_bytes)
        block = np.frombuffer(data, self.dtype).reshape(y1 - y0, *self.shape[1:])
        self._cache = (y0, y1, block)
        return block

    def __getitem__(self, key) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        rows = key[0] if isinstance(key[0], slice) else slice(key[0], key[0] + 1)
        start, stop, step = rows.indices(self.shape[0])
        if step == 1:
            block = self.rows(start, max(start, stop))
        else:
            block = np.stack([self.rows(y, y + 1)[0] for y in range(start, stop, step)])
        out = block[(slice(None), *key[1:])]
        return out if isinstance(key[0], slice) else out[0]

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = self.rows(0, self.shape[0])
        return out.astype(dtype) if dtype is not None else out


def open_image(path: str | os.PathLike, max_pixels: int | None = None):
    """An image file as an array without reading more than needed: an uncompressed, contiguous
    TIFF becomes a :class:`TiffRows` (rows read on demand, any size); compressed TIFFs and other
    formats (PNG, JPEG: no random access) are decoded whole, within the pixel limit
    (:func:`seglab.io.pixel_limit`)."""
    from ..io import check_pixels, pixel_limit

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"image file not found: {path}")
    if path.suffix.lower() in TIFF_SUFFIXES:
        import tifffile

        try:
            with tifffile.TiffFile(path) as tif:
                series = tif.series[0]
                page = tif.pages[0]
                shape = series.shape
                dtype = np.dtype(series.dtype).newbyteorder(tif.byteorder)
                readable = (
                    len(tif.pages) == 1
                    and bool(page.is_contiguous)
                    and int(page.compression) == 1  # none
                    and int(page.planarconfig) == 1  # pixels interleaved: (H, W, C) rows
                    and len(shape) in (2, 3)
                )
                offset = int(page.dataoffsets[0]) if readable else 0
            pixels = int(np.prod(shape[:2] if len(shape) == 2 or shape[-1] <= 4 else shape[-2:]))
            if readable:
                need = offset + int(np.prod(shape)) * dtype.itemsize
                if path.stat().st_size < need:
                    raise ValueError(
                        f"{path} is truncated or forged: its header promises {need:,} bytes of "
                        f"pixels, the file has {path.stat().st_size:,}"
                    )
                check_pixels(path, shape[1], shape[0], pixel_limit(max_pixels))
                return TiffRows(path, offset, shape, dtype)
            if pixels > pixel_limit(max_pixels):
                raise ValueError(
                    f"{path} is a compressed TIFF of {pixels:,} pixels, more than the limit of "
                    f"{pixel_limit(max_pixels):,}; store it uncompressed (read by rows), or raise "
                    "the limit (`max_pixels`)"
                )
            array = tifffile.imread(path)
            if array.ndim == 3 and array.shape[0] in (3, 4) and array.shape[-1] not in (3, 4):
                array = np.moveaxis(array, 0, -1)  # planar (C, H, W) storage -> (H, W, C)
            return array
        except ValueError:
            raise
        except Exception as exc:
            raise ValueError(f"{path} could not be read as a TIFF: {exc}") from None
    from ..io import read_image

    return read_image(path, max_pixels)  # PNG/JPEG cannot be read by region: decoded whole


def to_float_chw(region) -> torch.Tensor:
    """Default preprocessing: (C, h, w) float32 in [0, 1] (uint8 / 255, uint16 / 65535)."""
    if isinstance(region, torch.Tensor):
        t = region
        if not t.is_floating_point():
            t = t.float() / (255.0 if t.dtype == torch.uint8 else 65535.0)
        return t.float()
    a = np.asarray(region)
    if a.dtype == np.uint8:
        a = a.astype(np.float32) / 255.0
    elif a.dtype == np.uint16:
        a = a.astype(np.float32) / 65535.0
    elif a.dtype.kind in "iub":
        raise ValueError(f"unsupported integer image dtype {a.dtype}; expected uint8 or uint16")
    return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1), dtype=np.float32))
