"""``seglab app``: a local web app to explore every method on your own images.

A small Starlette application and one page of our own (``page.html``: inline style and script, no
CDN, no fonts, no analytics). It calls the library functions that ``seglab compare`` calls
(:func:`seglab.segment.segment`, :func:`~seglab.segment.segment_with_model`,
:func:`seglab.compare.score`): there is no second pipeline.

Safety: it listens on 127.0.0.1 unless told otherwise; uploads are bounded in bytes and in pixels
(checked from the header before decoding); each browser tab has its own session id and its own
folder inside one temporary folder, removed when the server stops; files are served only from
inside a session's folder; segmentations run in worker threads, one at a time per session, so the
server keeps serving while a long run goes on.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np

from .. import io

logger = logging.getLogger(__name__)

PAGE = Path(__file__).with_name("page.html")
_SESSION = re.compile(r"^[A-Za-z0-9-]{8,64}$")
_NAMES = {"kmeans": "k-means", "meanshift": "mean-shift"}


def _defaults() -> dict:
    """The estimators' own defaults, shown in the page (the library is the one source)."""
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


def find_checkpoints(runs: Path) -> dict[str, dict]:
    """``{name: {"path", "model"}}`` for every ``best.pt`` (else ``last.pt``) under ``runs``."""
    from ..engine import load_checkpoint

    found: dict[str, dict] = {}
    if not runs.is_dir():
        return found
    for path in sorted(runs.rglob("*.pt")):
        if path.name not in ("best.pt", "last.pt"):
            continue
        name = path.parent.relative_to(runs).as_posix() or path.stem
        if name in found and path.name == "last.pt":
            continue
        try:
            model = load_checkpoint(path)["config"]["model"]["name"]
        except (ValueError, KeyError, FileNotFoundError):
            continue
        found[name] = {"path": path, "model": model}
    return found


class Session:
    """One browser tab: its folder, its image, its truth, and a lock so runs don't overlap."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.image: np.ndarray | None = None
        self.truth: np.ndarray | None = None
        self.runs = 0
        self.lock = threading.Lock()


class App:
    """The application state: limits, the temporary folder, sessions and loaded models."""

    def __init__(self, runs: str | Path = "runs", max_bytes: int = 20_000_000,
                 max_pixels: int = 25_000_000) -> None:  # fmt: skip
        self.runs = Path(runs)
        self.max_bytes, self.max_pixels = max_bytes, max_pixels
        self.tmp = Path(tempfile.mkdtemp(prefix="seglab-app-"))
        self.sessions: dict[str, Session] = {}
        self.checkpoints = find_checkpoints(self.runs)
        self.models: dict[str, Any] = {}
        self._guard = threading.Lock()

    def close(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)

    def session(self, sid: str | None) -> Session:
        if not sid or not _SESSION.match(sid):
            raise ValueError("the page sent no valid session id; reload the page")
        with self._guard:
            if sid not in self.sessions:
                folder = self.tmp / sid
                folder.mkdir()
                self.sessions[sid] = Session(folder)
            return self.sessions[sid]

    def model(self, name: str):
        if name not in self.checkpoints:
            raise ValueError(f"unknown checkpoint {name!r}")
        with self._guard:
            if name not in self.models:
                from ..engine import load_model

                self.models[name] = load_model(self.checkpoints[name]["path"], "auto")
            return self.models[name]

    def read_upload(self, data: bytes, filename: str, what: str = "image") -> np.ndarray:
        """Check an upload's size and pixel count (from the header), then decode it."""
        if len(data) > self.max_bytes:
            raise ValueError(
                f"{filename} is {len(data) / 1e6:.1f} MB; the limit is {self.max_bytes / 1e6:.0f} MB"
            )
        if not data:
            raise ValueError(f"{filename} is empty")
        path = self.tmp / f"upload-{threading.get_ident()}-{len(data)}"
        path.write_bytes(data)
        try:
            if what == "truth":
                io.image_size(path, self.max_pixels)
                return io.read_labels(path)
            return io.read_image(path, self.max_pixels)
        except ValueError as exc:
            text = str(exc).replace(str(path), filename)
            raise ValueError(f"{text}" if filename in text else f"{filename}: {text}") from None
        finally:
            path.unlink(missing_ok=True)

    def run(self, session: Session, request: dict) -> list[dict]:
        """Segment the session's image with each requested method; write and describe results."""
        from ..compare import score
        from ..segment import segment, segment_with_model, write_segmentation

        if session.image is None:
            raise ValueError("upload an image (or pick a sample) first")
        if not session.lock.acquire(blocking=False):
            raise ValueError("a run is already going on in this page; wait for it to finish")
        try:
            session.runs += 1
            out = session.folder / f"run{session.runs}"
            results = []
            for item in request.get("methods") or [{"method": "kmeans"}, {"method": "meanshift"}]:
                method, params = item.get("method"), _clean(item.get("params") or {})
                if method in ("kmeans", "meanshift"):
                    r = segment(session.image, method, **params)
                    title = _NAMES[method]
                elif method == "checkpoint":
                    name = str(item.get("name"))
                    model, class_map = self.model(name)
                    r = segment_with_model(session.image, model, class_map.names, name)
                    title = f"{name} ({self.checkpoints[name]['model']})"
                else:
                    raise ValueError(f"unknown method {method!r}")
                key = re.sub(r"[^A-Za-z0-9_.-]", "_", r.method)
                write_segmentation(out / key, session.image, r)
                base = f"/files/{session.folder.name}/run{session.runs}/{key}"
                results.append({
                    "method": method,
                    "title": title,
                    "seconds": round(r.seconds, 3),
                    "n_segments": r.n_segments,
                    "overlay": f"{base}/overlay.png",
                    "labels": f"{base}/{io.labels_filename(r.labels)}",
                    "metrics": _finite(score(r, session.truth, None)) if session.truth is not None else {},
                })  # fmt: skip
            return results
        finally:
            session.lock.release()


def _clean(params: dict) -> dict:
    """Parameters from the page as the estimators take them (numbers as numbers)."""
    out = {}
    for key, value in params.items():
        if not re.fullmatch(r"[a-z_]+", str(key)):
            raise ValueError(f"bad parameter name {key!r}")
        if isinstance(value, str) and re.fullmatch(r"-?\d+", value):
            value = int(value)
        elif isinstance(value, str) and re.fullmatch(r"-?\d*\.\d+", value):
            value = float(value)
        out[key] = value
    return out


def _finite(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and np.isfinite(v)}


def build_app(state: App):
    """The Starlette application over ``state``."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import FileResponse, HTMLResponse, JSONResponse
    from starlette.routing import Route

    def fail(message: str, status: int = 400) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status)

    async def page(request: Request):
        return HTMLResponse(PAGE.read_text(encoding="utf-8"), headers={
            "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; "
            "style-src 'self' 'unsafe-inline'; script-src 'self' 'unsafe-inline'",
        })  # fmt: skip

    async def config(request: Request):
        from ..data import SAMPLE_IMAGES

        return JSONResponse({
            "samples": [n for n in SAMPLE_IMAGES if n != "nuclei"],
            "checkpoints": {n: c["model"] for n, c in state.checkpoints.items()},
            "defaults": _defaults(),
            "limits": {"bytes": state.max_bytes, "pixels": state.max_pixels},
        })  # fmt: skip

    async def upload(request: Request):
        try:
            session = state.session(request.headers.get("x-seglab-session"))
            what = request.query_params.get("what", "image")
            form = await request.form(max_files=1, max_fields=4)
            file = form.get("file")
            if file is None or not hasattr(file, "read"):
                return fail("no file in the upload")
            data = await file.read(state.max_bytes + 1)
            array = await asyncio.to_thread(
                state.read_upload, data, file.filename or "upload", what
            )
            if what == "truth":
                if session.image is None or array.shape != session.image.shape[:2]:
                    shape = None if session.image is None else session.image.shape[:2]
                    return fail(f"the truth is {array.shape[::-1]} pixels; the image is "
                                f"{None if shape is None else shape[::-1]}")  # fmt: skip
                session.truth = array
                return JSONResponse({"truth": True, "classes": len(np.unique(array))})
            return JSONResponse(_set_image(session, array))
        except ValueError as exc:
            return fail(str(exc))

    async def sample(request: Request):
        from ..data import sample_image

        try:
            session = state.session(request.headers.get("x-seglab-session"))
            name = request.path_params["name"]
            if name not in ("chelsea", "coffee", "rocket"):
                return fail(f"unknown sample {name!r}")
            return JSONResponse(_set_image(session, sample_image(name)))
        except ValueError as exc:
            return fail(str(exc))

    async def run(request: Request):
        try:
            session = state.session(request.headers.get("x-seglab-session"))
            body = await request.json()
            results = await asyncio.to_thread(
                state.run, session, body if isinstance(body, dict) else {}
            )
            return JSONResponse({"results": results})
        except ValueError as exc:
            return fail(str(exc))
        except Exception as exc:  # a failed run is reported in the page; the server goes on
            logger.exception("run failed")
            return fail(f"the run failed: {type(exc).__name__}: {exc}", 500)

    async def files(request: Request):
        sid, rest = request.path_params["sid"], request.path_params["path"]
        if not _SESSION.match(sid) or sid not in state.sessions:
            return fail("not found", 404)
        root = state.sessions[sid].folder.resolve()
        path = (root / rest).resolve()
        if not path.is_relative_to(root) or not path.is_file():
            return fail("not found", 404)
        return FileResponse(path)

    def _set_image(session: Session, array: np.ndarray) -> dict:
        from ..image import to_uint8_rgb

        session.image, session.truth = array, None
        session.runs += 1
        name = f"image{session.runs}.png"
        io.write_image(session.folder / name, to_uint8_rgb(array))
        h, w = array.shape[:2]
        return {"width": w, "height": h, "preview": f"/files/{session.folder.name}/{name}"}

    limit = {"max_body_size": state.max_bytes + 1_000_000}  # bounded at the door where supported
    if "max_body_size" not in inspect.signature(Starlette).parameters:
        limit = {}
    return Starlette(**limit, routes=[
        Route("/", page),
        Route("/api/config", config),
        Route("/api/upload", upload, methods=["POST"]),
        Route("/api/sample/{name}", sample, methods=["POST"]),
        Route("/api/run", run, methods=["POST"]),
        Route("/files/{sid}/{path:path}", files),
    ])  # fmt: skip


def serve(host: str = "127.0.0.1", port: int = 7860, runs: str | Path = "runs",
          max_bytes: int = 20_000_000, max_pixels: int = 25_000_000, ready=None) -> None:  # fmt: skip
    """Run the app until interrupted; the temporary folder is removed at exit. ``ready(url)``
    is called once the server listens (the command line prints the address)."""
    try:
        import uvicorn
    except ImportError:
        raise ValueError("seglab app needs its extra: pip install 'seglab[app]'") from None
    state = App(runs, max_bytes, max_pixels)
    try:
        server = uvicorn.Server(uvicorn.Config(build_app(state), host, port, log_level="warning"))
        if ready is not None:
            original = server.startup

            async def startup(sockets=None):
                await original(sockets)
                ready(f"http://{host}:{port}/")

            server.startup = startup
        server.run()
    finally:
        state.close()
