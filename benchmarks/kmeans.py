"""K-means speed: seglab KMeans vs scikit-learn's Lloyd from the same start, photo by photo.

Features are the 5-d ``lab+xy`` features (spatial weight "auto", the segmenter's default) of
scikit-image's photos resized to ``--mp`` megapixels (4 by default); coffee is the photo seglab was
first tuned on, the others are held out. K = 8; both libraries start from the same k-means++
centres and run a short fit (``max_iter=15``) and a long one (to convergence, ``max_iter=300``,
``tol=1e-4``). Each time is the best of ``--repeats`` runs, the libraries interleaved, after one
warm-up run each (which compiles seglab's kernels where they run in numba). Per-iteration time is compared with one
pass over the feature array (``X.sum()``), the memory floor of any Lloyd iteration. Prints Markdown
tables; ``--write`` puts them into benchmarks/RESULTS.md.

    python benchmarks/kmeans.py --write
    python benchmarks/kmeans.py --photos astronaut,chelsea --mp 1
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
from skimage import data
from skimage.transform import resize

from seglab.cluster import KMeans, kmeans_plusplus
from seglab.features import pixel_features

try:
    from _results import cold_and_warm, write_section
except ImportError:  # run as a module
    from benchmarks._results import cold_and_warm, write_section

PHOTOS = ("coffee", "astronaut", "chelsea", "rocket", "immunohistochemistry",
          "hubble_deep_field", "retina")  # fmt: skip
RUNS = {"short": 15, "long": 300}
FIRST_FIT = """
import numpy as np
from skimage import data
from seglab.cluster import KMeans
from seglab.features import pixel_features
X = pixel_features(data.{photo}()[..., :3], "lab+xy", spatial_weight="auto")
KMeans({k}, random_state=0).fit(X)
"""


def first_fit(photo: str, k: int) -> str:
    """One line: a new process's first fit (imports, features, k-means++ and Lloyd) in a fresh
    numba cache folder (cold) and again (warm), with the C kernels and with their numba twins."""
    import sys

    argv = [sys.executable, "-c", FIRST_FIT.format(photo=photo, k=k)]
    c_cold, c_warm = cold_and_warm(argv, kernels="c")
    nb_cold, nb_warm = cold_and_warm(argv, kernels="numba")
    return (
        f"First fit in a new process ({photo} at its own size, imports, features, k-means++ and "
        f"Lloyd): C kernels (the default) **cold {c_cold:.2f} s, warm {c_warm:.2f} s**; numba "
        f"kernels (`SEGLAB_KERNELS=numba`, a fresh cache: compiled) cold {nb_cold:.2f} s, warm "
        f"{nb_warm:.2f} s."
    )


def features(name: str, megapixels: float) -> np.ndarray:
    img = getattr(data, name)()
    img = np.stack([img] * 3, -1) if img.ndim == 2 else img[..., :3]
    scale = np.sqrt(megapixels * 1e6 / (img.shape[0] * img.shape[1]))
    shape = (round(img.shape[0] * scale), round(img.shape[1] * scale))
    img = (resize(img, shape, order=1, anti_aliasing=False) * 255).astype(np.uint8)
    return pixel_features(img, "lab+xy", spatial_weight="auto")


def interleaved_best(fns: dict, repeats: int) -> tuple[dict, dict]:
    """Best wall time of each function over ``repeats`` rounds (one call each per round)."""
    best = {k: float("inf") for k in fns}
    out = {k: fn() for k, fn in fns.items()}  # warm-up
    for _ in range(repeats):
        for k, fn in fns.items():
            t = time.perf_counter()
            out[k] = fn()
            best[k] = min(best[k], time.perf_counter() - t)
    return best, out


def measure(X: np.ndarray, k: int, repeats: int) -> dict:
    from sklearn.cluster import KMeans as SKKMeans

    init = kmeans_plusplus(X, k, np.random.default_rng(0))
    row: dict = {"pixels": X.shape[0]}
    passes = []
    for _ in range(5):
        t = time.perf_counter()
        X.sum()
        passes.append(time.perf_counter() - t)
    row["pass"] = min(passes)
    for run, max_iter in RUNS.items():
        times, fits = interleaved_best(
            {
                "seglab": lambda m=max_iter: KMeans(k, init=init, max_iter=m).fit(X),
                "sklearn": lambda m=max_iter: SKKMeans(
                    k, init=init, n_init=1, algorithm="lloyd", max_iter=m
                ).fit(X),
            },
            repeats,
        )
        ours, ref = fits["seglab"], fits["sklearn"]
        row[run] = {
            "t_ours": times["seglab"],
            "t_sk": times["sklearn"],
            "n_ours": ours.n_iter_,
            "n_sk": ref.n_iter_,
            "ratio": times["sklearn"] / times["seglab"],
            "inertia": 100 * (ours.inertia_ - ref.inertia_) / ref.inertia_,
        }
    return row


def table(rows: dict, run: str) -> list[str]:
    lines = [
        f"**{run} runs** (max_iter={RUNS[run]}):",
        "",
        "| photo | seglab s (iters) | sklearn s (iters) | sklearn / seglab | inertia seglab vs sklearn | seglab ms / iter | one pass ms | iter / pass |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in rows.items():
        x = r[run]
        per_iter = 1000 * x["t_ours"] / x["n_ours"]
        label = f"{name} (tuned on)" if name == "coffee" else name
        lines.append(
            f"| {label} | {x['t_ours']:.3f} ({x['n_ours']}) | {x['t_sk']:.3f} ({x['n_sk']}) | "
            f"**{x['ratio']:.2f}x** | {x['inertia']:+.4f}% | {per_iter:.1f} | "
            f"{1000 * r['pass']:.1f} | {per_iter / (1000 * r['pass']):.1f} |"
        )
    held_out = [r[run]["ratio"] for n, r in rows.items() if n != "coffee"]
    if held_out:
        lines += [
            "",
            f"Held-out photos: median **{np.median(held_out):.2f}x**, worst "
            f"**{min(held_out):.2f}x**; largest inertia difference "
            f"{max(abs(r[run]['inertia']) for r in rows.values()):.4f}%.",
        ]
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--photos", default=",".join(PHOTOS), help="scikit-image photo names")
    ap.add_argument("--mp", type=float, default=4.0, help="megapixels each photo is resized to")
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--write", action="store_true", help="write the tables into RESULTS.md")
    ap.add_argument(
        "--portable",
        action="store_true",
        help="seglab's portable C loops instead of its AVX-512 kernel (what a CPU without "
        "AVX-512 runs); --write puts the tables into a section of their own",
    )
    args = ap.parse_args()

    import sklearn

    from seglab.cluster._kernel_backend import fast_kmeans

    avx512 = fast_kmeans(not args.portable)
    kernel = "AVX-512 kernel" if avx512 else "portable C loops"

    startup = "" if args.portable else first_fit(args.photos.split(",")[-1], args.k)
    print(startup, flush=True)
    rows = {}
    for name in args.photos.split(","):
        rows[name] = r = measure(features(name, args.mp), args.k, args.repeats)
        print(
            f"{name:22s} short {r['short']['ratio']:.2f}x ({r['short']['t_ours']:.3f} s) "
            f"long {r['long']['ratio']:.2f}x ({r['long']['t_ours']:.3f} s, "
            f"{r['long']['n_ours']} it) inertia {r['long']['inertia']:+.4f}%",
            flush=True,
        )
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    lines = [
        f"Machine: {machine}; numpy {np.__version__}, scikit-learn {sklearn.__version__}. "
        f"K = {args.k}, lab+xy features (spatial weight auto, float32) of each photo at "
        f"{args.mp:g} MP, same k-means++ start, tol 1e-4; best of {args.repeats}, interleaved; "
        f"seglab's Hamerly step on its {kernel}. "
        "Target (issue 15): sklearn / seglab >= 4 for short and long runs on held-out photos.",
        "",
        *([startup, ""] if startup else []),
        *table(rows, "short"),
        "",
        *table(rows, "long"),
    ]
    text = "\n".join(lines)
    print()
    print(text)
    if args.write and args.portable:
        title = "K-means speed without AVX-512 (`python benchmarks/kmeans.py --portable --write`)"
        write_section(title, text)
    elif args.write:
        write_section("K-means speed (`python benchmarks/kmeans.py --write`)", text)


if __name__ == "__main__":
    main()
