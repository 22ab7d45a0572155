"""Per-pixel feature vectors: "pixels are points in a high-dimensional space".

A feature spec is a ``+``-joined list of group names, e.g. ``"lab+xy"`` (the lecture's 5-d colour +
position space). Every group is expressed in **colour units**, one scale for the whole library, so
that one number, ``spatial_weight``, says how much one pixel of distance counts against one unit
of colour:

========  ====  ==========================================================================
group     dims  values and units
========  ====  ==========================================================================
rgb       3     R, G, B scaled to 0..100
lab       3     CIE L*a*b* (D65): L* in 0..100, a*, b* roughly -100..100 (1 unit ~ 1 ΔE)
luv       3     CIE L*u*v* (D65): L* in 0..100, u*, v* roughly -100..100 (mean-shift's classic)
edison    3     L*u*v* as EDISON computes it (Comaniciu & Meer's code): the same formulas applied
                to the sRGB values without undoing their gamma; mean-shift's bandwidths
                (hs = 7, hr = 6.5) were tuned in this space
hsv       3     H, S, V scaled to 0..100 (hue wraps around: 0 and 100 are both red)
gray      1     luminance (ITU-R 709 weights) scaled to 0..100
xy        2     pixel column x and row y, in pixels, times ``spatial_weight``
grad      2     Gaussian (σ = 1 px) gradient of the lightness as the doubled-angle vector
                ``(|∇L| cos 2θ, |∇L| sin 2θ)``: its length is the gradient magnitude in L* units
                per pixel, its direction the edge orientation without the 180° wrap
texture   9     filter bank on the lightness at σ = 1, 2, 4 px: scale-normalised ``|∂x|``, ``|∂y|``
                and ``|LoG|`` responses (L* units), rectified and averaged over a Gaussian of 2σ
========  ====  ==========================================================================

The lightness used by ``grad`` and ``texture`` is L* for colour images and the gray level (0..100)
for gray ones. Each group can be scaled further with ``weights={"texture": 0.5, ...}``; a weight
multiplies the group's values, so squared distances scale with its square.

Images are checked by :func:`seglab.image.check_image` (gray, RGB, RGBA with alpha dropped; uint8,
uint16 or floats in [0, 1]).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ._feature_groups import FEATURE_GROUPS
from .image import to_float

__all__ = [
    "FEATURE_GROUPS",
    "feature_layout",
    "parse_features",
    "pixel_features",
    "resolve_spatial_weight",
]

_TEXTURE_SCALES = (1.0, 2.0, 4.0)

#: With ``spatial_weight="auto"``, crossing the whole image diagonal counts as this many colour
#: units, so position matters equally on a thumbnail and on a 12-megapixel photo.
AUTO_SPATIAL_UNITS = 25.0


def resolve_spatial_weight(spatial_weight: float | str, shape: tuple[int, ...]) -> float:
    """Colour units per pixel: the number given, or for ``"auto"`` 25 / (image diagonal)."""
    if isinstance(spatial_weight, str):
        if spatial_weight != "auto":
            raise ValueError(
                f"spatial_weight must be a number >= 0 or 'auto', got {spatial_weight!r}"
            )
        return AUTO_SPATIAL_UNITS / float(np.hypot(shape[0], shape[1]))
    return _check_weight("spatial_weight", spatial_weight)


# EDISON's RGB -> XYZ matrix and white point (msImageProcessor.h), applied to sRGB values as
# they are stored (no gamma linearisation): what its mean-shift segmentation clusters.
_EDISON_XYZ = np.array(
    [[0.4125, 0.3576, 0.1804], [0.2125, 0.7154, 0.0721], [0.0193, 0.1192, 0.9502]]
)
_EDISON_WHITE_UV = (0.19784977571475, 0.46834507665248)


#: sRGB (D65) to CIE XYZ and the D65 white (2° observer), as scikit-image's ``rgb2lab`` uses them.
_XYZ_FROM_RGB = np.array(
    [[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169], [0.019334, 0.119193, 0.950227]]
)
_D65 = np.array([0.95047, 1.0, 1.08883])


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """CIE L*a*b* (D65, 2°) of float RGB in [0, 1] (..., 3), in the input's float dtype.

    The same operations in the same order as scikit-image's ``rgb2lab`` (a test checks equality),
    without importing scikit-image's colour module, which costs a third of a second at startup.
    """
    arr = rgb.copy()
    mask = arr > 0.04045
    arr[mask] = np.power((arr[mask] + 0.055) / 1.055, 2.4)
    arr[~mask] /= 12.92
    arr = arr @ _XYZ_FROM_RGB.T.astype(arr.dtype)
    arr = arr / _D65.astype(arr.dtype)
    mask = arr > 0.008856
    arr[mask] = np.cbrt(arr[mask])
    arr[~mask] = 7.787 * arr[~mask] + 16.0 / 116.0
    x, y, z = arr[..., 0], arr[..., 1], arr[..., 2]
    return np.stack([116.0 * y - 16.0, 500.0 * (x - y), 200.0 * (y - z)], axis=-1)


def edison_luv(rgb: np.ndarray) -> np.ndarray:
    """L*u*v* of an (H, W, 3) RGB image in [0, 1] as EDISON computes it (float32)."""
    xyz = rgb.astype(np.float64) @ _EDISON_XYZ.T
    y = xyz[..., 1]
    lightness = np.where(y > 0.008856, 116.0 * np.cbrt(y) - 16.0, 903.3 * y)
    denom = xyz[..., 0] + 15.0 * xyz[..., 1] + 3.0 * xyz[..., 2]
    safe = np.where(denom == 0, 1.0, denom)
    u = np.where(denom != 0, 4.0 * xyz[..., 0] / safe, 4.0)
    v = np.where(denom != 0, 9.0 * xyz[..., 1] / safe, 9.0 / 15.0)
    uw, vw = _EDISON_WHITE_UV
    out = np.stack([lightness, 13 * lightness * (u - uw), 13 * lightness * (v - vw)], axis=-1)
    return out.astype(np.float32)


def edison_rgb(luv: np.ndarray) -> np.ndarray:
    """The inverse of :func:`edison_luv`: RGB in [0, 1] (not clipped) from EDISON's L*u*v*."""
    luv = np.asarray(luv, np.float64)
    lightness, u, v = luv[..., 0], luv[..., 1], luv[..., 2]
    y = np.where(lightness > 8.0, ((lightness + 16.0) / 116.0) ** 3, lightness / 903.3)
    lit = np.where(lightness > 0, lightness, 1.0)
    uw, vw = _EDISON_WHITE_UV
    up = np.where(lightness > 0, u / (13 * lit) + uw, uw)
    vp = np.where(lightness > 0, v / (13 * lit) + vw, vw)
    vp = np.where(vp == 0, 1e-12, vp)
    x = 9.0 * y * up / (4.0 * vp)
    z = (9.0 * y - 15.0 * vp * y - vp * x) / (3.0 * vp)
    return np.stack([x, y, z], axis=-1) @ np.linalg.inv(_EDISON_XYZ).T


def parse_features(features: str) -> list[str]:
    """Split a spec such as ``"lab+xy"`` into group names, checking each one."""
    if not isinstance(features, str) or not features.strip():
        raise ValueError(
            f"features must be a non-empty string such as 'lab+xy'; got {features!r}. "
            f"Known groups: {', '.join(FEATURE_GROUPS)}"
        )
    groups = [g.strip().lower() for g in features.split("+")]
    for g in groups:
        if g not in FEATURE_GROUPS:
            raise ValueError(
                f"unknown feature {g!r} in {features!r}; expected names from "
                f"{', '.join(FEATURE_GROUPS)} joined by '+' (e.g. 'lab+xy')"
            )
    if len(set(groups)) != len(groups):
        raise ValueError(f"feature spec {features!r} names a group twice")
    return groups


def feature_layout(features: str) -> list[tuple[str, slice]]:
    """``[(group, column slice), ...]`` of the matrix :func:`pixel_features` returns."""
    out, start = [], 0
    for g in parse_features(features):
        out.append((g, slice(start, start + FEATURE_GROUPS[g])))
        start += FEATURE_GROUPS[g]
    return out


def _check_weight(name: str, value: float) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a number, got {value!r}") from exc
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value}")
    return value


def pixel_features(
    image: np.ndarray,
    features: str = "lab+xy",
    spatial_weight: float | str = 1.0,
    weights: Mapping[str, float] | None = None,
) -> np.ndarray:
    """Return the (H*W, D) float32 feature matrix of ``image``, pixels in row-major order.

    Parameters
    ----------
    image : ndarray
        gray, RGB or RGBA array (uint8, uint16 or float in [0, 1]).
    features : str
        groups joined by ``+``; see the module docstring for each group's units.
    spatial_weight : float or "auto"
        colour units per pixel of distance for the ``xy`` group, or ``"auto"``
        for 25 / (image diagonal in pixels): crossing the image counts as 25 colour units.
    weights : dict of str to float, optional
        optional extra multipliers per group, e.g. ``{"texture": 0.5}``.
    """
    groups = parse_features(features)
    img = to_float(image)
    spatial_weight = resolve_spatial_weight(spatial_weight, img.shape)
    weights = dict(weights or {})
    for g, w in weights.items():
        if g not in FEATURE_GROUPS:
            raise ValueError(f"weights names unknown feature group {g!r}")
        weights[g] = _check_weight(f"weights[{g!r}]", w)
    if "xy" in weights and spatial_weight != 1.0:
        raise ValueError("give the xy weight either as spatial_weight or in weights, not both")
    weights.setdefault("xy", spatial_weight)
    h, w = img.shape[:2]
    cache: dict[str, np.ndarray] = {}

    def rgb() -> np.ndarray:
        return img if img.ndim == 3 else np.repeat(img[:, :, None], 3, axis=2)

    def lab() -> np.ndarray:
        if "lab" not in cache:
            cache["lab"] = rgb_to_lab(rgb()).astype(np.float32, copy=False)
        return cache["lab"]

    def lightness() -> np.ndarray:
        # L* for colour, the gray level on the same 0..100 scale for gray images.
        return lab()[:, :, 0] if img.ndim == 3 else img * np.float32(100.0)

    blocks = []
    if any(g in ("luv", "hsv", "gray") for g in groups):
        from skimage import color  # only these groups need it (a third of a second to import)
    for g in groups:
        if g == "rgb":
            block = rgb() * np.float32(100.0)
        elif g == "lab":
            block = lab()
        elif g == "luv":
            block = color.rgb2luv(rgb()).astype(np.float32)
        elif g == "edison":
            block = edison_luv(rgb())
        elif g == "hsv":
            block = color.rgb2hsv(rgb()).astype(np.float32) * np.float32(100.0)
        elif g == "gray":
            gray = color.rgb2gray(img) if img.ndim == 3 else img
            block = (gray * 100.0).astype(np.float32)[:, :, None]
        elif g == "xy":
            yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
            block = np.stack([xx, yy], axis=2)
        elif g == "grad":
            block = _gradient_features(lightness())
        else:  # texture
            block = _texture_features(lightness())
        block = block.reshape(h * w, -1).astype(np.float32, copy=False)
        wgt = weights.get(g, 1.0)
        if wgt != 1.0:
            block = block * np.float32(wgt)
        blocks.append(block)
    return np.ascontiguousarray(np.concatenate(blocks, axis=1), dtype=np.float32)


def _gradient_features(light: np.ndarray) -> np.ndarray:
    from scipy import ndimage as ndi

    light = light.astype(np.float32, copy=False)
    gx = ndi.gaussian_filter(light, 1.0, order=(0, 1), mode="nearest")
    gy = ndi.gaussian_filter(light, 1.0, order=(1, 0), mode="nearest")
    # (gx + i gy)^2 / |g| has length |g| and angle 2θ: orientation without the 180° ambiguity.
    mag = np.hypot(gx, gy)
    safe = np.where(mag > 0, mag, 1.0)
    return np.stack([(gx * gx - gy * gy) / safe, 2.0 * gx * gy / safe], axis=2)


def _texture_features(light: np.ndarray) -> np.ndarray:
    from scipy import ndimage as ndi

    light = light.astype(np.float32, copy=False)
    out = []
    for s in _TEXTURE_SCALES:
        responses = (
            s * ndi.gaussian_filter(light, s, order=(0, 1), mode="reflect"),
            s * ndi.gaussian_filter(light, s, order=(1, 0), mode="reflect"),
            s * s * ndi.gaussian_laplace(light, s, mode="reflect"),
        )
        for r in responses:
            out.append(ndi.gaussian_filter(np.abs(r), 2.0 * s, mode="reflect"))
    return np.stack(out, axis=2)
