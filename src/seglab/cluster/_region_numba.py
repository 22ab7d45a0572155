"""The region flood fill in numba: the fallback of the compiled one in ``_ckernels.c`` (see
:mod:`._region_kernels`)."""

from __future__ import annotations

from .._jit import kernel


@kernel(nogil=True)
def _connect(values, threshold, diagonal, labels, stack):  # pragma: no cover - compiled
    """``_region_kernels.connect_chained`` into ``labels`` (all -1 on entry); returns the number
    of regions."""
    h, w, c = values.shape
    n = 0
    for start in range(h * w):
        if labels[start] >= 0:
            continue
        labels[start] = n
        top = 0
        stack[0] = start
        while top >= 0:
            p = stack[top]
            top -= 1
            y = p // w
            x = p % w
            for yy in range(max(0, y - 1), min(h, y + 2)):
                for xx in range(max(0, x - 1), min(w, x + 2)):
                    q = yy * w + xx
                    if labels[q] >= 0 or (not diagonal and yy != y and xx != x):
                        continue
                    near = True
                    for k in range(c):
                        if abs(values[y, x, k] - values[yy, xx, k]) >= threshold:
                            near = False
                    if near:
                        labels[q] = n
                        top += 1
                        stack[top] = q
        n += 1
    return n
