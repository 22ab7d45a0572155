from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

#: The repository root: tests find configs and samples from here, wherever pytest runs.
REPO = Path(__file__).resolve().parents[1]
QUICKSTART = str(REPO / "configs" / "quickstart.yaml")


@pytest.fixture(scope="session")
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


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


def _chromium() -> str | None:
    import shutil

    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.fixture(scope="session")
def browser():
    """Headless Chromium driven by Playwright (Debian's chromium: no browser download)."""
    exe = _chromium()
    if exe is None:
        pytest.skip("Chromium is not installed (apt-get install -y chromium; .ci/run does this)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=["--no-sandbox"])
        yield b
        b.close()


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
