"""Shared by the benchmark scripts: timing, and benchmarks/RESULTS.md as one file of sections,
each rewritten by the script that owns it."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from seglab.io import atomic_write_bytes

RESULTS = Path(__file__).with_name("RESULTS.md")
HEADER = "# Benchmark results\n\nEach section is written by the script named in its title.\n"


def write_section(title: str, body: str) -> None:
    """Replace (or append) the ``## title`` section of RESULTS.md with ``body``."""
    text = RESULTS.read_text() if RESULTS.exists() else HEADER
    section = f"## {title}\n\n{body.strip()}\n"
    pattern = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text).rstrip() + "\n"
    else:
        text = text.rstrip() + "\n\n" + section
    atomic_write_bytes(RESULTS, text.encode())


def best_time(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """Best wall time of ``repeats`` calls, and the last result."""
    best, out = float("inf"), None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def save_panels(path: Path, panels: list[tuple[Any, str]], width: float = 2.2, height: float = 5):
    """Images side by side, each with its title (grey images on a 0..255 scale), saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from seglab.io import save_figure

    fig, axes = plt.subplots(1, len(panels), figsize=(width * len(panels), height))
    for ax, (im, title) in zip(axes, panels, strict=True):
        ax.imshow(im, cmap="gray", vmin=0, vmax=255)
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    save_figure(path, fig)
    plt.close(fig)


def cold_and_warm(argv: list[str], repeats: int = 2, kernels: str = "auto") -> tuple[float, float]:
    """Wall seconds of a command in a fresh numba cache folder (cold: every numba kernel it uses
    compiled), and the best of ``repeats`` runs after it with that cache (warm). Each run is a new
    process; ``kernels`` is its ``SEGLAB_KERNELS`` (auto: the C extension where it was built)."""
    import os
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory(prefix="seglab-cold-cache-") as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache, "SEGLAB_KERNELS": kernels}
        env.pop("PYTHONDONTWRITEBYTECODE", None)  # an installed package has its bytecode
        times = []
        for _ in range(1 + repeats):
            t = time.perf_counter()
            subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL)
            times.append(time.perf_counter() - t)
    return times[0], min(times[1:])
