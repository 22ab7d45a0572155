"""How seglab compiles its kernels: numba's ``njit`` with an on-disk cache that works wherever the
package is installed.

numba caches compiled code in the package's ``__pycache__`` and, where that folder is read-only
(a system or container install), in the user's cache folder (``~/.cache/numba``, or
``$XDG_CACHE_HOME/numba``). Where neither can be written (a read-only home too), numba refuses
``cache=True`` outright, at import; :func:`kernel` then caches in a folder of the system's
temporary directory, and compiles without a cache only if that fails as well. ``NUMBA_CACHE_DIR``
overrides all of this, as numba documents.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Callable
from typing import Any

import numba

__all__ = ["kernel"]


def _temporary_cache_dir() -> str | None:
    """A private cache folder under the temporary directory, or None if none can be made."""
    uid = os.getuid() if hasattr(os, "getuid") else "user"
    path = os.path.join(tempfile.gettempdir(), f"seglab-numba-cache-{uid}")
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError:
        return None
    return path


def kernel(**options: Any) -> Callable[[Callable], Callable]:
    """``numba.njit(cache=True, **options)``, falling back as the module docstring says."""

    def decorate(fn: Callable) -> Callable:
        try:
            return numba.njit(cache=True, **options)(fn)
        except RuntimeError as exc:  # "cannot cache function ...: no locator available"
            if "cannot cache" not in str(exc):
                raise
        if not numba.config.CACHE_DIR:
            path = _temporary_cache_dir()
            if path is not None:
                numba.config.CACHE_DIR = path  # read by numba whenever a cache is set up
                try:
                    return numba.njit(cache=True, **options)(fn)
                except RuntimeError:
                    pass
        warnings.warn(
            "no writable folder for numba's cache: seglab's kernels are compiled in every new "
            "process; set NUMBA_CACHE_DIR to a writable folder to keep them",
            RuntimeWarning,
            stacklevel=2,
        )
        return numba.njit(**options)(fn)

    return decorate
