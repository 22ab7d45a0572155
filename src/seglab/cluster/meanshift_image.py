"""Mean-shift segmentation of images in the joint spatial-range domain, as EDISON does it.

The pixels' windows climb in :mod:`seglab.cluster._meanshift_kernels`; the regions are formed in
:mod:`seglab.cluster.regions`; the shared kernel tables and checks are in
:mod:`seglab.cluster.meanshift`.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

from .._checks import check_positive_int
from ..features import feature_layout, pixel_features
from ..image import check_image
from . import _meanshift_image_kernels as MS
from ._estimator import EstimatorMixin
from .meanshift import CONNECT, KERNELS, SUPPORT, _check_kernel, _check_positive
from .regions import fuse_regions


class MeanShiftSegmenter(EstimatorMixin):
    """Mean-shift segmentation in the joint spatial-range domain (Comaniciu & Meer 2002; EDISON).

    Every pixel starts a window at (x, y, colour) and climbs to a mode of the joint density with the
    product kernel ``k(|dxy| / hs) * k(|dcolour| / hr)`` (points on the window's edge are outside;
    in bright windows, L* > 80, lightness differences count twice: EDISON's filter). The regions
    are then formed as EDISON forms them (:func:`seglab.cluster.regions.fuse_regions`): 8-adjacent
    pixels whose filtered colours differ by less than one unit per channel are connected, adjacent
    regions whose modes lie within ``merge_distance`` range bandwidths are fused (twice), and
    regions smaller than ``min_region_size`` join the adjacent region of nearest mode. Grouping
    compares region modes, not pixel to pixel along a path, so a blurred edge between two flat
    areas does not chain them into one region.

    Parameters
    ----------
    spatial_bandwidth : float
        hs, in pixels (EDISON's default 7).
    range_bandwidth : float or sequence of float
        hr, in units of the range features (EDISON's default 6.5, for L*u*v*);
        a dict gives one bandwidth per feature group, e.g. ``{"lab": 6.5, "texture": 10}``.
    kernel : {"flat", "epanechnikov", "gaussian"}
        "flat" (default), "epanechnikov" or "gaussian".
    min_region_size : int
        EDISON's minimum region area M (default 20 pixels).
    features : str
        the range features (any spec of :func:`seglab.features.pixel_features` without
        ``xy``, which the spatial bandwidth already covers); default "edison", the L*u*v* of
        EDISON (no gamma linearisation), in which hs = 7, hr = 6.5 were tuned.
    merge_distance : float
        adjacent regions whose modes are closer than this, in bandwidths, are fused: as in
        :class:`~seglab.cluster.MeanShift`, where the modes are compared; here they are compared
        in colour, so in range bandwidths (default 0.5, EDISON's).
    max_iter, tol : int, float
        per-pixel iteration limit; a window stops when it moves less than ``tol``, measured in
        pixels and feature units together (EDISON's rule and value, 0.1).
    max_work : int, optional
        refuse (with the estimated cost) images and bandwidths that would need more than
        this many pixel visits (default 2e10, about a minute here).
    speedup : {0, 1, 2}
        0 (default): every pixel climbs to its own mode. EDISON's speed-ups, for colour and
        gray features: 1, a window's path takes the pixels it passes over (of similar colour)
        to the same mode, and stops at a pixel whose mode is known; 2, also the pixels of very
        similar colour inside the windows. Shared within bands of 16 rows, so the result does
        not depend on the number of threads. See ``benchmarks/meanshift.py`` for their time and
        their agreement with the exact segmentation.

    Attributes
    ----------
    labels_ : ndarray of shape (H, W)
        Region ids 0..R-1 in raster order, each region of at least ``min_region_size`` pixels
        (unless the image is smaller); ``n_regions_`` is R.
    modes_ : ndarray of shape (R, 2 + C)
        Each region's mode as (x, y, range features...), in pixels and feature units.
    filtered_image_ : ndarray
        Every pixel replaced by the range value of its own mode: uint8 RGB (or gray) for colour
        features, else (H, W, C) floats.
    pixel_modes_ : ndarray of shape (H, W, 2 + C)
        Every pixel's mode.
    n_iter_, mean_iter_ : int, float
        The most iterations of any pixel, and the mean.
    """

    def __init__(
        self,
        spatial_bandwidth: float = 7.0,
        range_bandwidth: float | Mapping[str, float] = 6.5,
        kernel: str = "flat",
        min_region_size: int = 20,
        *,
        features: str = "edison",
        merge_distance: float = 0.5,
        max_iter: int = 100,
        tol: float = 0.1,
        max_work: float = 2e10,
        speedup: int = 0,
    ) -> None:
        self.spatial_bandwidth = spatial_bandwidth
        self.range_bandwidth = range_bandwidth
        self.kernel = kernel
        self.min_region_size = min_region_size
        self.features = features
        self.merge_distance = merge_distance
        self.max_iter = max_iter
        self.tol = tol
        self.max_work = max_work
        self.speedup = speedup

    def _range_scale(self, layout: list[tuple[str, slice]], n_features: int) -> np.ndarray:
        """Per-column range bandwidth."""
        scale = np.empty(n_features)
        if isinstance(self.range_bandwidth, Mapping):
            groups = {g for g, _ in layout}
            unknown = set(self.range_bandwidth) - groups
            if unknown:
                raise ValueError(
                    f"range_bandwidth names groups {sorted(unknown)} not in features {self.features!r}"
                )
            for g, sl in layout:
                if g not in self.range_bandwidth:
                    raise ValueError(f"range_bandwidth has no value for feature group {g!r}")
                scale[sl] = _check_positive(f"range_bandwidth[{g!r}]", self.range_bandwidth[g])
        else:
            scale[:] = _check_positive("range_bandwidth", self.range_bandwidth)
        return scale

    def fit(self, image: Any, y: Any = None) -> MeanShiftSegmenter:
        """Segment ``image`` (gray, RGB or RGBA array); ``y`` is ignored."""
        image = check_image(image)
        hs = _check_positive("spatial_bandwidth", self.spatial_bandwidth)
        kernel = _check_kernel(self.kernel)
        min_size = check_positive_int(self.min_region_size, "min_region_size", 0)
        merge = _check_positive("merge_distance", self.merge_distance)
        max_iter = check_positive_int(self.max_iter, "max_iter", 1)
        tol = _check_positive("tol", self.tol)
        speedup = self.speedup
        if isinstance(speedup, bool) or speedup not in (0, 1, 2):
            raise ValueError(f"speedup must be 0 (exact), 1 or 2; got {speedup!r}")
        layout = feature_layout(self.features)
        if any(g == "xy" for g, _ in layout):
            raise ValueError(
                "features must not include 'xy': the spatial bandwidth covers position"
            )
        h, w = image.shape[:2]
        window = min(np.pi * (SUPPORT[kernel] * hs) ** 2 + 1, h * w)
        work = h * w * window * 10  # about 10 iterations per pixel on photos
        if work > self.max_work:
            raise ValueError(
                f"mean-shift with spatial_bandwidth={hs:g} ({kernel}) on a {w}x{h} image would visit "
                f"about {work:.1e} pixels (~{work / 2e8:.0f} s on 2 cores); lower spatial_bandwidth, "
                f"downscale the image, or raise max_work"
            )
        modes, n_iter, scale, nc, lightness = self._climb(
            image, layout, hs, kernel, max_iter, tol, speedup
        )
        pm = modes.reshape(h * w, -1)
        values = pm[:, 2:] * scale  # each pixel's mode in range units
        labels, region_modes, n = fuse_regions(
            values.reshape(h, w, -1), scale, min_size, CONNECT, merge, lightness
        )
        if n == h * w and h * w > 1:
            warnings.warn(
                f"every pixel is its own mode: the bandwidths (hs={hs:g}, hr={self.range_bandwidth}) "
                "are too small for this image; increase them",
                stacklevel=2,
            )
        n_final = len(region_modes)
        flat = labels.ravel()
        cnt = np.bincount(flat, minlength=n_final).astype(np.float64)
        final_modes = np.stack(
            [np.bincount(flat, weights=col, minlength=n_final) for col in pm.T], axis=1
        )
        final_modes /= cnt[:, None]

        def to_units(m: np.ndarray) -> np.ndarray:  # (y, x, r/hr...) -> (x, y, r...)
            return np.column_stack([m[:, 1], m[:, 0], m[:, 2:] * scale])

        self.__dict__.pop("_filtered", None)
        self.labels_ = labels
        self.n_regions_ = n_final
        self.n_modes_ = n
        self.modes_ = to_units(final_modes)
        self.pixel_modes_ = to_units(pm).reshape(h, w, -1)
        self.n_iter_ = int(n_iter.max())
        self.mean_iter_ = float(n_iter.mean())
        self.spatial_bandwidth_ = hs
        self.range_scale_ = scale
        self.n_features_in_ = 2 + nc  # position and the range features
        return self

    def _climb(self, image, layout, hs, kernel, max_iter, tol, speedup):
        """Every pixel's window climbed to its mode by the compiled kernels: (modes (H, W, 2 + C)
        in pixels and range bandwidths, iterations (H, W), range scale, C, whether the first
        channel is a lightness)."""
        h, w = image.shape[:2]
        F = pixel_features(image, self.features)
        scale = self._range_scale(layout, F.shape[1])
        pad = MS.pad_columns(SUPPORT[kernel] * hs)
        nc = F.shape[1]
        # one or two channels run in the fast three-channel kernel: zero channels change nothing
        nk = 3 if nc <= 3 else nc
        R = np.zeros((nk, h, w + 2 * pad), dtype=np.float32)
        R[:, :, :pad] = MS.FAR  # padding no window accepts, so no bounds test is needed
        R[:, :, pad + w :] = MS.FAR
        R[:nc, :, pad : pad + w] = (F / scale).T.reshape(-1, h, w)
        modes = np.empty((h, w, 2 + nk))
        n_iter = np.zeros((h, w), dtype=np.int64)
        lightness = layout[0][0] in ("edison", "luv", "lab", "gray")  # first channel is L*
        rscale2 = np.ones(nk)
        rscale2[:nc] = scale**2  # the stopping rule measures shifts in feature units
        climb = (R, w, pad, hs, KERNELS[kernel], SUPPORT[kernel], max_iter, tol, modes, n_iter)
        if nk == 3:  # EDISON: L* differences count twice in bright windows (L* > 80)
            bright = 80.0 / scale[0] if lightness else np.inf
            MS.image_modes3(*climb, bright, rscale2, speedup)
        else:
            MS.image_modes(*climb, rscale2)
        return modes[:, :, : 2 + nc], n_iter, scale, nc, lightness

    def fit_predict(self, image: Any, y: Any = None) -> np.ndarray:
        """:meth:`fit`, then the image's region labels."""
        return self.fit(image).labels_

    @property
    def filtered_image_(self) -> np.ndarray:
        """Every pixel replaced by the range value of its mode (computed on first access)."""
        if "_filtered" not in self.__dict__:
            if not hasattr(self, "pixel_modes_"):
                raise AttributeError("filtered_image_ exists after fit(image)")
            self._filtered = _range_to_image(self.pixel_modes_[:, :, 2:], self.features)
        return self._filtered


def _range_to_image(values: np.ndarray, features: str) -> np.ndarray:
    """Range features back to a displayable uint8 image where the feature space is a colour
    space; other feature spaces are returned as float32."""
    from skimage import color

    spec = features.strip().lower()
    if spec == "lab":
        rgb = color.lab2rgb(values)
    elif spec == "luv":
        rgb = color.luv2rgb(values)
    elif spec == "edison":
        from ..features import edison_rgb

        rgb = edison_rgb(values)
    elif spec in ("rgb", "gray"):
        rgb = values / 100.0
    else:
        return values.astype(np.float32)
    out = np.round(np.clip(rgb, 0, 1) * 255).astype(np.uint8)
    return out[:, :, 0] if spec == "gray" else out
