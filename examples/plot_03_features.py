"""
Feature spaces: colour, gradients, texture
==========================================

What clustering can separate depends on the features. Colour separates regions of different
colour; the gradient (its magnitude and orientation) marks edges and oriented structure; a small
filter bank (derivative and Laplacian energies at three scales) describes texture, so that a
striped region and a flat one of the same mean colour fall apart. Every group is expressed in
colour units, so they can be mixed with one weight each.
"""

import matplotlib.pyplot as plt
import numpy as np

from seglab import viz
from seglab.cluster import KMeansSegmenter
from seglab.features import pixel_features

# %%
# A synthetic picture: the left half has stripes, the right half is flat, both of the same mean
# grey; a darker disc sits across the middle.
h, w = 120, 160
yy, xx = np.mgrid[0:h, 0:w]
image = np.full((h, w), 0.5)
image[:, : w // 2] += 0.25 * np.sign(np.sin(xx[:, : w // 2] / 2.0))
image[(yy - 60) ** 2 + (xx - 80) ** 2 < 30**2] -= 0.2
image = np.clip(image + np.random.default_rng(0).normal(0, 0.03, image.shape), 0, 1)

# %%
# The features themselves: lightness, gradient magnitude and one texture channel.
grad = pixel_features(image, "grad").reshape(h, w, 2)
texture = pixel_features(image, "texture").reshape(h, w, 9)
shown = {
    "gray (lightness)": image,
    "gradient magnitude": np.hypot(grad[:, :, 0], grad[:, :, 1]),
    "texture: |LoG| energy at 2 px": texture[:, :, 5],
}
fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
for ax, (title, a) in zip(axes, shown.items(), strict=True):
    ax.imshow(a, cmap="gray")
    ax.set_title(title)
    ax.set_axis_off()
fig.tight_layout()

# %%
# K-means with K = 3 on each feature space: colour alone cannot tell stripes from flat grey;
# texture can.
fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
for ax, spec in zip(axes, ("gray", "gray+grad", "gray+texture"), strict=True):
    seg = KMeansSegmenter(n_clusters=3, features=spec, random_state=0).fit(image)
    ax.imshow(viz.colorize(seg.labels_ + 1))
    ax.set_title(f"k-means on {spec}")
    ax.set_axis_off()
fig.tight_layout()
plt.show()
