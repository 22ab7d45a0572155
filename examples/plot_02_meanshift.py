"""
Mean-shift: windows climb the density to its modes
==================================================

Mean-shift puts a window on each point and moves it to the mean of the points inside, again and
again: the window climbs the density of the data to a *mode*. The points whose windows end at
the same mode form its *basin of attraction*: a cluster, with no K to choose. On an image, each
pixel climbs in the joint space of position and colour (bandwidths hs in pixels, hr in colour):
the filtered image replaces every pixel by its mode's colour, and adjacent pixels with the same
mode form the segments (as Comaniciu and Meer's EDISON code forms them).
"""

import matplotlib.pyplot as plt
import numpy as np

from seglab import viz
from seglab.cluster import MeanShift, MeanShiftSegmenter
from seglab.cluster.meanshift import mean_shift_paths
from seglab.data import sample_image
from seglab.features import pixel_features

image = sample_image("coffee")[::2, ::2]

# %%
# A 2-d slice of the feature space: the (u*, v*) chroma of 300 pixels, the path of every window,
# and the modes where the paths end. Each point takes the colour of its basin.
uv = pixel_features(image, "luv")[:, 1:].astype(np.float64)
pts = uv[np.random.default_rng(0).choice(len(uv), 300, replace=False)]
ms = MeanShift(bandwidth=8.0).fit(pts)
paths = mean_shift_paths(pts, pts, 8.0)
colors = viz.voc_palette(256)[1:][ms.labels_ % 255] / 255.0
fig, ax = plt.subplots(figsize=(6, 5))
for path, c in zip(paths, colors, strict=True):
    ax.plot(path[:, 0], path[:, 1], "-", color=c, lw=0.6, alpha=0.6)
ax.scatter(pts[:, 0], pts[:, 1], s=8, c=colors)
ax.scatter(*ms.cluster_centers_.T, marker="*", s=250, c="k", edgecolors="w", zorder=3)
ax.set_xlabel("u*")
ax.set_ylabel("v*")
ax.set_title(f"300 pixels: {len(ms.cluster_centers_)} modes, no K given")
fig.tight_layout()

# %%
# Filtering and segments, and what the bandwidths do: a larger range bandwidth hr merges
# colours (fewer, larger regions); a larger spatial bandwidth hs smooths over larger areas.
fig, axes = plt.subplots(2, 3, figsize=(15, 7))
for col, (hs, hr) in enumerate(((7, 4.0), (7, 6.5), (7, 12.0))):
    seg = MeanShiftSegmenter(spatial_bandwidth=hs, range_bandwidth=hr).fit(image)
    axes[0, col].imshow(seg.filtered_image_)
    axes[0, col].set_title(f"filtered, hs = {hs}, hr = {hr}")
    axes[1, col].imshow(viz.mark_boundaries(image, seg.labels_))
    axes[1, col].set_title(f"{seg.n_regions_} regions")
for ax in axes.ravel():
    ax.set_axis_off()
fig.tight_layout()
plt.show()
