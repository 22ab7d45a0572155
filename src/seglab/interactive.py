"""From a few strokes to a segmenter: pixel classification as ilastik does it, on the lecture's
pieces.

The lecture's first idea, pixels as feature vectors, and its second, a classifier of pixels, give
an interactive segmenter: the user paints a few strokes per class, every pixel is described by a
bank of filters at several scales (colour smoothed, edges, blobs, ridges: what ilastik's pixel
classification computes), a random forest learns the strokes (Breiman 2001; ilastik's choice:
fast to train, no tuning, calibrated enough to show its uncertainty), and predicts every pixel.
More strokes where it is wrong, train again.

:func:`fit_strokes` trains; the :class:`StrokeSegmenter` it returns predicts (``predict``,
``predict_proba``) on any image and saves itself (``save``) as an ``.npz`` of plain arrays (the
forest's nodes, no pickle: loading runs no code), which ``seglab predict MODEL DIR`` applies to a
folder, sharded under ``torchrun`` like a network checkpoint. scikit-learn trains the forest;
prediction is seglab's own compiled loop over those arrays, so a saved segmenter does not depend
on scikit-learn's version.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from ._checks import check_positive_int
from .image import check_image, to_uint8_rgb

#: The ``format`` of a saved segmenter, checked on load.
FORMAT = "seglab-strokes"
FORMAT_VERSION = 1
#: The filter bank's scales (Gaussian sigmas, in pixels), as ilastik's default selection.
SIGMAS = (0.7, 1.6, 3.5, 5.0)
#: The classifiers :func:`fit_strokes` offers.
METHODS = ("forest",)
#: At most this many labelled pixels train the forest (a stratified sample beyond it).
MAX_SAMPLES = 60_000


def filter_bank(image: np.ndarray, sigmas: Sequence[float] = SIGMAS) -> np.ndarray:
    """Per-pixel features (H*W, F) float32: for each L*a*b* channel, the value and, at each
    sigma, the Gaussian-smoothed value, the gradient magnitude and the Laplacian of Gaussian;
    for L*, also the two Hessian eigenvalues (ridges and valleys) at each sigma. Gray images
    are read as RGB, so one segmenter serves both."""
    from scipy import ndimage
    from skimage.color import rgb2lab

    lab = rgb2lab(to_uint8_rgb(check_image(image))).astype(np.float32)
    h, w = lab.shape[:2]
    jobs = []
    for c in range(3):
        channel = np.ascontiguousarray(lab[:, :, c])
        jobs.append(lambda ch=channel: ch)
        for s in sigmas:
            jobs.append(lambda ch=channel, s=s: ndimage.gaussian_filter(ch, s))
            jobs.append(lambda ch=channel, s=s: ndimage.gaussian_gradient_magnitude(ch, s))
            jobs.append(lambda ch=channel, s=s: ndimage.gaussian_laplace(ch, s))
    light = np.ascontiguousarray(lab[:, :, 0])
    for s in sigmas:
        jobs.append(lambda s=s: _hessian_eigenvalues(light, s))
    with ThreadPoolExecutor(max(1, min(4, os.cpu_count() or 1))) as pool:  # ndimage frees the GIL
        maps = list(pool.map(lambda job: job(), jobs))
    columns = [m.reshape(h * w, -1) for m in maps]
    return np.ascontiguousarray(np.concatenate(columns, axis=1), dtype=np.float32)


def _hessian_eigenvalues(light: np.ndarray, sigma: float) -> np.ndarray:
    """The two eigenvalues of the Hessian of Gaussian, (H, W, 2), larger first."""
    from scipy import ndimage

    hxx = ndimage.gaussian_filter(light, sigma, order=(0, 2))
    hyy = ndimage.gaussian_filter(light, sigma, order=(2, 0))
    hxy = ndimage.gaussian_filter(light, sigma, order=(1, 1))
    mean, root = (hxx + hyy) / 2, np.sqrt(((hxx - hyy) / 2) ** 2 + hxy**2)
    return np.stack([mean + root, mean - root], axis=-1)


class StrokeSegmenter:
    """A trained pixel classifier: the filter bank and a random forest stored as arrays.

    Attributes
    ----------
    class_names : tuple of str
        Names of classes 1..C (``predict`` returns these ids).
    n_classes : int
        C.
    seconds : float
        Training time (features of the image included).
    n_samples : int
        Labelled pixels the forest was trained on.
    """

    def __init__(self, forest: dict[str, np.ndarray], meta: dict) -> None:
        self.forest = forest
        self.meta = meta
        self.class_names = tuple(meta["class_names"])
        self.n_classes = len(self.class_names)
        self.sigmas = tuple(meta["sigmas"])
        self.seconds = float(meta.get("seconds", 0.0))
        self.n_samples = int(meta.get("n_samples", 0))

    def predict_proba(self, image: Any) -> np.ndarray:
        """(H, W, C) class probabilities of every pixel (the forest's vote)."""
        image = check_image(image)
        h, w = image.shape[:2]
        X = filter_bank(image, self.sigmas)
        if X.shape[1] != self.meta["n_features"]:
            raise ValueError(
                f"the image gives {X.shape[1]} features; this segmenter was trained on "
                f"{self.meta['n_features']}"
            )
        from ._forest_kernels import forest_proba

        f = self.forest
        out = np.zeros((X.shape[0], self.n_classes), np.float64)
        forest_proba(
            X, f["roots"], f["left"], f["right"], f["feature"], f["threshold"], f["value"], out
        )
        return out.reshape(h, w, self.n_classes)

    def predict(self, image: Any) -> np.ndarray:
        """(H, W) class ids 1..C: each pixel's most probable class."""
        return self.predict_proba(image).argmax(axis=2).astype(np.int64) + 1

    def save(self, path: str | os.PathLike) -> Path:
        """Write the segmenter to ``path`` (an ``.npz`` of plain arrays, written atomically):
        ``seglab predict PATH DIR`` and :meth:`load` read it."""
        import io as pyio

        from .io import atomic_write_bytes

        buf = pyio.BytesIO()
        np.savez_compressed(buf, meta=np.array(json.dumps(self.meta)), **self.forest)
        return atomic_write_bytes(path, buf.getvalue())

    @classmethod
    def load(cls, path: str | os.PathLike) -> StrokeSegmenter:
        """Read a segmenter written by :meth:`save` (no code runs from the file)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"segmenter file not found: {path}")
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                forest = {k: data[k] for k in _FOREST_KEYS}
        except (OSError, ValueError, KeyError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path} is not a seglab stroke segmenter ({exc})") from None
        if meta.get("format") != FORMAT:
            raise ValueError(
                f"{path} is not a seglab stroke segmenter (format {meta.get('format')!r})"
            )
        if int(meta.get("version", 0)) > FORMAT_VERSION:
            raise ValueError(f"{path} was written by a newer seglab; upgrade seglab to read it")
        return cls(forest, meta)

    def __repr__(self) -> str:
        return (
            f"StrokeSegmenter(classes={list(self.class_names)}, trees="
            f"{len(self.forest['roots'])}, samples={self.n_samples})"
        )


_FOREST_KEYS = ("roots", "left", "right", "feature", "threshold", "value")


def is_segmenter_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a file written by :meth:`StrokeSegmenter.save`."""
    path = Path(path)
    if path.suffix.lower() != ".npz" or not path.is_file():
        return False
    try:
        with np.load(path, allow_pickle=False) as data:
            return json.loads(str(data["meta"])).get("format") == FORMAT
    except Exception:
        return False


def fit_strokes(
    image: Any,
    strokes: Any,
    method: str | None = None,
    *,
    class_names: Sequence[str] | None = None,
    n_estimators: int = 64,
    random_state: int = 0,
) -> StrokeSegmenter:
    """Train a segmenter on the labelled pixels of one image.

    Parameters
    ----------
    image : ndarray
        (H, W) gray or (H, W, 3) RGB, uint8 or uint16.
    strokes : ndarray of int, shape (H, W)
        0 where unlabelled, 1..C the class the user painted; at least two classes.
    method : {"forest"}, optional
        The classifier (default: a random forest on :func:`filter_bank`, as ilastik).
    class_names : sequence of str, optional
        Names of classes 1..C (default "class 1", ...).
    n_estimators : int
        Trees of the forest.
    random_state : int
        Seed of the forest and of the sample of labelled pixels.

    Returns
    -------
    StrokeSegmenter
    """
    method = "forest" if method is None else method
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; fit_strokes offers {', '.join(METHODS)}")
    t0 = time.perf_counter()
    image = check_image(image)
    strokes = np.asarray(strokes)
    if strokes.shape != image.shape[:2]:
        raise ValueError(
            f"strokes are {strokes.shape}; they must be the image's height and width "
            f"{image.shape[:2]}"
        )
    if not np.issubdtype(strokes.dtype, np.integer):
        raise ValueError(
            f"strokes must hold integer class ids (0 = unlabelled), got {strokes.dtype}"
        )
    if strokes.min() < 0:
        raise ValueError("strokes must be 0 (unlabelled) or a class id 1..C, got negative values")
    n_classes = int(strokes.max())
    present = np.unique(strokes[strokes > 0])
    if len(present) < 2:
        raise ValueError(
            f"strokes label {len(present)} class(es); paint at least two classes (for example "
            "the object and the background)"
        )
    names = (
        tuple(class_names)
        if class_names is not None
        else tuple(f"class {i}" for i in range(1, n_classes + 1))
    )
    if len(names) < n_classes:
        raise ValueError(f"{len(names)} class names for strokes of classes 1..{n_classes}")
    names = names[:n_classes]
    check_positive_int(n_estimators, "n_estimators")
    X = filter_bank(image)
    flat = strokes.ravel()
    index = _sample(np.flatnonzero(flat), flat, random_state)
    forest = _train_forest(X[index], flat[index] - 1, n_classes, n_estimators, random_state)
    meta = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "method": method,
        "class_names": list(names),
        "sigmas": list(SIGMAS),
        "n_features": int(X.shape[1]),
        "n_samples": len(index),
        "seconds": round(time.perf_counter() - t0, 3),
    }
    return StrokeSegmenter(forest, meta)


def _sample(labelled: np.ndarray, flat: np.ndarray, seed: int) -> np.ndarray:
    """The labelled pixels, or a sample of :data:`MAX_SAMPLES` that keeps every class."""
    if len(labelled) <= MAX_SAMPLES:
        return labelled
    rng = np.random.default_rng(seed)
    classes = np.unique(flat[labelled])
    per = MAX_SAMPLES // len(classes)
    parts = []
    for c in classes:
        mine = labelled[flat[labelled] == c]
        parts.append(mine if len(mine) <= per else rng.choice(mine, per, replace=False))
    return np.sort(np.concatenate(parts))


def _train_forest(X, y, n_classes, n_estimators, seed) -> dict[str, np.ndarray]:
    """Fit scikit-learn's forest and keep its trees as flat arrays (children, feature,
    threshold, class probabilities at the leaves)."""
    from sklearn.ensemble import RandomForestClassifier

    rf = RandomForestClassifier(
        n_estimators=n_estimators,
        min_samples_leaf=2,
        class_weight="balanced",
        n_jobs=-1,
        random_state=seed,
    ).fit(X, y)
    return forest_arrays(rf, n_classes)


def forest_arrays(rf: Any, n_classes: int) -> dict[str, np.ndarray]:
    """A fitted scikit-learn forest classifier (labels 0..n_classes-1) as flat node arrays."""
    roots, left, right, feature, threshold, value = [], [], [], [], [], []
    offset = 0
    for tree in rf.estimators_:
        t = tree.tree_
        n = t.node_count
        leaf = t.children_left < 0
        roots.append(offset)
        left.append(np.where(leaf, -1, t.children_left + offset))
        right.append(np.where(leaf, -1, t.children_right + offset))
        feature.append(np.where(leaf, -1, t.feature))
        threshold.append(t.threshold)
        v = np.zeros((n, n_classes))
        counts = t.value[:, 0, :]
        v[:, rf.classes_] = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1e-300)
        value.append(v)
        offset += n
    return {
        "roots": np.asarray(roots, np.int64),
        "left": np.concatenate(left).astype(np.int64),
        "right": np.concatenate(right).astype(np.int64),
        "feature": np.concatenate(feature).astype(np.int64),
        "threshold": np.concatenate(threshold).astype(np.float64),
        "value": np.concatenate(value).astype(np.float64),
    }


def labels_to_coco(
    labels: np.ndarray, class_names: Sequence[str], file_name: str = "image.png"
) -> dict:
    """A COCO instances document of one image: one annotation per connected component of each
    class of ``labels`` (ids 1..C; 0 is left out), as uncompressed RLE with its box and area."""
    from scipy import ndimage

    labels = np.asarray(labels)
    h, w = labels.shape
    annotations = []
    for cid in range(1, len(class_names) + 1):
        parts, _ = ndimage.label(labels == cid)
        for i, box in enumerate(ndimage.find_objects(parts), start=1):
            mask = parts == i
            y0, y1, x0, x1 = box[0].start, box[0].stop, box[1].start, box[1].stop
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": 1,
                    "category_id": cid,
                    "segmentation": {"size": [h, w], "counts": _rle(mask)},
                    "area": int(mask.sum()),
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "iscrowd": 0,
                }
            )
    return {
        "images": [{"id": 1, "file_name": file_name, "height": h, "width": w}],
        "categories": [{"id": i, "name": n} for i, n in enumerate(class_names, start=1)],
        "annotations": annotations,
    }


def _rle(mask: np.ndarray) -> list[int]:
    """COCO's uncompressed run-length encoding: runs of 0 and 1 in column-major order, starting
    with a run of 0."""
    flat = np.asarray(mask, bool).ravel(order="F")
    change = np.flatnonzero(np.diff(flat.astype(np.int8))) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    runs = np.diff(bounds).tolist()
    return runs if not flat[0] else [0, *runs]


def simulate_strokes(
    truth: np.ndarray,
    budget: float = 0.01,
    *,
    length: int = 25,
    width: int = 3,
    margin: int = 4,
    random_state: int = 0,
) -> np.ndarray:
    """Strokes a user might paint, drawn from a truth (class ids 1..C): short straight strokes
    (``length`` pixels, ``width`` wide) well inside each class (at least ``margin`` pixels from
    its edge), about the same number per class, until ``budget`` (a fraction of the pixels) is
    spent. For benchmarks and examples: the label budget is what a person would spend."""
    from scipy import ndimage

    truth = np.asarray(truth)
    rng = np.random.default_rng(random_state)
    strokes = np.zeros(truth.shape, np.int64)
    classes = [int(c) for c in np.unique(truth) if c > 0]
    limit = budget * truth.size
    inside = {
        c: np.argwhere(ndimage.binary_erosion(truth == c, iterations=margin)) for c in classes
    }
    for c in classes:  # small classes: no erosion rather than no stroke
        if not len(inside[c]):
            inside[c] = np.argwhere(truth == c)
    full: set[int] = set()  # classes whose next stroke would pass the budget
    for _ in range(10_000):
        progress = False
        for c in classes:
            if c in full or not len(inside[c]):
                continue
            trial = strokes.copy()
            _stroke(trial, truth, c, inside[c][rng.integers(len(inside[c]))], rng, length, width)
            if (trial > 0).sum() > limit:  # the budget is a promise: never past it
                full.add(c)
                continue
            strokes = trial
            progress = True
        if not progress:
            break
    return strokes


def _stroke(strokes, truth, c, start, rng, length, width) -> None:
    """A straight stroke from ``start`` in a random direction, stopping at the class's edge."""
    angle = rng.uniform(0, np.pi)
    dy, dx = np.sin(angle), np.cos(angle)
    h, w = truth.shape
    r = width // 2
    for t in range(length):
        y, x = round(float(start[0]) + t * dy), round(float(start[1]) + t * dx)
        if not (0 <= y < h and 0 <= x < w) or truth[y, x] != c:
            break
        y0, y1, x0, x1 = max(0, y - r), min(h, y + r + 1), max(0, x - r), min(w, x + r + 1)
        patch = truth[y0:y1, x0:x1] == c
        strokes[y0:y1, x0:x1][patch] = c


def corrective_strokes(
    truth: np.ndarray,
    pred: np.ndarray,
    strokes: np.ndarray,
    budget: float = 0.005,
    *,
    length: int = 25,
    width: int = 3,
    random_state: int = 0,
) -> np.ndarray:
    """The strokes a user adds after seeing ``pred``: in the largest wrongly predicted regions
    first, each stroke of the true class through the region's interior (slivers along edges,
    where no one paints, are left), until ``budget`` (a fraction of the pixels) more is spent.
    Returns the new strokes (old ones kept)."""
    from scipy import ndimage

    rng = np.random.default_rng(random_state)
    strokes = np.array(strokes, np.int64, copy=True)
    wrong = (pred != truth) & (truth > 0)
    parts, n = ndimage.label(wrong)
    if not n:
        return strokes
    sizes = np.bincount(parts.ravel())[1:]
    limit = (strokes > 0).sum() + budget * truth.size
    for index in np.argsort(sizes)[::-1]:
        region = parts == index + 1
        core = ndimage.binary_erosion(region, iterations=2)
        if not core.any():
            core = ndimage.binary_erosion(region, iterations=1)
        if not core.any():  # a sliver along an edge: no one paints there, it teaches nothing
            continue
        where = np.argwhere(core)
        for _ in range(max(1, min(4, int(sizes[index]) // 400))):
            if (strokes > 0).sum() >= limit:
                return strokes
            y, x = where[rng.integers(len(where))]
            trial = strokes.copy()
            _stroke(
                trial, np.where(region, truth, -1), int(truth[y, x]), (y, x), rng, length, width
            )
            if (trial > 0).sum() > limit:
                return strokes
            strokes = trial
    return strokes
