"""
Every method on the same image: ``seglab compare``
==================================================

``seglab compare`` runs methods side by side and scores them against a truth: the adjusted Rand
index and the boundary F-measure for any segmentation, class metrics for methods that predict
classes, instance metrics for instances. Here the clustering methods on the held-out nuclei
strip (``seglab compare IMG --truth DIR --instances DIR`` does the same from the command line,
and ``--checkpoint`` adds trained networks; the demo adds all of them).
"""

import tempfile
from pathlib import Path

import matplotlib.pyplot as plt

from seglab.compare import compare
from seglab.demo import nuclei_strip
from seglab.io import read_image

out = Path(tempfile.mkdtemp(prefix="seglab-gallery-"))
image, truth, instances = nuclei_strip(out / "data")
data = compare([image], out / "cmp", options={"kmeans": {"n_clusters": [2, 3]}},
               truth=truth, instances=instances)  # fmt: skip
for r in data["results"]:
    m = r["metrics"]
    print(f"{r['method']:10s} {r['seconds']:.3f} s  ARI {m['adjusted_rand_index']:.3f}  "
          f"boundary F {m['boundary_f1']:.3f}  F1@0.5 {m['f1_50']:.3f}")  # fmt: skip

fig, axes = plt.subplots(1, 1 + len(data["methods"]), figsize=(14, 6))
axes[0].imshow(read_image(out / "cmp" / "nuclei" / "truth.png"))
axes[0].set_title("truth")
for ax, method in zip(axes[1:], data["methods"], strict=True):
    ax.imshow(read_image(out / "cmp" / "nuclei" / method / "overlay.png"))
    ax.set_title(method)
for ax in axes:
    ax.set_axis_off()
fig.tight_layout()

# %%
# The report's accuracy-against-time picture (``OUT/index.html`` shows it with the table).
fig, ax = plt.subplots(figsize=(7, 4.5))
ax.imshow(read_image(out / "cmp" / "accuracy_vs_time.png"))
ax.set_axis_off()
plt.show()
