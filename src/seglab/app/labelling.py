"""The app's labelling endpoints: segments for the fill tool, and Train on the painted strokes.

The page keeps the strokes (one class id per pixel, 0 = unlabelled) and sends them as raw bytes;
training and prediction run in the app's run pool (:func:`seglab.interactive.fit_strokes`), and the
results are files of the session: the prediction over the image in the user's colours, its
uncertainty, the labels (class-id PNG), the strokes, the mask as COCO JSON and the segmenter
(``.npz``, for ``seglab predict MODEL DIR``).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from typing import Any

import numpy as np

from .. import io
from ._http import Refused, session_of, state
from .server import App, Session

#: The most classes the page offers.
MAX_CLASSES = 10
_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")


async def segments(request):
    """The session image's k-means or mean-shift segments as little-endian int32 ids (H*W), for
    the fill tool: one click labels a whole segment."""
    from starlette.responses import Response

    app, session = state(request), session_of(request)
    method = request.query_params.get("method", "kmeans")
    if method not in ("kmeans", "meanshift"):
        raise Refused(f"the fill tool takes kmeans or meanshift segments, not {method!r}")
    if session.image is None:
        raise Refused("upload an image (or pick a sample) first")
    cache = session.segments
    if method not in cache:
        loop = asyncio.get_running_loop()
        cache[method] = await loop.run_in_executor(app.pool, _segment_ids, session.image, method)
    return Response(cache[method].tobytes(), media_type="application/octet-stream")


def _segment_ids(image: np.ndarray, method: str) -> np.ndarray:
    from ..segment import segment

    params = {"n_clusters": 8} if method == "kmeans" else {}
    labels = segment(image, method, **params).labels
    if method == "kmeans":  # clusters split into connected pieces: a click fills one piece
        from ..cluster import connected_regions

        labels = connected_regions(labels)
    return labels.astype("<i4").ravel()


async def train(request):
    """Fit a segmenter on the posted strokes and predict the whole image."""
    from starlette.responses import JSONResponse

    app, session = state(request), session_of(request)
    if session.image is None:
        raise Refused("upload an image (or pick a sample) first")
    h, w = session.image.shape[:2]
    async with request.form(max_files=1, max_fields=2) as form:
        upload, meta_text = form.get("labels"), form.get("meta", "{}")
        if upload is None or not hasattr(upload, "read"):
            raise Refused("no strokes in the request")
        data = await upload.read(h * w + 1)
    if len(data) != h * w:
        raise Refused(f"the strokes are {len(data)} values; the image has {h * w} pixels")
    strokes = np.frombuffer(data, np.uint8).reshape(h, w).astype(np.int64)
    names, colours = _meta(meta_text, int(strokes.max()))
    if not session.lock.acquire(blocking=False):
        raise Refused("a run is already going on in this page; wait for it to finish", 409)
    try:
        loop = asyncio.get_running_loop()
        reply = await loop.run_in_executor(
            app.pool, train_and_predict, app, session, strokes, names, colours
        )
    finally:
        session.lock.release()
    return JSONResponse(reply)


def _meta(text: Any, top: int) -> tuple[list[str], list[tuple[int, int, int]]]:
    try:
        meta = json.loads(str(text))
    except ValueError:
        raise Refused('meta must be JSON such as {"names": [...], "colors": [...]}') from None
    names, colours = meta.get("names") or [], meta.get("colors") or []
    if not isinstance(names, list) or not isinstance(colours, list):
        raise Refused("names and colors must be lists")
    if top > MAX_CLASSES:
        raise Refused(f"strokes use class {top}; at most {MAX_CLASSES} classes")
    names = [str(n)[:40] or f"class {i}" for i, n in enumerate(names[:MAX_CLASSES], start=1)]
    names += [f"class {i}" for i in range(len(names) + 1, top + 1)]
    rgb = []
    for i in range(max(top, len(names))):
        c = str(colours[i]) if i < len(colours) else ""
        rgb.append(
            tuple(int(c[k : k + 2], 16) for k in (1, 3, 5))
            if _COLOUR.match(c)
            else _DEFAULT[i % 10]
        )
    return names, rgb


_DEFAULT = [
    (230, 25, 75),
    (60, 180, 75),
    (0, 130, 200),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
    (210, 245, 60),
    (250, 190, 212),
    (0, 128, 128),
]


def train_and_predict(app: App, session: Session, strokes, names, colours) -> dict:
    """Train, predict, and write the session's result files; the reply the page shows."""
    from ..image import to_uint8_rgb
    from ..interactive import fit_strokes, labels_to_coco

    image = session.image
    t0 = time.perf_counter()
    seg = fit_strokes(image, strokes, class_names=names[: int(strokes.max())])
    trained = time.perf_counter() - t0
    proba = seg.predict_proba(image)
    predicted = time.perf_counter() - t0 - trained
    labels = proba.argmax(axis=2) + 1
    session.strokes = seg
    folder, url = session.next_folder("train")
    palette = np.array([(0, 0, 0), *colours], np.float64)
    shown = to_uint8_rgb(image).astype(np.float64)
    overlay = np.round(0.45 * shown + 0.55 * palette[labels]).astype(np.uint8)
    c = proba.shape[2]
    doubt = (1 - proba.max(axis=2)) * c / max(c - 1, 1)  # 0 sure .. 1 a tie of all classes
    io.write_image(folder / "prediction.png", overlay)
    io.write_image(folder / "uncertainty.png", _heat(doubt))
    io.write_labels(folder / "labels.png", labels)
    io.write_labels(folder / "strokes.png", strokes)
    io.write_json(folder / "coco.json", labels_to_coco(labels, seg.class_names))
    seg.save(folder / "segmenter.npz")
    return {
        "train_seconds": round(trained, 3),
        "predict_seconds": round(predicted, 3),
        "labelled_pixels": int((strokes > 0).sum()),
        "samples": seg.n_samples,
        "classes": list(seg.class_names),
        "pixels_per_class": np.bincount(labels.ravel(), minlength=c + 1)[1:].tolist(),
        "mean_uncertainty": round(float(doubt.mean()), 4),
        "prediction": f"{url}/prediction.png",
        "uncertainty": f"{url}/uncertainty.png",
        "labels": f"{url}/labels.png",
        "strokes": f"{url}/strokes.png",
        "coco": f"{url}/coco.json",
        "segmenter": f"{url}/segmenter.npz",
    }


def _heat(doubt: np.ndarray) -> np.ndarray:
    """Uncertainty as a picture: dark blue where the forest is sure, yellow where it hesitates."""
    t = np.clip(doubt, 0, 1)[..., None]
    sure, unsure = np.array([20, 30, 70.0]), np.array([250, 220, 40.0])
    return np.round(sure + (unsure - sure) * t).astype(np.uint8)


def routes() -> list:
    """The labelling endpoints as Starlette routes."""
    from starlette.routing import Route

    return [
        Route("/api/strokes/segments", segments, methods=["POST"]),
        Route("/api/strokes/train", train, methods=["POST"]),
    ]
