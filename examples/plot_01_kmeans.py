"""
Pixels as points: k-means in colour, and in colour + position
=============================================================

Segmentation as clustering treats every pixel as a point in a feature space and groups nearby
points. In colour alone (L*a*b*), k-means finds K colours and paints every pixel with the nearest
one: regions of the same colour far apart in the image share a label. Adding the pixel position
(``lab+xy``) pulls each cluster together in space; ``spatial_weight`` says how many colour units
one pixel of distance is worth.
"""

import matplotlib.pyplot as plt

from seglab import viz
from seglab.cluster import KMeansSegmenter
from seglab.data import sample_image

image = sample_image("coffee")

# %%
# K sweep in colour only: more clusters, more colours; the objective (inertia) never rises.
fig, axes = plt.subplots(1, 4, figsize=(16, 3.4))
axes[0].imshow(image)
axes[0].set_title("photo")
for ax, k in zip(axes[1:], (2, 4, 8), strict=True):
    seg = KMeansSegmenter(n_clusters=k, features="lab", random_state=0).fit(image)
    ax.imshow(viz.mean_color(image, seg.labels_))
    ax.set_title(f"K = {k}, colour only\ninertia {seg.inertia_:.3g}")
for ax in axes:
    ax.set_axis_off()
fig.tight_layout()

# %%
# The spatial weight: 0 ignores position; larger values make compact, blob-like segments (the
# "superpixel" regime), at the cost of cutting objects that are larger than the blobs.
fig, axes = plt.subplots(1, 4, figsize=(16, 3.4))
for ax, weight in zip(axes, (0.0, 0.03, 0.1, 0.3), strict=True):
    seg = KMeansSegmenter(n_clusters=6, features="lab+xy", spatial_weight=weight,
                          random_state=0).fit(image)  # fmt: skip
    ax.imshow(viz.mark_boundaries(viz.mean_color(image, seg.labels_), seg.labels_))
    ax.set_title(f"lab+xy, K = 6, spatial weight {weight}")
    ax.set_axis_off()
fig.tight_layout()
plt.show()
