"""Which implementation of the clustering kernels runs: the C extension built with the package
(``seglab.cluster._ckernels``: nothing to compile at run time, numba never imported) or the same
loops in numba (compiled on first use, then cached; see :mod:`seglab._jit`).

``SEGLAB_KERNELS`` chooses: ``auto`` (the default: C when it was built, else numba), ``c`` (fail
when it was not built) or ``numba``. :func:`use` changes it in a running process (tests and
benchmarks compare the two).
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

__all__ = ["BACKENDS", "compiled_available", "fast_kmeans", "kernels", "name", "use"]

BACKENDS = ("auto", "c", "numba")
_choice: str | None = None  # None: read SEGLAB_KERNELS


def _chosen() -> str:
    choice = _choice if _choice is not None else os.environ.get("SEGLAB_KERNELS", "auto")
    choice = choice.strip().lower() or "auto"
    if choice not in BACKENDS:
        raise ValueError(f"SEGLAB_KERNELS must be one of {', '.join(BACKENDS)}; got {choice!r}")
    return choice


def compiled_available() -> bool:
    """Whether the C extension was built (it is optional: a build without a C compiler skips it)."""
    try:
        importlib.import_module("seglab.cluster._ckernels")
    except ImportError:
        return False
    return True


def name() -> str:
    """``"c"`` or ``"numba"``: the implementation :func:`kernels` returns now."""
    choice = _chosen()
    if choice == "auto":
        return "c" if compiled_available() else "numba"
    if choice == "c" and not compiled_available():
        raise ImportError(
            "SEGLAB_KERNELS=c but seglab's C extension was not built (no C compiler when it was "
            "installed?): reinstall with a compiler, or set SEGLAB_KERNELS=auto"
        )
    return choice


def kernels(numba_module: str) -> ModuleType:
    """The module whose kernels to call: the C extension, or ``numba_module`` (a module of
    ``seglab.cluster`` holding the same kernels in numba, imported only when chosen)."""
    if name() == "c":
        return importlib.import_module("seglab.cluster._ckernels")
    return importlib.import_module(f"seglab.cluster.{numba_module}")


def use(backend: str | None) -> None:
    """Run the kernels with ``backend`` (one of :data:`BACKENDS`) from now on; None goes back to
    ``SEGLAB_KERNELS``."""
    global _choice
    if backend is not None and backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)} or None; got {backend!r}")
    _choice = backend


def fast_kmeans(enable: bool | None = None) -> bool:
    """Whether k-means's Hamerly step runs the C extension's AVX-512 kernel (16 points per
    register through every stage; where the CPU lacks AVX-512, or K > 16 or more than 8
    features, the portable C loops run, with the same results). ``enable`` switches it off or
    back on (benchmarks and tests compare the two); returns the state now in force."""
    if name() != "c":
        return False
    from . import _ckernels

    if enable is not None:
        _ckernels._set_fast_kmeans(bool(enable))
    return bool(_ckernels._set_fast_kmeans(None))
