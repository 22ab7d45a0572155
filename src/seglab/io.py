"""Reading and writing images and results: every file seglab touches goes through here.

Writes are atomic: data go to a temporary file in the destination folder, which is then renamed
over the destination, so a crash never leaves a half-written file behind.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from .image import check_image

# Pillow modes we can turn into a gray, RGB or RGBA array without guessing.
_MODE_CONVERSIONS = {
    "1": "L",
    "L": None,
    "LA": "L",
    "P": "RGBA",
    "PA": "RGBA",
    "RGB": None,
    "RGBA": None,
    "RGBX": "RGB",
    "CMYK": "RGB",
    "YCbCr": "RGB",
    "LAB": "RGB",
    "HSV": "RGB",
    "I;16": None,
    "I;16L": None,
    "I;16B": None,
    "I;16N": None,
}


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file into a numpy array: (H, W) or (H, W, 3), uint8 or uint16.

    Palette images are expanded to RGB; an alpha channel is dropped (see :mod:`seglab.image`).

    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` for a file that is not an
    image, is truncated or corrupt, or has a mode seglab does not handle (32-bit integer or float
    images, for instance).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"image file not found: {path}")
    if not path.is_file():
        raise ValueError(f"{path} is not a file; expected an image file (PNG, JPEG, TIFF, ...)")
    try:
        with Image.open(path) as im:
            im.load()
            mode = im.mode
            if mode not in _MODE_CONVERSIONS:
                raise ValueError(
                    f"{path}: unsupported image mode {mode!r}; expected 8-bit or 16-bit gray, "
                    "RGB or RGBA"
                )
            target = _MODE_CONVERSIONS[mode]
            if mode == "P" and "transparency" not in im.info:
                target = "RGB"
            if target is not None:
                im = im.convert(target)
            array = np.array(im)
    except UnidentifiedImageError as exc:
        raise ValueError(f"{path} is not an image file seglab can read") from exc
    except (OSError, SyntaxError) as exc:
        raise ValueError(f"{path} could not be decoded (truncated or corrupt?): {exc}") from exc
    if array.dtype.byteorder == ">" or (array.dtype != np.uint8 and array.dtype.kind == "u"):
        array = array.astype(np.uint16)
    return check_image(array, name=str(path))


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file and a rename."""
    return atomic_write(path, lambda f: f.write(data))


def atomic_write(path: str | os.PathLike, writer: Callable[[Any], object]) -> Path:
    """Call ``writer(binary_file)`` on a temporary file, then rename it to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            writer(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_image(path: str | os.PathLike, array: np.ndarray) -> Path:
    """Write a uint8 gray/RGB/RGBA array, or a uint16 gray array, as an image (PNG by suffix)."""
    array = np.ascontiguousarray(array)
    if array.dtype == np.uint16:
        if array.ndim != 2:
            raise ValueError("16-bit images must be single-channel (H, W)")
        im = Image.fromarray(array)  # mode I;16
    elif array.dtype == np.uint8:
        im = Image.fromarray(array)
    else:
        raise ValueError(f"write_image takes uint8 or uint16 arrays, got {array.dtype}")
    fmt = Image.registered_extensions().get(Path(path).suffix.lower(), "PNG")
    buf = io.BytesIO()
    im.save(buf, format=fmt)
    return atomic_write_bytes(path, buf.getvalue())


def write_labels(path: str | os.PathLike, labels: np.ndarray) -> Path:
    """Save a label image as a 16-bit PNG (labels 0..65535), readable by any image library."""
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"labels must be (H, W), got shape {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() > 65535):
        raise ValueError("labels must lie in 0..65535 to be stored in a 16-bit PNG")
    return write_image(path, labels.astype(np.uint16))


def read_labels(path: str | os.PathLike) -> np.ndarray:
    """Read a label image written by :func:`write_labels` (or any index/16-bit PNG)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"label file not found: {path}")
    with Image.open(path) as im:
        return np.array(im).astype(np.int64)


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON, atomically; numpy scalars and arrays are converted."""
    text = json.dumps(obj, indent=2, default=_json_default) + "\n"
    return atomic_write_bytes(path, text.encode("utf-8"))


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"{type(o).__name__} is not JSON serialisable")


def save_figure(path: str | os.PathLike, fig: Any, dpi: int = 100) -> Path:
    """Save a matplotlib figure atomically (format from the suffix)."""
    buf = io.BytesIO()
    fig.savefig(buf, format=Path(path).suffix.lstrip(".") or "png", dpi=dpi, bbox_inches="tight")
    return atomic_write_bytes(path, buf.getvalue())
