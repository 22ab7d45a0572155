"""Checking and converting image arrays: the one place that decides what an image is.

seglab accepts images as numpy arrays shaped (H, W) (gray), (H, W, 3) (RGB) or (H, W, 4) (RGBA;
the alpha channel is dropped, since segmentation looks at colour, not transparency), stored as
``uint8`` (0..255), ``uint16`` (0..65535) or floating point in [0, 1] (scikit-image's convention).
Anything else is refused with a ``ValueError`` that says what was expected.
"""

from __future__ import annotations

import numpy as np

SUPPORTED = (
    "a (H, W) gray, (H, W, 3) RGB or (H, W, 4) RGBA array of uint8, uint16 or float in [0, 1]"
)


def check_image(image: object, name: str = "image") -> np.ndarray:
    """Validate ``image`` and return it as a numpy array with the alpha channel dropped.

    The dtype is kept; the result is (H, W) or (H, W, 3).
    """
    if not isinstance(image, np.ndarray):
        try:
            image = np.asarray(image)
        except Exception as exc:  # pragma: no cover - exotic array-likes
            raise ValueError(f"{name} must be {SUPPORTED}; got {type(image).__name__}") from exc
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 3 and image.shape[2] == 4:
        image = image[:, :, :3]
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
        raise ValueError(f"{name} must be {SUPPORTED}; got an array of shape {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {image.shape}); expected at least one pixel")
    if image.dtype == np.uint8 or image.dtype == np.uint16:
        return image
    if image.dtype == np.bool_ or not np.issubdtype(image.dtype, np.floating):
        raise ValueError(f"{name} must be {SUPPORTED}; got dtype {image.dtype}")
    if not np.all(np.isfinite(image)):
        raise ValueError(f"{name} contains NaN or infinite values; expected floats in [0, 1]")
    lo, hi = float(image.min()), float(image.max())
    if lo < 0.0 or hi > 1.0:
        raise ValueError(
            f"{name} is floating point with values in [{lo:g}, {hi:g}]; expected [0, 1] "
            "(convert 0..255 data to uint8 first)"
        )
    return image


def to_float(image: np.ndarray) -> np.ndarray:
    """Checked image as float32 in [0, 1]: uint8 / 255, uint16 / 65535, floats unchanged."""
    image = check_image(image)
    if image.dtype == np.uint8:
        return image.astype(np.float32) / np.float32(255.0)
    if image.dtype == np.uint16:
        return image.astype(np.float32) / np.float32(65535.0)
    return image.astype(np.float32, copy=False)


def to_rgb_float(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) float32 in [0, 1]; gray is repeated into three channels."""
    f = to_float(image)
    if f.ndim == 2:
        f = np.repeat(f[:, :, None], 3, axis=2)
    return f


def to_uint8_rgb(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 for display and picture files.

    Images whose values use only a small part of their range (a 16-bit microscopy image with values
    0..235, say) are stretched to their own min..max so the picture is not black.
    """
    image = check_image(image)
    if image.dtype == np.uint8:
        out = image
    else:
        f = to_float(image)
        hi = float(f.max())
        lo = float(f.min())
        if image.dtype == np.uint16 and hi < 0.5 and hi > lo:
            f = (f - lo) / (hi - lo)
        out = np.round(f * 255.0).astype(np.uint8)
    if out.ndim == 2:
        out = np.repeat(out[:, :, None], 3, axis=2)
    return np.ascontiguousarray(out)


def mask_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """The box (x0, y0, x1, y1) of a 2-d mask's nonzero pixels, ends exclusive (torchvision's and
    COCO's corner convention), or None for an empty mask. The one place boxes come from masks."""
    rows, cols = np.nonzero(np.any(mask, axis=1))[0], np.nonzero(np.any(mask, axis=0))[0]
    if not len(rows):
        return None
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1
