"""Mean-shift speed: seglab MeanShiftSegmenter vs OpenCV, scikit-learn and scikit-image.

On the bundled cat photo resized to 481x321 (the BSDS size), then 2x and 4x the pixels:

* seglab ``MeanShiftSegmenter(hs=7, hr=6.5, flat, min_region_size=20)`` in L*u*v*: every pixel
  run to its fixed point, modes grouped, small regions merged (full labels + modes);
* ``cv2.pyrMeanShiftFiltering(sp=7, sr=6.5, maxLevel=0)`` on the RGB image: the filtered image
  only (no modes, no labels; at most 5 iterations per pixel by default);
* scikit-learn ``MeanShift(bandwidth=1, bin_seeding=True)`` on the same 5-d features scaled by
  the bandwidths (x/hs, y/hs, L*u*v*/hr), on the whole image if it takes under ``--sklearn-budget``
  seconds, else on a regular subsample, reported as such;
* scikit-image ``quickshift`` (its defaults) for scale.

Times are the best of ``--repeats`` after a warm-up. ``--write`` puts the table into RESULTS.md.

    python benchmarks/meanshift.py --write
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import time

import numpy as np
from skimage.transform import resize

from seglab.cluster import MeanShiftSegmenter
from seglab.data import sample_image
from seglab.features import pixel_features

try:
    from _results import best_time, write_section
except ImportError:  # run as a module
    from benchmarks._results import best_time, write_section

HS, HR = 7.0, 6.5


def _sklearn_run(X, queue):
    from sklearn.cluster import MeanShift

    t = time.perf_counter()
    ms = MeanShift(bandwidth=1.0, bin_seeding=True).fit(X)
    queue.put((time.perf_counter() - t, len(ms.cluster_centers_)))


def sklearn_time(img: np.ndarray, budget: float) -> tuple[float, int, int, str]:
    """Time scikit-learn MeanShift on the scaled 5-d features, subsampling (every k-th pixel in
    both directions) until a run finishes within ``budget`` seconds."""
    for step in (1, 2, 4, 8, 16):
        sub = img[::step, ::step]
        h, w = sub.shape[:2]
        yy, xx = np.mgrid[0:h, 0:w] * step
        X = np.column_stack([xx.ravel() / HS, yy.ravel() / HS, pixel_features(sub, "luv") / HR])
        q = mp.get_context("fork").Queue()
        p = mp.get_context("fork").Process(target=_sklearn_run, args=(X, q))
        p.start()
        p.join(budget)
        if p.is_alive():
            p.terminate()
            p.join()
            continue
        seconds, n_modes = q.get()
        note = (
            "whole image" if step == 1 else f"every {step}th pixel in x and y ({len(X):,} pixels)"
        )
        return seconds, n_modes, len(X), note
    return float("nan"), 0, 0, f"did not finish in {budget:.0f} s even on a 1/256 subsample"


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument(
        "--sklearn-budget", type=float, default=600.0, help="seconds per scikit-learn try"
    )
    ap.add_argument("--scales", default="1,2,4", help="pixel-count multiples of 481x321")
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()

    import cv2
    import skimage
    import sklearn
    from skimage.segmentation import quickshift

    photo = sample_image("chelsea")
    rows = []
    for scale in [float(s) for s in args.scales.split(",")]:
        f = np.sqrt(scale)
        shape = (round(321 * f), round(481 * f))
        img = (resize(photo, shape, order=1, anti_aliasing=True) * 255).astype(np.uint8)
        seg = MeanShiftSegmenter(HS, HR, "flat", 20)
        seg.fit(img[:40, :40])  # warm-up: load the compiled kernels
        t_ours, seg = best_time(
            lambda img=img: MeanShiftSegmenter(HS, HR, "flat", 20).fit(img), args.repeats
        )
        bgr = np.ascontiguousarray(img[:, :, ::-1])
        t_cv, _ = best_time(
            lambda bgr=bgr: cv2.pyrMeanShiftFiltering(bgr, HS, HR, maxLevel=0), args.repeats
        )
        row = {
            "shape": shape,
            "pixels": shape[0] * shape[1],
            "t_ours": t_ours,
            "t_cv": t_cv,
            "modes": seg.n_modes_,
            "regions": seg.n_regions_,
            "mean_iter": seg.mean_iter_,
        }
        if scale == 1:
            row["t_qs"], _ = best_time(lambda img=img: quickshift(img), 1)
            row["t_sk"], row["sk_modes"], row["sk_pixels"], row["sk_note"] = sklearn_time(
                img, args.sklearn_budget
            )
        rows.append(row)
        print(
            f"{shape[1]}x{shape[0]}: seglab {t_ours:.3f}s ({seg.n_modes_} modes, {seg.n_regions_} regions, "
            f"{seg.mean_iter_:.1f} iterations per pixel)  cv2 filtering {t_cv:.3f}s  ratio {t_cv / t_ours:.2f}",
            flush=True,
        )
        if scale == 1:
            print(
                f"  scikit-learn {row['t_sk']:.1f}s ({row['sk_note']}), quickshift {row['t_qs']:.2f}s",
                flush=True,
            )

    base = rows[0]
    lines = [
        f"Machine: {platform.machine()}, {os.cpu_count()} cores; OpenCV {cv2.__version__}, scikit-learn "
        f"{sklearn.__version__}, scikit-image {skimage.__version__}. Cat photo resized; hs = 7, hr = 6.5, "
        f"flat kernel; seglab in L*u*v* with min_region_size 20 (labels, modes and regions), OpenCV on "
        f"RGB (filtered image only); best of {args.repeats}.",
        "",
        "| image | seglab s (modes / regions, iterations per pixel) | cv2 pyrMeanShiftFiltering s | cv2 / seglab | seglab µs per pixel |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['shape'][1]}x{r['shape'][0]} ({r['pixels']:,} px) | {r['t_ours']:.3f} ({r['modes']} / "
            f"{r['regions']}, {r['mean_iter']:.1f}) | {r['t_cv']:.3f} | **{r['t_cv'] / r['t_ours']:.2f}** | "
            f"{1e6 * r['t_ours'] / r['pixels']:.2f} |"
        )
    sk = base["t_sk"]
    sk_per_px = sk / max(base["sk_pixels"], 1)
    lines += [
        "",
        f"scikit-learn `MeanShift(bandwidth=1, bin_seeding=True)` on the scaled 5-d features: {sk:.1f} s on "
        f"the {base['sk_note']} ({base['sk_modes']} modes); per pixel that is {sk_per_px / (base['t_ours'] / base['pixels']):.0f}x "
        f"seglab's time on the whole image. scikit-image `quickshift` (defaults): {base['t_qs']:.2f} s.",
    ]
    table = "\n".join(lines)
    print()
    print(table)
    if args.write:
        write_section("Mean-shift speed (`python benchmarks/meanshift.py --write`)", table)


if __name__ == "__main__":
    main()
