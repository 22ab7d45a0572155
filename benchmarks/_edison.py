"""EDISON, Comaniciu & Meer's own mean-shift code, as the oracle: pymeanshift 0.2.2 (its sdist on
the package index, GPL) built here with the changes numpy 2 needs. Used by the mean-shift
benchmark and tests; nothing of it ships with seglab."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

# numpy 2 removed these names; pymeanshift.cpp also passes a PyObject* where a PyArrayObject* is
# expected
FIXES = (
    ("NPY_IN_ARRAY", "NPY_ARRAY_IN_ARRAY"),
    ("PyArray_UBYTE", "NPY_UBYTE"),
    ("PyArray_INT)", "NPY_INT)"),
    ("PyArray_NDIM(inputImage)", "PyArray_NDIM((PyArrayObject*)inputImage)"),
    ("PyArray_DIM(inputImage", "PyArray_DIM((PyArrayObject*)inputImage"),
    ("PyArray_DATA(inputImage)", "PyArray_DATA((PyArrayObject*)inputImage)"),
)


def build(folder: str | Path | None = None):
    """Download, patch and build pymeanshift into ``folder`` (a temporary one by default) and
    import it; returns the module, or raises RuntimeError saying what failed."""
    work = Path(folder or tempfile.mkdtemp(prefix="pymeanshift-"))
    work.mkdir(parents=True, exist_ok=True)
    src = work / "pymeanshift-0.2.2"
    if not list(src.glob("_pymeanshift*.so")):
        r = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--no-build-isolation",
             "--no-binary", ":all:", "pymeanshift==0.2.2", "-d", str(work), "-q"],
            capture_output=True, text=True, timeout=180,
        )  # fmt: skip
        archives = list(work.glob("pymeanshift-*.tar.gz"))
        if r.returncode != 0 or not archives:
            raise RuntimeError(f"could not download the pymeanshift sdist: {r.stderr[-300:]}")
        if shutil.which("g++") is None and shutil.which("c++") is None:
            raise RuntimeError("no C++ compiler (g++) to build pymeanshift")
        with tarfile.open(archives[0]) as tar:
            tar.extractall(work, filter="data")
        code = (src / "pymeanshift.cpp").read_text()
        for old, new in FIXES:
            code = code.replace(old, new)
        (src / "pymeanshift.cpp").write_text(code)
        r = subprocess.run([sys.executable, "setup.py", "build_ext", "--inplace"], cwd=src,
                           capture_output=True, text=True, timeout=600)  # fmt: skip
        if r.returncode != 0:
            raise RuntimeError(f"pymeanshift did not build: {r.stderr[-300:]}")
    if str(src) not in sys.path:
        sys.path.insert(0, str(src))
    import pymeanshift

    return pymeanshift
