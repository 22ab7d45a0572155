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
