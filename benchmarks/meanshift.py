"""Mean-shift fidelity and speed: seglab against EDISON (the reference) and OpenCV, photo by photo.

For each photo (scikit-image's astronaut, coffee, chelsea, rocket, immunohistochemistry,
hubble_deep_field, retina; none was used to tune seglab), at 481x321 (the BSDS size) and at about
1 MP, with hs = 7, hr = 6.5, a flat kernel and a minimum region of 20 pixels:

* EDISON (pymeanshift 0.2.2, built here: ``_edison.py``) at each speed-up level: 0 exact,
  1 medium, 2 high; its exact segmentation is the reference;
* seglab ``MeanShiftSegmenter(speedup=0|1|2)``: agreement with EDISON exact (adjusted Rand index of
  the labels) and time;
* ``cv2.pyrMeanShiftFiltering(img, 7, 6.5, maxLevel=0)``: the filtered image only (no regions).

Times are the best of ``--repeats`` after a warm-up (this machine is shared: rerun before writing
a figure down). The fidelity target: seglab exact agrees with EDISON exact at least as well as
EDISON's medium speed-up does; the speed target: the fastest seglab mode that meets it takes no
longer than OpenCV's filtering. ``--write`` puts the tables into RESULTS.md.

    python benchmarks/meanshift.py --write
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import time
from pathlib import Path

import numpy as np
from skimage import data
from skimage.transform import resize

from seglab.cluster import MeanShiftSegmenter

try:
    from _edison import build
    from _results import cold_and_warm, write_section
except ImportError:  # run as a module
    from benchmarks._edison import build
    from benchmarks._results import cold_and_warm, write_section

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry",
          "hubble_deep_field", "retina")  # fmt: skip
SIZES = {"481x321": (321, 481), "1 MP": (816, 1224)}


def photo(name: str, size: tuple[int, int]) -> np.ndarray:
    img = getattr(data, name)()
    img = np.stack([img] * 3, -1) if img.ndim == 2 else img[..., :3]
    shape = size if img.shape[0] <= img.shape[1] else size[::-1]
    return (resize(img, shape, anti_aliasing=True) * 255).round().astype(np.uint8)


def best(fn, repeats: int):
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "seglab-bench" / "edison"


def edison_run(edison, img: np.ndarray, name: str, size: str, level: int):
    """(seconds, labels) of EDISON at ``level`` on ``img``: one run, cached on disk by image
    content (EDISON is deterministic; its exact mode takes minutes at 1 MP)."""
    digest = hashlib.sha256(img.tobytes() + bytes([level])).hexdigest()[:16]
    path = CACHE / f"{name}-{size.replace(' ', '')}-{level}-{digest}.npz"
    if path.exists():
        with np.load(path) as z:
            return float(z["seconds"]), z["labels"]
    seconds, labels = best(lambda: edison.segment(img, 7, 6.5, 20, level)[1], 1)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez(path, seconds=seconds, labels=labels)
    return seconds, labels


FIRST_FIT = """
from skimage import data
from seglab.cluster import MeanShiftSegmenter
MeanShiftSegmenter(speedup={speedup}).fit(data.{photo}()[..., :3])
"""


def first_fit(photo: str) -> str:
    """One line: a new process's first segmentation per speed-up, in a fresh numba cache folder
    (cold) and again (warm), with the C kernels and with their numba twins."""
    import sys

    parts = []
    for sp in (0, 1, 2):
        argv = [sys.executable, "-c", FIRST_FIT.format(photo=photo, speedup=sp)]
        times = [cold_and_warm(argv, kernels=kernels) for kernels in ("c", "numba")]
        (c_cold, c_warm), (nb_cold, nb_warm) = times
        parts.append(
            f"speed-up {sp}: C cold {c_cold:.2f} s, warm {c_warm:.2f} s (numba cold "
            f"{nb_cold:.2f} s, warm {nb_warm:.2f} s)"
        )
    return (
        f"First segmentation in a new process ({photo} at its own size, imports included; cold = "
        f"a fresh numba cache; C kernels the default, numba's with `SEGLAB_KERNELS=numba`): "
        f"{'; '.join(parts)}."
    )


def main() -> None:
    import cv2
    from sklearn.metrics import adjusted_rand_score as ari

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--photos", default=",".join(PHOTOS))
    ap.add_argument("--sizes", default=",".join(SIZES))
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    edison = build()
    cv2.setNumThreads(os.cpu_count() or 1)
    startup = first_fit(args.photos.split(",")[-1])
    print(startup, flush=True)
    sections = []
    for size_name in args.sizes.split(","):
        rows, ratios, fastest, exact_ok = [], {0: [], 1: [], 2: []}, [], 0
        for name in args.photos.split(","):
            img = photo(name, SIZES[size_name])
            for sp in (0, 1, 2):  # compile / warm up
                MeanShiftSegmenter(speedup=sp).fit(img[:48, :48])
            ed = {level: edison_run(edison, img, name, size_name, level) for level in (0, 1, 2)}
            exact = ed[0][1].ravel()
            tc, _ = best(
                lambda im=img: cv2.pyrMeanShiftFiltering(im, 7, 6.5, maxLevel=0), args.repeats
            )
            ours = {}
            for sp in (0, 1, 2):
                t, seg = best(
                    lambda sp=sp, im=img: MeanShiftSegmenter(speedup=sp).fit(im), args.repeats
                )
                ours[sp] = (t, ari(exact, seg.labels_.ravel()))
                ratios[sp].append(tc / t)
            med_ari = ari(exact, ed[1][1].ravel())
            faithful = [sp for sp in (0, 1, 2) if ours[sp][1] >= med_ari]
            exact_ok += 0 in faithful
            if faithful:  # the fastest mode that meets the fidelity target on this photo
                fastest.append(tc / min(ours[sp][0] for sp in faithful))
            row = (
                f"| {name} | {ed[0][0]:.2f} ({int(exact.max()) + 1}) | {ed[1][0]:.2f}: "
                f"{med_ari:.3f} | {ed[2][0]:.2f}: {ari(exact, ed[2][1].ravel()):.3f} | {tc:.3f} |"
            )
            for sp in (0, 1, 2):
                t, a = ours[sp]
                mark = "**" if a >= med_ari else ""
                row += f" {t:.3f}: {mark}{a:.3f}{mark} |"
            rows.append(row)
            print(size_name, row, flush=True)
        lines = [
            f"### {size_name}",
            "",
            "| photo | EDISON exact s (regions) | EDISON medium s: ARI | EDISON high s: ARI | "
            "cv2 filter s | seglab exact s: ARI | seglab speedup=1 s: ARI | "
            "seglab speedup=2 s: ARI |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
            *rows,
            "",
        ]
        for sp in (0, 1, 2):
            r = np.array(ratios[sp])
            lines.append(
                f"- cv2 time / seglab speedup={sp} time: median **{np.median(r):.2f}**, worst "
                f"{r.min():.2f} (over {len(r)} photos; above 1 = seglab faster)"
            )
        if fastest:
            f = np.array(fastest)
            lines.append(
                f"- seglab exact meets the fidelity target on {exact_ok} of {len(ratios[0])} "
                f"photos; cv2 time / time of the fastest seglab mode that meets it, photo by "
                f"photo: median **{np.median(f):.2f}**, worst **{f.min():.2f}** "
                f"({len(f)} photos)"
            )
        sections.append("\n".join(lines))
    head = (
        f"Machine: {platform.machine()}, {os.cpu_count()} cores; OpenCV {cv2.__version__}; "
        "EDISON = pymeanshift 0.2.2 built from its sdist. hs = 7, hr = 6.5, flat kernel, "
        "minimum region 20; seglab with its defaults (EDISON's L*u*v*, filter and grouping). "
        "ARI = adjusted Rand index against EDISON exact; **bold** where seglab agrees with EDISON "
        f"exact at least as well as EDISON medium does. Times: best of {args.repeats} (EDISON: one "
        "run, cached under ~/.cache/seglab-bench). The photos are scikit-image's; none was used "
        "to tune seglab."
    )
    table = head + "\n\n" + startup + "\n\n" + "\n\n".join(sections)
    print()
    print(table)
    if args.write:
        write_section("Mean-shift fidelity and speed (`python benchmarks/meanshift.py --write`)",
                      table)  # fmt: skip


if __name__ == "__main__":
    main()
