"""Mean-shift kernels for images: every pixel's window climbs in the joint spatial-range domain
over the padded image (see :mod:`._meanshift_common` for the kernels' ids and the window's
normalisation). The three-channel climb, the common case, is compiled C (``_ckernels.c``, built
with the package) or numba (``_meanshift_image_numba.py``), as :mod:`._kernel_backend` picks;
the generic climb (any other number of channels) is numba's."""

from __future__ import annotations

import numpy as np

from .._threads import parallel_for
from ._kernel_backend import kernels
from ._meanshift_common import BAND, BLOCK, FAR

__all__ = ["BAND", "BLOCK", "FAR", "image_modes", "image_modes3", "pad_columns"]


def pad_columns(rs: float) -> int:
    """Columns of padding each side so that every block of a window stays inside the array."""
    return BLOCK * int(np.ceil((np.ceil(rs) + BLOCK + 1) / BLOCK))


def image_modes(R, w, pad, hs, kernel, support, max_iter, tol, modes, n_iter, rscale2) -> None:
    """Mean-shift every pixel of an image in the joint spatial-range domain (any number of range
    channels; see ``_meanshift_image_numba._image_modes`` for the arguments). Threads take two
    rows at a time."""
    from ._meanshift_image_numba import _image_modes

    parallel_for(_image_modes, R.shape[1], R, w, pad, hs, kernel, support, max_iter, tol, modes,
                 n_iter, rscale2, grain=2)  # fmt: skip


def image_modes3(
    R, w, pad, hs, kernel, support, max_iter, tol, modes, n_iter, bright, rscale2, speedup=0
):
    """:func:`image_modes` for three range channels (colour), the common case, with the channels
    in registers and one fused loop per block of three window rows in float32 (sixteen lanes per
    SIMD register; each block's sums are added to float64 totals): about ten times faster than
    the generic kernel. ``kernel`` is a kernel id; each (kernel, speed-up) has its own compiled
    instance, without the branches of the others.

    Where the window's first channel (L*) exceeds ``bright`` (in bandwidths; inf: never),
    differences of that channel count twice, as EDISON's filter does for bright colours. Points
    on the window's edge are outside, as in EDISON. Speed-ups (EDISON's): 1, a path that reaches
    a pixel of similar colour takes that pixel along, or stops at its mode if it has one; 2, also
    the window points of very similar colour join the path. Pixels so assigned report 0
    iterations. Threads take bands of rows as they become free (convergence varies by row)."""
    band = BAND if speedup > 0 else 1  # the exact mode shares nothing: rows balance best
    n_bands = (R.shape[1] + band - 1) // band
    grain = 1 if speedup > 0 else 2
    impl = kernels("_meanshift_image_numba")
    if hasattr(impl, "_modes3"):  # the C extension: kernel and speed-up are arguments
        parallel_for(impl._modes3, n_bands, R, w, pad, float(hs), int(kernel), int(speedup),
                     float(support), int(max_iter), float(tol), modes, n_iter, float(bright),
                     rscale2, grain=grain)  # fmt: skip
    else:
        parallel_for(impl._MODES3[kernel, speedup], n_bands, R, w, pad, hs, support, max_iter,
                     tol, modes, n_iter, float(bright), rscale2, grain=grain)  # fmt: skip
