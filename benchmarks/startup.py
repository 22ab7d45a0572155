"""Startup: ``seglab segment PHOTO`` as a new user meets it, cold (a fresh numba cache folder, as
right after ``pip install``) and warm (the same command again), for k-means and mean-shift on
several photos and sizes.

Each run is a new process, timed end to end (interpreter start, imports, reading, clustering,
the pictures and summary.json), with the package's bytecode compiled first, as ``pip install``
does. Every command runs twice: with the compiled C kernels (the default where the package was
built with a C compiler: nothing is compiled at run time) and, as the reference measured in the
same run, with their numba twins (``SEGLAB_KERNELS=numba``: what an install without a compiler
gets, the kernels compiled on first use). Also printed: numba's own floor, a process that imports
numba and calls one cached compiled function. Targets (issue 24): cold within 5 s, warm within
1 s at 0.5 MP. ``--write`` puts the table into benchmarks/RESULTS.md.

    python benchmarks/startup.py --write
    python benchmarks/startup.py --photos chelsea --methods kmeans
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data
from skimage.transform import resize

try:
    from _results import cold_and_warm, write_section
except ImportError:  # run as a module
    from benchmarks._results import cold_and_warm, write_section

PHOTOS = ("chelsea", "coffee", "astronaut", "rocket")
FLOOR = """
import numpy as np
from numba import njit
@njit(cache=True)
def total(x):
    s = 0.0
    for v in x:
        s += v
    return s
total(np.ones(3))
"""


def write_photo(name: str, megapixels: float, folder: Path) -> Path:
    img = getattr(data, name)()[..., :3]
    scale = np.sqrt(megapixels * 1e6 / (img.shape[0] * img.shape[1]))
    shape = (round(img.shape[0] * scale), round(img.shape[1] * scale))
    img = (resize(img, shape, order=1, anti_aliasing=True) * 255).astype(np.uint8)
    path = folder / f"{name}-{megapixels:g}mp.png"
    Image.fromarray(img).save(path)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--photos", default=",".join(PHOTOS), help="scikit-image photo names")
    ap.add_argument("--mp", default="0.5,2", help="sizes in megapixels, comma-separated")
    ap.add_argument("--methods", default="kmeans,meanshift")
    ap.add_argument("--kernels", default="c,numba", help="SEGLAB_KERNELS values to compare")
    ap.add_argument("--write", action="store_true", help="write the table into RESULTS.md")
    args = ap.parse_args()
    seglab = [sys.executable, "-m", "seglab", "segment"]
    import compileall

    import seglab as package

    # as after `pip install`: the bytecode is there, numba's cache is not
    compileall.compile_dir(Path(package.__file__).parent, quiet=1)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        floor_file = folder / "floor.py"
        floor_file.write_text(FLOOR)
        _, floor = cold_and_warm([sys.executable, str(floor_file)])
        print(f"numba floor (import + one cached call): {floor:.2f} s", flush=True)
        for mp in (float(v) for v in args.mp.split(",")):
            for name in args.photos.split(","):
                photo = write_photo(name, mp, folder)
                for method in args.methods.split(","):
                    out = folder / f"out-{method}-{photo.stem}"
                    argv = [*seglab, str(photo), "--method", method, "--out", str(out), "--quiet"]
                    for kernels in args.kernels.split(","):
                        cold, warm = cold_and_warm(_fresh_out(argv, out), kernels=kernels)
                        rows.append((mp, name, method, kernels, cold, warm))
                        print(f"{mp:g} MP {name:10s} {method:9s} {kernels:5s} cold {cold:5.2f} s  "
                              f"warm {warm:5.2f} s", flush=True)  # fmt: skip
    text = report(rows, floor)
    print()
    print(text)
    if args.write:
        write_section("Startup, cold and warm (`python benchmarks/startup.py --write`)", text)


def _fresh_out(argv: list[str], out: Path) -> list[str]:
    """The command run through a shell that first removes the output folder (every run writes)."""
    import shlex

    return ["sh", "-c", f"rm -rf {shlex.quote(str(out))} && " + shlex.join(argv)]


def report(rows: list[tuple], floor: float) -> str:
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    lines = [
        f"Machine: {machine}, Python {platform.python_version()}. `seglab segment PHOTO --method "
        "M` end to end in a new process (default features and pictures); cold = a fresh "
        "`NUMBA_CACHE_DIR`, warm = best of 2 runs after it. Kernels `c`: the C extension built "
        "at install (the default); `numba`: their numba twins, the reference in the same run "
        "(`SEGLAB_KERNELS=numba`, compiled on first use). numba's own floor (importing it and "
        f"calling one cached function): **{floor:.2f} s**. Targets (issue 24): cold <= 5 s, "
        "warm <= 1 s at 0.5 MP.",
        "",
        "| size | method | kernels | photos | cold s median (worst) | warm s median (worst) |",
        "|---|---|---|---:|---:|---:|",
    ]
    keys = sorted({(r[0], r[2], r[3]) for r in rows})
    for mp, method, kernels in keys:
        sel = [r for r in rows if r[0] == mp and r[2] == method and r[3] == kernels]
        cold = [r[4] for r in sel]
        warm = [r[5] for r in sel]
        lines.append(
            f"| {mp:g} MP | {method} | {kernels} | {len(sel)} | {np.median(cold):.2f} "
            f"({max(cold):.2f}) | {np.median(warm):.2f} ({max(warm):.2f}) |"
        )
    lines += ["", "Photos: " + ", ".join(sorted({r[1] for r in rows})) + " (scikit-image)."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
