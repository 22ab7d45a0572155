"""
From a few strokes to a segmenter
=================================

Pixels as feature vectors (the lecture's clustering) plus a classifier of pixels (its sliding
window) give an interactive segmenter, as ilastik's pixel classification builds one: a bank of
filters at several scales describes every pixel, a random forest learns the few pixels a person
painted, and predicts all the others. Where it is wrong, more strokes, train again.

Here the strokes are drawn automatically from the nuclei image's expert masks, as a user would
paint them (1 % of the pixels), then corrected twice in the largest wrong regions (2 % in all).
In the app (``seglab app``), the same :func:`seglab.interactive.fit_strokes` runs behind the
Train button; the segmenter it saves runs on a folder with ``seglab predict MODEL DIR``.
"""

# %%
import matplotlib.pyplot as plt
import numpy as np

from seglab.data import nuclei
from seglab.interactive import corrective_strokes, fit_strokes, simulate_strokes

image, instances = nuclei()
image = np.round(image / image.max() * 255).astype(np.uint8)[:256, :256]
truth = (instances[:256, :256] > 0).astype(np.int64) + 1  # 1 background, 2 nucleus

strokes = simulate_strokes(truth, 0.01, random_state=0)
rows = []
for round_ in range(3):
    seg = fit_strokes(image, strokes, class_names=["background", "nucleus"])
    proba = seg.predict_proba(image)
    pred = proba.argmax(axis=2) + 1
    iou = np.mean(
        [((truth == c) & (pred == c)).sum() / ((truth == c) | (pred == c)).sum() for c in (1, 2)]
    )
    rows.append((round_, (strokes > 0).mean(), iou, strokes.copy(), pred, 1 - proba.max(axis=2)))
    print(
        f"round {round_}: {100 * (strokes > 0).mean():.2f} % labelled, mean IoU {iou:.3f}, "
        f"trained in {seg.seconds:.1f} s"
    )
    strokes = corrective_strokes(truth, pred, strokes, 0.005, random_state=round_ + 1)

# %%
# The strokes of each round (green: background, red: nuclei), the prediction, and the forest's
# uncertainty (bright where its trees disagree: where the next strokes help most).
fig, axes = plt.subplots(3, 3, figsize=(9, 9.3))
colours = np.array([[0, 0, 0, 0], [0.1, 0.8, 0.2, 1], [0.9, 0.1, 0.1, 1]])
for (round_, labelled, iou, painted, pred, doubt), row in zip(rows, axes, strict=True):
    row[0].imshow(image, cmap="gray")
    row[0].imshow(colours[painted])
    row[0].set_title(f"round {round_}: strokes on {100 * labelled:.1f} %", fontsize=9)
    row[1].imshow(pred == 2, cmap="gray")
    row[1].set_title(f"prediction, mean IoU {iou:.3f}", fontsize=9)
    row[2].imshow(doubt, cmap="magma", vmin=0, vmax=0.5)
    row[2].set_title("uncertainty", fontsize=9)
for ax in axes.ravel():
    ax.set_axis_off()
fig.tight_layout()
plt.show()
