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
# A synthetic picture: a striped disc on a flat background of the same mean grey.
h, w = 120, 160
yy, xx = np.mgrid[0:h, 0:w]
image = np.full((h, w), 0.5)
disc = (yy - 60) ** 2 + (xx - 80) ** 2 < 45**2
image[disc] += 0.25 * np.sign(np.sin(xx[disc] / 2.0))
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
# K-means with K = 2 on each feature space: grey levels split the stripes into light and dark
# (the flat background joins one of them); the gradient finds the stripes' edges; texture
# energies, averaged over a neighbourhood, separate the striped disc from the flat background.
fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
for ax, spec in zip(axes, ("gray", "grad", "texture"), strict=True):
    seg = KMeansSegmenter(n_clusters=2, features=spec, random_state=0).fit(image)
    ax.imshow(viz.colorize(seg.labels_ + 1))
    ax.set_title(f"k-means on {spec}")
    ax.set_axis_off()
fig.tight_layout()
plt.show()
