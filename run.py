#!/usr/bin/env python3
"""One entry point for a fresh clone: `python3 run.py demo`, `python3 run.py test` and
`python3 run.py docs`.

Needs only Python 3.10+. On first use it creates a virtual environment in .venv and installs
seglab into it (editable, with the test tools); later runs reuse it, reinstalling only when
pyproject.toml, setup.py or the C kernels have changed (the reinstall rebuilds them).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")
STAMP = VENV / ".seglab-installed"


def _build_digest() -> str:
    """What the installed environment was built from: the project's metadata and C sources."""
    c_sources = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "src").rglob("*.[ch]"))
    sources = ["pyproject.toml", "setup.py", *c_sources]
    h = hashlib.sha256()
    for name in sources:
        h.update(name.encode() + b"\0" + (ROOT / name).read_bytes())
    return h.hexdigest()


def ensure_env() -> None:
    if sys.version_info < (3, 10):  # noqa: UP036 - run.py must explain itself on old Pythons
        sys.exit(f"seglab needs Python 3.10 or newer; this is {sys.version.split()[0]}")
    digest = _build_digest()
    if PYTHON.exists() and STAMP.exists() and STAMP.read_text().strip() == digest:
        return
    if not PYTHON.exists():
        print(f"[run.py] creating a virtual environment in {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True, clear=VENV.exists()).create(VENV)
    print("[run.py] installing seglab and its dependencies (first run: a few minutes)", flush=True)
    pip = [str(PYTHON), "-m", "pip", "install", "--disable-pip-version-check"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run([*pip, "-e", f"{ROOT}[dev]"], check=True)
    STAMP.write_text(digest)


def ensure_docs() -> None:
    """The docs extra (Sphinx, sphinx-gallery, the theme) in the same environment."""
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    stamp = VENV / ".seglab-docs-installed"
    if stamp.exists() and stamp.read_text().strip() == digest:
        return
    print("[run.py] installing the docs tools", flush=True)
    pip = [str(PYTHON), "-m", "pip", "install", "--disable-pip-version-check"]
    subprocess.run([*pip, "-e", f"{ROOT}[dev,docs]"], check=True)
    stamp.write_text(digest)


def build_docs(extra: list[str]) -> int:
    """Sphinx, warnings as errors, into docs/_build/html; then every page in a real browser."""
    ensure_docs()
    html = ROOT / "docs" / "_build" / "html"
    env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONWARNINGS": "ignore::DeprecationWarning"}
    cmd = [str(PYTHON), "-m", "sphinx", "-W", "--keep-going", "-b", "html", "docs", str(html)]
    status = subprocess.call([*cmd, *extra], cwd=ROOT, env=env)
    if status == 0:
        status = subprocess.call([str(PYTHON), "docs/check_site.py", str(html)], cwd=ROOT)
    if status == 0:
        print(f"[run.py] the documentation is in {html / 'index.html'}")
    return status


def main() -> int:
    commands = {
        "demo": "the lecture on a few images: seglab-demo/index.html",
        "test": "run the test suite",
        "docs": "build the documentation into docs/_build/html",
    }
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        print("usage: python3 run.py {demo|test|docs} [extra arguments]")
        for name, what in commands.items():
            print(f"  {name:5s} {what}")
        return 2
    ensure_env()
    cmd, extra = sys.argv[1], sys.argv[2:]
    if cmd == "docs":
        return build_docs(extra)
    if cmd == "demo":
        argv = [str(BIN / "seglab"), "demo", *extra]
    else:
        argv = [str(PYTHON), "-m", "pytest", *extra]
    return subprocess.call(argv, cwd=ROOT)


if __name__ == "__main__":
    sys.exit(main())
