"""The app's endpoints: the page, sessions, uploads, samples and runs, one function each.

Every answer is JSON (but the page, its two static files and result files); every refusal is a
4xx with ``{"error": message}`` (:mod:`seglab.app._http`). The labelling endpoints are in
:mod:`seglab.app.labelling`; :mod:`seglab.app.application` puts them together.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from .. import io
from ._http import Refused, session_of, state
from .server import App, Session

HERE = Path(__file__).parent
STATIC = {"page.css": "text/css", "page.js": "text/javascript"}

#: What one run may ask for.
MAX_METHODS = 8
#: The parameters the page may set, per method, with their types and bounds.
PARAMETERS: dict[str, dict[str, tuple]] = {
    "kmeans": {
        "n_clusters": (int, 1, 64),
        "features": (str,),
        "spatial_weight": (float, 0.0, 1e6, "auto"),
        "min_region_size": (int, 0, 1_000_000),
        "n_init": (int, 1, 10),
        "max_iter": (int, 1, 1000),
        "random_state": (int, 0, 2**32 - 1),
    },
    "meanshift": {
        "spatial_bandwidth": (float, 0.5, 64.0),
        "range_bandwidth": (float, 0.1, 255.0),
        "kernel": (str,),
        "min_region_size": (int, 0, 1_000_000),
        "speedup": (int, 0, 2),
    },
}
_NAMES = {"kmeans": "k-means", "meanshift": "mean-shift"}


# -- endpoints ----------------------------------------------------------------------------------


async def page(request):
    """The page itself."""
    from starlette.responses import HTMLResponse

    return HTMLResponse((HERE / "page.html").read_text(encoding="utf-8"))


async def static(request):
    """The page's stylesheet and script (nothing else is served from the package)."""
    from starlette.responses import Response

    name = request.path_params["name"]
    if name not in STATIC:
        raise Refused("not found", 404)
    return Response((HERE / name).read_bytes(), media_type=STATIC[name])


async def new_session(request):
    """A new session, its id made by the server."""
    from starlette.responses import JSONResponse

    return JSONResponse({"session": state(request).new_session().sid})


async def config(request):
    """What the page needs to start: samples, checkpoints, the estimators' defaults, limits."""
    from starlette.responses import JSONResponse

    app = state(request)
    return JSONResponse(
        {
            "samples": app_samples(),
            "checkpoints": {n: c["model"] for n, c in app.checkpoints.items()},
            "defaults": _defaults(),
            "limits": {"bytes": app.max_bytes, "pixels": app.max_pixels, "methods": MAX_METHODS},
        }
    )


async def upload(request):
    """An image, its truth, or a mask to correct (``?what=image|truth|mask``)."""
    from starlette.responses import JSONResponse

    app, session = state(request), session_of(request)
    what = request.query_params.get("what", "image")
    if what not in ("image", "truth", "mask"):
        raise Refused(f"unknown upload kind {what!r}; expected image, truth or mask")
    async with request.form(max_files=1, max_fields=4) as form:
        file = form.get("file")
        if file is None or not hasattr(file, "read"):
            raise Refused("no file in the upload")
        data, filename = await file.read(app.max_bytes + 1), file.filename or "upload"
    array = await asyncio.to_thread(app.read_upload, data, filename, what)
    if what == "image":
        return JSONResponse(set_image(app, session, array))
    if session.image is None:
        raise Refused("upload an image first, then its truth or mask")
    if array.shape != session.image.shape[:2]:
        h, w = session.image.shape[:2]
        raise Refused(
            f"{filename} is {array.shape[1]} x {array.shape[0]} pixels; the image "
            f"is {w} x {h}: they must match"
        )
    if what == "mask":
        return JSONResponse(_mask_reply(array))
    session.truth = array
    app.hold(session)
    return JSONResponse({"truth": True, "classes": len(np.unique(array))})


async def sample(request):
    """A bundled photo as the session's image."""
    from starlette.responses import JSONResponse

    from ..data import sample_image

    app, session = state(request), session_of(request)
    name = request.path_params["name"]
    samples = app_samples()
    if name not in samples:
        raise Refused(f"unknown sample {name!r}; expected one of {', '.join(samples)}", 404)
    return JSONResponse(set_image(app, session, sample_image(name)))


def app_samples() -> list[str]:
    """The bundled photos offered as samples (the nuclei strip is the demo's held-out data)."""
    from ..data import SAMPLE_IMAGES

    return [n for n in SAMPLE_IMAGES if n != "nuclei"]


async def run(request):
    """Segment the session's image with the methods asked for, in the run pool."""
    from starlette.responses import JSONResponse

    app, session = state(request), session_of(request)
    methods = parse_methods(await _json(request), app)
    if session.image is None:
        raise Refused("upload an image (or pick a sample) first")
    if not session.lock.acquire(blocking=False):
        raise Refused("a run is already going on in this page; wait for it to finish", 409)
    try:  # the run pool: first come, first served; uploads and pages are never queued behind
        loop = asyncio.get_running_loop()
        results = await loop.run_in_executor(app.pool, run_methods, app, session, methods)
    finally:
        session.lock.release()
    return JSONResponse({"results": results})


async def files(request):
    """A result file of a session, only from inside its folder."""
    from starlette.responses import FileResponse

    app = state(request)
    sid, rest = request.path_params["sid"], request.path_params["path"]
    session = app.sessions.get(sid)
    if session is None or "\x00" in rest:
        raise Refused("not found", 404)
    root = session.folder.resolve()
    path = (root / rest).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        raise Refused("not found", 404)
    return FileResponse(path)


# -- the work behind them -----------------------------------------------------------------------


def set_image(app: App, session: Session, array: np.ndarray) -> dict:
    """Make ``array`` the session's image (its truth and labelling are dropped)."""
    from ..image import to_uint8_rgb

    session.image, session.truth, session.strokes = array, None, None
    session.segments = {}
    app.hold(session)
    folder, url = session.next_folder("image")
    io.write_image(folder.with_suffix(".png"), to_uint8_rgb(array))
    h, w = array.shape[:2]
    return {"width": w, "height": h, "preview": f"{url}.png"}


def _mask_reply(array: np.ndarray) -> dict:
    """A mask to correct in the page: its class ids (0 = unlabelled, 1..10) as base64 bytes."""
    import base64

    from .labelling import MAX_CLASSES

    top = int(array.max(initial=0))
    if array.min(initial=0) < 0 or top > MAX_CLASSES:
        raise Refused(
            f"the mask holds the value {top}; the page labels classes 1..{MAX_CLASSES} "
            "(0 = unlabelled)"
        )
    data = base64.b64encode(array.astype(np.uint8).tobytes()).decode("ascii")
    return {
        "width": int(array.shape[1]),
        "height": int(array.shape[0]),
        "classes": top,
        "data": data,
    }


def parse_methods(body: Any, app: App) -> list[dict]:
    """The run's methods from the page's JSON, checked: at most :data:`MAX_METHODS`, known
    methods, known parameters within their bounds (the page can't lift a server limit)."""
    if not isinstance(body, dict):
        raise Refused('the request must be a JSON object such as {"methods": [...]}')
    methods = body.get("methods")
    if methods is None or methods == []:
        methods = [{"method": "kmeans"}, {"method": "meanshift"}]
    if not isinstance(methods, list) or not all(isinstance(m, dict) for m in methods):
        raise Refused('methods must be a list of objects such as {"method": "kmeans"}')
    if len(methods) > MAX_METHODS:
        raise Refused(f"{len(methods)} methods in one run; at most {MAX_METHODS}")
    checked = []
    for item in methods:
        method = item.get("method")
        if method in PARAMETERS:
            params = item.get("params") or {}
            if not isinstance(params, dict):
                raise Refused(f"params of {method} must be an object")
            checked.append({"method": method, "params": _parameters(method, params)})
        elif method == "checkpoint":
            name = str(item.get("name"))
            if name not in app.checkpoints:
                raise Refused(f"unknown checkpoint {name!r}")
            checked.append({"method": method, "name": name})
        else:
            raise Refused(f"unknown method {method!r}; expected kmeans, meanshift or checkpoint")
    return checked


def _parameters(method: str, params: dict) -> dict:
    allowed = PARAMETERS[method]
    out = {}
    for key, value in params.items():
        if key not in allowed:
            raise Refused(
                f"{method} takes no parameter {key!r} here; it takes {', '.join(allowed)}"
            )
        kind, *bounds = allowed[key]
        if len(bounds) == 3 and value == bounds[2]:
            out[key] = value
            continue
        try:
            value = kind(value) if kind is str else kind(float(value))
            if kind is int and float(params[key]) != value:
                raise ValueError
        except (TypeError, ValueError, OverflowError):
            raise Refused(
                f"{method} {key} must be a {kind.__name__}, got {params[key]!r}"
            ) from None
        if bounds and not (bounds[0] <= value <= bounds[1]):
            raise Refused(f"{method} {key} must lie in {bounds[0]:g}..{bounds[1]:g}, got {value}")
        out[key] = value
    return out


def run_methods(app: App, session: Session, methods: list[dict]) -> list[dict]:
    """Segment the session's image with each method; write and describe the results."""
    from ..compare import score
    from ..segment import segment, segment_with_model, write_segmentation

    image = session.image
    out, url = session.next_folder()
    results = []
    for item in methods:
        method = item["method"]
        if method == "checkpoint":
            name = item["name"]
            model, class_map = app.model(name)
            r = segment_with_model(image, model, class_map.names, name)
            title = f"{name} ({app.checkpoints[name]['model']})"
        else:
            r = segment(image, method, **item["params"])
            title = _NAMES[method]
        key = re.sub(r"[^A-Za-z0-9_.-]", "_", r.method)
        write_segmentation(out / key, image, r)
        metrics = score(r, session.truth, None) if session.truth is not None else {}
        results.append(
            {
                "method": method,
                "title": title,
                "seconds": round(r.seconds, 3),
                "n_segments": r.n_segments,
                "overlay": f"{url}/{key}/overlay.png",
                "labels": f"{url}/{key}/{io.labels_filename(r.labels)}",
                "metrics": io.json_safe(metrics),
            }
        )
    return results


def _defaults() -> dict:
    """The estimators' own defaults, shown in the page (the library is the one source)."""
    import inspect

    from ..cluster import KMeansSegmenter, MeanShiftSegmenter

    def of(cls, names):
        params = inspect.signature(cls).parameters
        return {n: params[n].default for n in names}

    return {
        "kmeans": of(KMeansSegmenter, ["n_clusters", "features", "spatial_weight"])
        | {"min_region_size": 0},
        "meanshift": of(
            MeanShiftSegmenter,
            ["spatial_bandwidth", "range_bandwidth", "kernel", "min_region_size"],
        ),
    }


async def _json(request) -> Any:
    try:
        return json.loads(await request.body())
    except (ValueError, UnicodeDecodeError):
        raise Refused("the request body is not valid JSON") from None


# -- the application -----------------------------------------------------------------------------
