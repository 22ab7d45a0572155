"""From strokes to a segmenter, measured: mean IoU against labelled pixels, round by round.

For each image with a truth, strokes are drawn automatically as a user would paint them
(``seglab.interactive.simulate_strokes``: short strokes inside each class, 1 % of the pixels), a
segmenter is trained (``fit_strokes``) and scored (mean IoU over the classes); then corrective
strokes go into the largest wrongly predicted regions (``corrective_strokes``, 0.5 % more per
round) and it is trained again: two rounds of corrections, 2 % of the pixels at most. Beside it,
k-means and mean-shift "matched to the truth" (each segment given the truth class it overlaps
most: the best any labelling of their segments could do), with no label at all.

Images: the nuclei sample (expert masks, 2 classes), skimage's coins (2 classes; its truth is
derived here by Otsu's threshold, filled holes and small objects removed: not a human's), and
three synthetic scenes of seglab.data (objects against background, 2 classes). Run:

    python benchmarks/strokes.py            # prints the table
    python benchmarks/strokes.py --write    # and writes benchmarks/strokes.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from seglab.interactive import corrective_strokes, fit_strokes, simulate_strokes
from seglab.segment import segment


def images() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{name: (image, truth with classes 1..C)}."""
    from scipy import ndimage
    from skimage import data, filters

    from seglab.data import nuclei, synthetic_scene

    out = {}
    image, instances = nuclei()  # 16-bit values 0..235: stretched to 8 bits for every method
    image = np.round(image / image.max() * 255).astype(np.uint8)
    out["nuclei (expert)"] = (image, (instances > 0).astype(np.int64) + 1)
    coins = data.coins()
    mask = ndimage.binary_fill_holes(coins > filters.threshold_otsu(coins))
    parts, _ = ndimage.label(mask)
    mask = (np.bincount(parts.ravel()) >= 200)[parts] & mask  # small specks are not coins
    out["coins (derived)"] = (coins, mask.astype(np.int64) + 1)
    for seed in (0, 1, 2):
        scene, classes = synthetic_scene((192, 192), seed=seed)
        out[f"scene {seed}"] = (scene, (classes > 0).astype(np.int64) + 1)
    return out


def mean_iou(truth: np.ndarray, pred: np.ndarray) -> float:
    ious = []
    for c in np.unique(truth):
        t, p = truth == c, pred == c
        ious.append((t & p).sum() / max((t | p).sum(), 1))
    return float(np.mean(ious))


def matched(truth: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Each segment given the truth class it overlaps most."""
    n = int(labels.max()) + 1
    k = int(truth.max()) + 1
    table = np.bincount(labels.ravel() * k + truth.ravel(), minlength=n * k).reshape(n, k)
    return table.argmax(axis=1)[labels]


def run(name: str, image: np.ndarray, truth: np.ndarray, rounds: int = 2) -> dict:
    strokes = simulate_strokes(truth, 0.01, random_state=0)
    curve = []
    for r in range(rounds + 1):
        t0 = time.perf_counter()
        seg = fit_strokes(image, strokes)
        train = time.perf_counter() - t0
        pred = seg.predict(image)
        curve.append({
            "round": r, "labelled": float((strokes > 0).mean()), "mean_iou": mean_iou(truth, pred),
            "train_seconds": round(train, 2),
        })  # fmt: skip
        if r < rounds:
            strokes = corrective_strokes(truth, pred, strokes, 0.005, random_state=r + 1)
    k = int(truth.max())
    baselines = {
        "kmeans": mean_iou(truth, matched(truth, segment(image, "kmeans", n_clusters=max(2, k)).labels)),
        "kmeans-k8": mean_iou(truth, matched(truth, segment(image, "kmeans", n_clusters=8).labels)),
        "meanshift": mean_iou(truth, matched(truth, segment(image, "meanshift").labels)),
    }  # fmt: skip
    return {"image": name, "pixels": int(truth.size), "curve": curve, "matched": baselines}


def timing() -> None:
    """Training and prediction seconds on 0.54 MP photos (900 x 600) with 7,200 labelled pixels
    (24 strokes of 3 x 100), warm: the best of three."""
    from PIL import Image

    from seglab.data import sample_image

    for name in ("coffee", "chelsea", "rocket"):
        image = np.array(Image.fromarray(sample_image(name)).resize((900, 600)))
        r = np.random.default_rng(0)
        strokes = np.zeros(image.shape[:2], np.int64)
        for c in (1, 2):
            for _ in range(12):
                y, x = r.integers(20, 580), r.integers(20, 780)
                strokes[y : y + 3, x : x + 100] = c
        fit_strokes(image, strokes)  # warm: scikit-learn's import, the compiled forest
        train, predict = [], []
        for _ in range(3):
            t0 = time.perf_counter()
            seg = fit_strokes(image, strokes)
            train.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            seg.predict(image)
            predict.append(time.perf_counter() - t0)
        print(f"{name}: {image.shape[1]} x {image.shape[0]}, {(strokes > 0).sum()} labelled pixels, "
              f"training {min(train):.2f} s, prediction {min(predict):.2f} s")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--write", action="store_true", help="write benchmarks/strokes.json")
    parser.add_argument("--timing", action="store_true", help="only the 0.54 MP training times")
    args = parser.parse_args()
    if args.timing:
        timing()
        return
    results = [run(name, image, truth) for name, (image, truth) in images().items()]
    print(f"{'image':18s} {'round':>5s} {'labelled':>9s} {'mIoU':>6s} {'train s':>7s}   matched: "
          "k-means(K=C) k-means(8) mean-shift")  # fmt: skip
    for r in results:
        for c in r["curve"]:
            tail = ""
            if c["round"] == 0:
                m = r["matched"]
                tail = f"   {m['kmeans']:.3f} {m['kmeans-k8']:.3f} {m['meanshift']:.3f}"
            print(f"{r['image']:18s} {c['round']:5d} {100 * c['labelled']:8.2f}% "
                  f"{c['mean_iou']:6.3f} {c['train_seconds']:7.2f}{tail}")  # fmt: skip
    if args.write:
        path = Path(__file__).with_name("strokes.json")
        path.write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
