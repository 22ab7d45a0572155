"""Reading and writing images and results: every file seglab touches goes through here.

Writes are atomic (:mod:`seglab._files`, re-exported here): data go to a temporary file in the
destination folder, which is then renamed over the destination, so a crash never leaves a
half-written file behind. Files get the
permissions ``open()`` would give them (0666 less the user's umask). Temporary names carry the
host and process id, so :func:`remove_stale_temporaries` can clean the ones whose writer died
without touching those of a run still going.

Reading refuses images larger than :data:`MAX_PIXELS` from their header, before any pixel is
decoded (a small PNG can claim 100000 x 100000 pixels); pass ``max_pixels=`` or set the
``SEGLAB_MAX_PIXELS`` environment variable to allow more.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from ._checks import check_positive_int
from ._files import (  # re-exported: io is where every file seglab touches goes through
    atomic_write,
    atomic_write_bytes,
    check_writable,
    describe_os_error,
    file_mode,
    owner_tag,
    remove_stale_temporaries,
    stale_temporaries,
)

__all__ = [
    "MAX_PIXELS",
    "atomic_write",
    "atomic_write_bytes",
    "available_memory",
    "check_pixels",
    "check_writable",
    "describe_os_error",
    "file_mode",
    "image_size",
    "json_safe",
    "labels_filename",
    "owner_tag",
    "pixel_limit",
    "read_image",
    "read_labels",
    "remove_stale_temporaries",
    "save_figure",
    "stale_temporaries",
    "write_image",
    "write_json",
    "write_labels",
]
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


#: The largest image (in pixels) read by default: 100 megapixels, about 10000 x 10000.
MAX_PIXELS = 100_000_000


def pixel_limit(value: int | None = None) -> int:
    """The pixel limit in force: ``value`` if given, else ``SEGLAB_MAX_PIXELS``, else
    :data:`MAX_PIXELS`."""
    if value is None:
        env = os.environ.get("SEGLAB_MAX_PIXELS")
        if env is None:
            return MAX_PIXELS
        try:
            value = int(env)
        except ValueError:
            raise ValueError(f"SEGLAB_MAX_PIXELS must be an integer, got {env!r}") from None
    check_positive_int(value, "max_pixels")
    return value


def check_pixels(path: Path, width: int, height: int, limit: int) -> None:
    """Refuse an image of ``width`` x ``height`` over ``limit`` pixels, naming the option."""
    if width * height > limit:
        raise ValueError(
            f"{path} is {width} x {height} = {width * height:,} pixels, more than the limit of "
            f"{limit:,}; downscale it, or raise the limit (`max_pixels` or SEGLAB_MAX_PIXELS) if "
            "this machine has the memory"
        )


def _checked_path(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"image file not found: {path}")
    if not path.is_file():
        raise ValueError(f"{path} is not a file; expected an image file (PNG, JPEG, TIFF, ...)")
    return path


def image_size(path: str | os.PathLike, max_pixels: int | None = None) -> tuple[int, int]:
    """(height, width) of an image file from its header alone (nothing decoded), checked
    against the pixel limit: a cheap test of a whole folder before any work starts."""
    path, limit = _checked_path(path), pixel_limit(max_pixels)
    try:
        with _pillow_unlimited(), Image.open(path) as im:
            width, height = im.size
            if _exif_upright_swaps(im):
                width, height = height, width
    except UnidentifiedImageError:
        raise ValueError(f"{path} is not an image file seglab can read") from None
    except (OSError, SyntaxError) as exc:
        raise ValueError(f"{path} could not be decoded (truncated or corrupt?): {exc}") from None
    check_pixels(path, width, height, limit)
    return height, width


@contextlib.contextmanager
def _pillow_unlimited():
    """Pillow's own bomb check off while seglab reads a file whose size it has checked itself
    (Pillow's refusal is a traceback that names no option); it stays off through ``load()``, which
    checks again for some formats (TIFF)."""
    import warnings

    with _PILLOW_LOCK:
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                yield
        finally:
            Image.MAX_IMAGE_PIXELS = saved


_PILLOW_LOCK = threading.RLock()


def available_memory() -> int | None:
    """Bytes of memory available now (``MemAvailable``), or None where the system does not say."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _decoded_bytes(im: Image.Image) -> int:
    bands = len(im.getbands())
    depth = 2 if im.mode.startswith("I;16") else 4 if im.mode in ("I", "F") else 1
    width, height = im.size
    return width * height * max(bands, 3) * depth  # RGB at least: palettes are expanded


def _check_decode_memory(path: Path, im: Image.Image) -> None:
    """Refuse before decoding an image that would not fit in the memory available now (a small
    file can unpack to gigabytes once the pixel limit is raised)."""
    free = available_memory()
    need = _decoded_bytes(im)
    if free is not None and need > free:
        width, height = im.size
        raise ValueError(
            f"{path} is {width} x {height} pixels, which needs {need / 2**30:.1f} GiB to decode "
            f"and {free / 2**30:.1f} GiB is available; downscale it or free memory"
        )


def _exif_upright_swaps(im: Image.Image) -> bool:
    try:
        return im.getexif().get(0x0112, 1) in (5, 6, 7, 8)  # rotated by 90 or 270 degrees
    except Exception:
        return False


def _exif_upright(im: Image.Image) -> Image.Image:
    """The image as a viewer shows it: its EXIF orientation applied (Pillow's
    ``ImageOps.exif_transpose``), so a portrait photo is not segmented lying down."""
    from PIL import ImageOps

    try:
        orientation = im.getexif().get(0x0112, 1)
    except Exception:  # a broken EXIF block: the pixels as stored
        return im
    return ImageOps.exif_transpose(im) if orientation not in (None, 1) else im


def read_image(path: str | os.PathLike, max_pixels: int | None = None) -> np.ndarray:
    """Read an image file into a numpy array: (H, W) or (H, W, 3), uint8 or uint16.

    Palette images are expanded to RGB; an alpha channel is dropped (see :mod:`seglab.image`).

    Parameters
    ----------
    path : str or path-like
        The image file.
    max_pixels : int, optional
        Refuse images with more pixels than this, from the header, before decoding (default:
        ``SEGLAB_MAX_PIXELS`` or :data:`MAX_PIXELS`).

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    ValueError
        The file is not an image, is truncated or corrupt, is larger than the pixel limit, or has
        a mode seglab does not handle (32-bit integer or float images, for instance).
    """
    path, limit = _checked_path(path), pixel_limit(max_pixels)
    try:
        with _pillow_unlimited(), Image.open(path) as opened:
            check_pixels(path, *opened.size, limit)
            _check_decode_memory(path, opened)
            opened.load()
            im = _exif_upright(opened)
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
    except MemoryError:
        raise ValueError(
            f"{path}: not enough memory to decode it; lower the pixel limit or downscale it"
        ) from None
    if array.dtype.byteorder == ">" or (array.dtype != np.uint8 and array.dtype.kind == "u"):
        array = array.astype(np.uint16)
    return check_image(array, name=str(path))


#: zlib level of the PNGs seglab writes (0-9): measured on chelsea's photo and k-means overlay, level 3
#: encodes in a third of the time of Pillow's default 6, for files 4-7 % larger.
PNG_COMPRESS_LEVEL = 3


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
    # zlib level 3 for PNG: a third of the default's time for files about 5 % larger
    im.save(buf, format=fmt, **({"compress_level": PNG_COMPRESS_LEVEL} if fmt == "PNG" else {}))
    return atomic_write_bytes(path, buf.getvalue())


def labels_filename(labels: np.ndarray, stem: str = "labels") -> str:
    """``labels.png`` when the labels fit 16 bits, else ``labels.tif`` (32-bit)."""
    return f"{stem}.png" if not labels.size or int(labels.max()) <= 65535 else f"{stem}.tif"


def write_labels(path: str | os.PathLike, labels: np.ndarray) -> Path:
    """Save a label image: a 16-bit PNG (labels 0..65535, readable by any image library), or a
    32-bit TIFF when ``path`` ends in ``.tif``/``.tiff`` (labels up to 2**32 - 1)."""
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"labels must be (H, W), got shape {labels.shape}")
    tiff = Path(path).suffix.lower() in (".tif", ".tiff")
    top = 2**32 - 1 if tiff else 65535
    if labels.size and (labels.min() < 0 or labels.max() > top):
        raise ValueError(
            f"labels must lie in 0..{top} to be stored in {Path(path).name}"
            + ("" if tiff else f" (a 16-bit PNG); write {Path(path).stem}.tif for more labels")
        )
    if tiff:
        import tifffile

        buf = io.BytesIO()
        tifffile.imwrite(buf, labels.astype(np.uint32), compression="zlib")
        return atomic_write_bytes(path, buf.getvalue())
    return write_image(path, labels.astype(np.uint16))


def read_labels(path: str | os.PathLike, max_pixels: int | None = None) -> np.ndarray:
    """Read a label image (a class or instance id per pixel) written by :func:`write_labels`, or
    any gray, palette (indices) or 16-bit PNG, or TIFF; EXIF orientation is applied as for the
    image it labels.

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    ValueError
        The file is not an image, is truncated, is over the pixel limit, or has colour channels
        (a label image has one value per pixel).
    """
    path, limit = Path(path), pixel_limit(max_pixels)
    if not path.exists():
        raise FileNotFoundError(f"label file not found: {path}")
    if not path.is_file():
        raise ValueError(f"{path} is not a file; expected a label image (PNG or TIFF)")
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            with tifffile.TiffFile(path) as tif:
                shape = tif.series[0].shape
                check_pixels(path, shape[1] if len(shape) > 1 else 1, shape[0], limit)
                array = tif.asarray()
        else:
            with _pillow_unlimited(), Image.open(path) as opened:
                check_pixels(path, *opened.size, limit)
                opened.load()
                im = _exif_upright(opened)
                if im.mode in ("RGB", "RGBA", "CMYK", "YCbCr", "LAB", "HSV"):
                    raise ValueError(
                        f"{path} is a colour ({im.mode}) image; a label image holds one id per "
                        "pixel: save it as a gray, palette or 16-bit PNG"
                    )
                array = np.array(im)
    except ValueError:
        raise
    except (OSError, SyntaxError, UnidentifiedImageError) as exc:
        raise ValueError(
            f"{path} could not be read as a label image (truncated or corrupt?): {exc}"
        ) from None
    if array.ndim != 2:
        raise ValueError(f"{path} has shape {array.shape}; a label image is (H, W): one id a pixel")
    return array.astype(np.int64)


def json_safe(obj: Any) -> Any:
    """``obj`` with every NaN or infinity replaced by None (``null``), numpy values made plain:
    strict JSON, which every tool reads (``NaN`` is not JSON)."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return json_safe(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented strict JSON, atomically; numpy values are converted, NaN and
    infinities written as ``null`` (see :func:`json_safe`)."""
    text = json.dumps(json_safe(obj), indent=2, default=_json_default, allow_nan=False) + "\n"
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
