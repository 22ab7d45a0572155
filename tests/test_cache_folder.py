"""numba's cache where the package folder is read-only: the kernels are cached in the user's
cache folder, and, with a read-only home too, in the temporary directory (never an import error).

The package folder of this checkout is writable by its owner, so the check runs the child as
another user (``nobody``) when the tests run as root, for whom the folder is read-only."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

import seglab

pytestmark = pytest.mark.slow  # each child compiles a kernel in an empty cache

PACKAGE = Path(seglab.__file__).parent

CHILD = """
import numpy as np
from seglab.cluster import label_regions
from seglab.cluster._region_numba import _connect
regions, n = label_regions(np.array([[1, 1, 2], [2, 2, 1]]))
assert n == 4, n
print(_connect._cache._cache_path)
print(sum(_connect.stats.cache_hits.values()))
"""


def _run_as_nobody(env: dict) -> subprocess.CompletedProcess:
    def drop() -> None:
        os.setgid(65534)
        os.setuid(65534)

    return subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True,
                          preexec_fn=drop, timeout=300, cwd="/")  # fmt: skip


@pytest.fixture
def nobody_tmp():
    """A folder that ``nobody`` can reach (pytest's own are private to root)."""
    path = Path(tempfile.mkdtemp(prefix="seglab-cache-test-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def nobody_env():
    if not hasattr(os, "getuid") or os.getuid() != 0:
        pytest.skip("needs root, to run a child as a user for whom the package is read-only")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NUMBA_", "XDG_"))}
    env["PYTHONPATH"] = str(PACKAGE.parent)
    env["SEGLAB_KERNELS"] = "numba"  # the fallback of the C kernels is what numba caches
    return env


def test_read_only_package_caches_in_the_users_cache_folder(nobody_tmp, nobody_env):
    home = nobody_tmp / "home"
    home.mkdir()
    os.chown(home, 65534, 65534)
    env = {**nobody_env, "HOME": str(home)}
    first = _run_as_nobody(env)
    assert first.returncode == 0, first.stderr
    cache_path, _ = first.stdout.split()
    assert Path(cache_path).is_relative_to(home / ".cache" / "numba"), cache_path
    assert any(Path(cache_path).glob("*.nbi")), "nothing was cached"
    second = _run_as_nobody(env)
    assert second.returncode == 0, second.stderr
    assert int(second.stdout.split()[1]) >= 1  # loaded from the cache, not compiled again


def test_read_only_home_caches_in_the_temporary_folder(nobody_tmp, nobody_env):
    scratch = nobody_tmp / "scratch"
    scratch.mkdir()
    os.chown(scratch, 65534, 65534)
    env = {**nobody_env, "HOME": "/nonexistent", "TMPDIR": str(scratch)}
    run = _run_as_nobody(env)
    assert run.returncode == 0, run.stderr
    assert Path(run.stdout.split()[0]).is_relative_to(scratch / "seglab-numba-cache-65534")
    assert "RuntimeWarning" not in run.stderr
