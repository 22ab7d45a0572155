"""K-means speed: seglab KMeans vs scikit-learn (lloyd, n_init=1) and cv2.kmeans, same start.

Features are the 5-d ``lab+xy`` features of the bundled coffee photo resized to 0.25, 1 and 4
megapixels; K = 8; every library starts from the same k-means++ centres (OpenCV takes initial
labels, so it gets the nearest-centre labels of those centres) with the same iteration limit and
tolerance. Each timing is the best of ``--repeats`` runs, after one warm-up run that compiles
seglab's kernels. Prints a Markdown table; ``--write`` also puts it into benchmarks/RESULTS.md.

    python benchmarks/kmeans.py            # all sizes
    python benchmarks/kmeans.py --sizes 4 --write
"""

from __future__ import annotations

import argparse
import os
import platform

import numpy as np
from skimage.transform import resize

from seglab.cluster import KMeans, kmeans_plusplus
from seglab.cluster._kmeans_kernels import assign
from seglab.data import sample_image
from seglab.features import pixel_features

try:
    from _results import best_time, write_section
except ImportError:  # run as a module
    from benchmarks._results import best_time, write_section


def measure(X, init, tol_abs, args) -> dict:
    """Time seglab, scikit-learn and OpenCV from the same start on features X."""
    import cv2
    from sklearn.cluster import KMeans as SKKMeans

    k = len(init)
    KMeans(k, init=init, max_iter=args.max_iter, tol=args.tol).fit(X)  # warm-up: load kernels
    t_ours, ours = best_time(
        lambda: KMeans(k, init=init, max_iter=args.max_iter, tol=args.tol).fit(X), args.repeats
    )
    t_sk, sk = best_time(
        lambda: SKKMeans(
            k, init=init, n_init=1, algorithm="lloyd", max_iter=args.max_iter, tol=args.tol
        ).fit(X),
        args.repeats,
    )
    # OpenCV starts from labels, not centres: give it the nearest-centre labels of the same start
    init_labels = np.full(X.shape[0], -1, dtype=np.int32)
    assign(X, init, init_labels, False)
    # OpenCV stops when every centre moved less than eps (it squares eps internally)
    crit = (
        cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER,
        args.max_iter,
        float(np.sqrt(tol_abs)),
    )
    t_cv, (cv_compact, _, _) = best_time(
        lambda: cv2.kmeans(
            X, k, init_labels[:, None].copy(), crit, 1, cv2.KMEANS_USE_INITIAL_LABELS
        ),
        args.repeats,
    )
    return {
        "t_ours": t_ours,
        "t_sk": t_sk,
        "t_cv": t_cv,
        "i_ours": ours.inertia_,
        "i_sk": sk.inertia_,
        "i_cv": cv_compact,
        "n_ours": ours.n_iter_,
        "n_sk": sk.n_iter_,
    }


def machine() -> str:
    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {platform.system()}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--sizes", default="0.25,1,4", help="megapixels, comma separated")
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--max-iter", type=int, default=300)
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument(
        "--spatial-weight",
        type=lambda t: t if t == "auto" else float(t),
        default="auto",
        help="colour units per pixel, or 'auto' (25 / image diagonal, the segmenter's default)",
    )
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument(
        "--write", action="store_true", help="write the table into benchmarks/RESULTS.md"
    )
    args = ap.parse_args()

    import cv2
    import sklearn

    photo = sample_image("coffee")
    rows = []
    for mp in [float(s) for s in args.sizes.split(",")]:
        scale = np.sqrt(mp * 1e6 / (photo.shape[0] * photo.shape[1]))
        shape = (round(photo.shape[0] * scale), round(photo.shape[1] * scale))
        img = (resize(photo, shape, order=1, anti_aliasing=False) * 255).astype(np.uint8)
        X = pixel_features(img, "lab+xy", spatial_weight=args.spatial_weight)
        init = kmeans_plusplus(X, args.k, np.random.default_rng(0))
        tol_abs = float(np.mean(np.var(X, axis=0, dtype=np.float64))) * args.tol

        rows.append(measure(X, init, tol_abs, args) | {"mp": mp, "pixels": X.shape[0]})
        r = rows[-1]
        print(
            f"{mp:>5} MP  seglab {r['t_ours']:.3f}s ({r['n_ours']} it)  "
            f"sklearn {r['t_sk']:.3f}s ({r['n_sk']} it)  cv2 {r['t_cv']:.3f}s  "
            f"speed-up vs sklearn {r['t_sk'] / r['t_ours']:.1f}x  vs cv2 {r['t_cv'] / r['t_ours']:.1f}x  "
            f"inertia diff vs sklearn {100 * (r['i_ours'] - r['i_sk']) / r['i_sk']:+.4f}%",
            flush=True,
        )

    lines = [
        f"Machine: {machine()}; numpy {np.__version__}, scikit-learn {sklearn.__version__}, "
        f"OpenCV {cv2.__version__}. K = {args.k}, features lab+xy (spatial weight "
        f"{args.spatial_weight}) of the coffee photo resized, same k-means++ start, max_iter "
        f"{args.max_iter}, tol {args.tol}; best of {args.repeats}.",
        "",
        "| pixels | seglab s (iters) | sklearn lloyd s (iters) | cv2 s | sklearn / seglab | cv2 / seglab | inertia seglab vs sklearn | inertia cv2 vs sklearn |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['pixels']:,} ({r['mp']} MP) | {r['t_ours']:.3f} ({r['n_ours']}) | {r['t_sk']:.3f} ({r['n_sk']}) | "
            f"{r['t_cv']:.3f} | **{r['t_sk'] / r['t_ours']:.1f}x** | {r['t_cv'] / r['t_ours']:.1f}x | "
            f"{100 * (r['i_ours'] - r['i_sk']) / r['i_sk']:+.4f}% | {100 * (r['i_cv'] - r['i_sk']) / r['i_sk']:+.4f}% |"
        )
    table = "\n".join(lines)
    print()
    print(table)
    if args.write:
        write_section("K-means speed (`python benchmarks/kmeans.py --write`)", table)


if __name__ == "__main__":
    main()
