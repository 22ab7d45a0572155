"""Fixtures shared by the tests; plain helpers are in ``_helpers.py``."""

from __future__ import annotations

import numpy as np
import pytest
from _helpers import chromium_path


@pytest.fixture(scope="session")
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture(scope="session")
def browser():
    """Headless Chromium driven by Playwright (Debian's chromium: no browser download)."""
    exe = chromium_path()
    if exe is None:
        pytest.skip("Chromium is not installed (apt-get install -y chromium; .ci/run does this)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=["--no-sandbox"])
        yield b
        b.close()
