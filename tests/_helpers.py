"""Helpers the tests share: pictures, paths, the browser page, one-line errors, tiny runs."""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import numpy as np
import pytest

#: The repository root: tests find configs and samples from here, wherever pytest runs.
REPO = Path(__file__).resolve().parents[1]
QUICKSTART = str(REPO / "configs" / "quickstart.yaml")


def blobs(n_per=300, centers=5, dim=3, spread=1.0, seed=0) -> np.ndarray:
    """Gaussian blobs, deterministic."""
    r = np.random.default_rng(seed)
    locs = r.uniform(-10, 10, size=(centers, dim))
    return np.concatenate([r.normal(loc, spread, size=(n_per, dim)) for loc in locs])


def shapes_image(h=48, w=64, seed=0) -> np.ndarray:
    """A small RGB uint8 picture: background, a red square and a blue disc, plus mild noise."""
    r = np.random.default_rng(seed)
    img = np.zeros((h, w, 3), dtype=np.float64)
    img[:] = (40, 160, 60)
    img[8:24, 8:28] = (200, 30, 30)
    yy, xx = np.mgrid[0:h, 0:w]
    img[(yy - 30) ** 2 + (xx - 45) ** 2 < 100] = (30, 40, 210)
    img += r.normal(0, 6, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def chromium_path() -> str | None:
    import shutil

    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def open_page(browser, url: str, allowed=("file://", "http://127.0.0.1", "data:", "blob:")):
    """A new page at ``url`` that records console errors and requests leaving the machine."""
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.console_errors, page.outside = [], []
    page.on("console", lambda m: page.console_errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: page.console_errors.append(str(e)))
    page.on("request", lambda r: None if r.url.startswith(allowed) else page.outside.append(r.url))
    page.goto(url)
    page.wait_for_load_state("networkidle")
    return page


def broken_images(page) -> list[str]:
    return page.evaluate(
        "Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0))"
        ".map(i => i.src)"
    )


TINY = [
    "data.n_train=8",
    "data.n_val=2",
    "data.n_test=2",
    "data.size=[32, 32]",
    "model.options={width: 4, depth: 2}",
    "train.batch_size=4",
    "train.epochs=1",
]


def train_args(out, *extra):
    args = ["train", QUICKSTART, "--out", str(out), "--quiet"]
    for s in [*TINY, *extra]:
        args += ["--set", s]
    return args


def snapshot(folder):
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def one_error_line(capsys, *words):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("seglab: error:"), err
    for w in words:
        assert w in err[0], err
    return err[0]


def needs(module: str, install: str):
    """Skip a test (with the install command as reason) where an optional package is absent: the
    skip is per test, so the rest of its file still runs."""
    present = importlib.util.find_spec(module.split(".")[0]) is not None
    return pytest.mark.skipif(not present, reason=f"needs {module}: {install}")
