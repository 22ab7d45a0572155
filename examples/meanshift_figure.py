"""The lecture's mean-shift picture on a real photo.

Panels: the photo; the mean-shift filtered image (every pixel replaced by its mode's colour); the
segments' boundaries; and a 2-d slice of the feature space (the u*, v* chroma of a few hundred
pixels) with the points, the trajectory of every window as it climbs the density, and the modes
where the trajectories end, each point coloured by the basin it falls into.

    python examples/meanshift_figure.py --image coffee --out meanshift.png
"""

from __future__ import annotations

import argparse

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from seglab import io, viz
from seglab.cluster import MeanShift, MeanShiftSegmenter
from seglab.cluster.meanshift import mean_shift_paths
from seglab.data import sample_image
from seglab.features import pixel_features


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--image", default="coffee", choices=["chelsea", "coffee", "rocket"])
    ap.add_argument(
        "--points", type=int, default=400, help="pixels drawn in the feature-space panel"
    )
    ap.add_argument("--bandwidth", type=float, default=8.0, help="bandwidth in the (u*, v*) panel")
    ap.add_argument("--out", default="meanshift.png")
    args = ap.parse_args()

    image = sample_image(args.image)
    seg = MeanShiftSegmenter(7, 6.5, "flat", 20).fit(image)

    uv = pixel_features(image, "luv")[:, 1:]
    rng = np.random.default_rng(0)
    pts = uv[rng.choice(len(uv), args.points, replace=False)].astype(np.float64)
    ms = MeanShift(bandwidth=args.bandwidth).fit(pts)
    paths = mean_shift_paths(pts, pts, args.bandwidth)

    fig, axes = plt.subplots(1, 4, figsize=(20, 4.6))
    axes[0].imshow(image)
    axes[0].set_title("photo")
    axes[1].imshow(seg.filtered_image_)
    axes[1].set_title("mean-shift filtered (hs=7, hr=6.5)")
    axes[2].imshow(viz.mark_boundaries(image, seg.labels_))
    axes[2].set_title(f"{seg.n_regions_} regions (min size 20)")
    for ax in axes[:3]:
        ax.set_axis_off()
    ax = axes[3]
    colors = viz.voc_palette(256)[1:][ms.labels_ % 255] / 255.0
    for path, c in zip(paths, colors, strict=True):
        ax.plot(path[:, 0], path[:, 1], "-", color=c, lw=0.6, alpha=0.6)
    ax.scatter(pts[:, 0], pts[:, 1], s=6, c=colors)
    ax.scatter(*ms.cluster_centers_.T, marker="*", s=220, c="k", edgecolors="w", zorder=3)
    ax.set_xlabel("u*")
    ax.set_ylabel("v*")
    ax.set_title(
        f"{args.points} pixels in (u*, v*): trajectories to {len(ms.cluster_centers_)} modes"
    )
    fig.tight_layout()
    io.save_figure(args.out, fig)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
