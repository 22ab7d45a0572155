"""``seglab app``: a local web app to explore every method on your own images.

A small Starlette application and a page of our own (``page.html``, ``page.css``, ``page.js``: no
CDN, no fonts, no analytics, no inline script). It calls the library functions that ``seglab
compare`` calls (:func:`seglab.segment.segment`, :func:`~seglab.segment.segment_with_model`,
:func:`seglab.compare.score`): there is no second pipeline. The endpoints are in
:mod:`seglab.app.routes`; this module holds the state they share.

Built to run for days with many users:

* sessions are made by the server (``secrets``), expire when idle, and the decoded images of all
  sessions together are bounded in memory: the least recently used are dropped first, and their
  user is told so;
* segmentations run in a pool of their own, first come first served, one run at a time per
  session, so a long run never stalls the page, uploads, or other users beyond their turn;
* the temporary folder (uploads, results) is removed when the server stops: Ctrl-C, SIGTERM or
  SIGHUP, or the interpreter's exit.
"""

from __future__ import annotations

import atexit
import logging
import secrets
import shutil
import tempfile
import threading
import time
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from .. import io

logger = logging.getLogger(__name__)

#: Host names every app answers to; ``--host`` adds its own.
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
#: Host values that mean "every interface".
WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", ""})


class SessionGone(ValueError):
    """The page's session is unknown, expired or was dropped: the page must start a new one."""


class Session:
    """One browser tab: its folder, its image, its truth, and a lock so runs don't overlap."""

    def __init__(self, sid: str, folder: Path) -> None:
        self.sid = sid
        self.folder = folder
        self.image: np.ndarray | None = None
        self.truth: np.ndarray | None = None
        self.strokes: Any = None  # the labelling tool's trained segmenter, if any
        self.segments: dict[str, np.ndarray] = {}  # the fill tool's segment ids, per method
        self.runs = 0
        self.lock = threading.Lock()
        self.last_used = time.monotonic()

    @property
    def nbytes(self) -> int:
        """The memory the session's arrays hold."""
        return sum(a.nbytes for a in (self.image, self.truth) if a is not None)

    def next_folder(self, prefix: str = "run") -> tuple[Path, str]:
        """A new result folder in the session and its URL path."""
        self.runs += 1
        name = f"{prefix}{self.runs}"
        return self.folder / name, f"/files/{self.sid}/{name}"


class App:
    """The application state: limits, the temporary folder, sessions, loaded models, the pool.

    Parameters
    ----------
    runs : path
        Where to look for checkpoints (``best.pt``, else ``last.pt``, in each run folder).
    max_bytes, max_pixels : int
        The largest upload, in bytes and in pixels (from the header, before decoding).
    max_memory : int
        Bytes the decoded images of all sessions may hold together; the least recently used
        sessions are dropped beyond it.
    idle_timeout : float
        Seconds after which an unused session is dropped.
    workers : int
        Segmentations that run at the same time (others wait their turn).
    host : str
        The address the server listens on: its name is accepted in the ``Host`` header beside
        the loopback names; on a wildcard address every host name is accepted.
    """

    def __init__(
        self,
        runs: str | Path = "runs",
        max_bytes: int = 20_000_000,
        max_pixels: int = 25_000_000,
        *,
        max_memory: int = 2_000_000_000,
        idle_timeout: float = 3600.0,
        workers: int = 2,
        host: str = "127.0.0.1",
    ) -> None:
        self.runs = Path(runs)
        self.max_bytes, self.max_pixels = max_bytes, max_pixels
        self.max_memory, self.idle_timeout = max_memory, idle_timeout
        self.allowed_hosts = None if host in WILDCARD_HOSTS else LOOPBACK_HOSTS | {host.lower()}
        self.tmp = Path(tempfile.mkdtemp(prefix="seglab-app-"))
        self.sessions: OrderedDict[str, Session] = OrderedDict()
        self._dropped: OrderedDict[str, str] = OrderedDict()  # sid -> why, for the message
        self.checkpoints = find_checkpoints(self.runs)
        self.models: dict[str, Any] = {}
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="seglab-run")
        self.warming: Future | None = None  # the kernels' warm-up, started with the app
        self._guard = threading.Lock()
        atexit.register(self.close)

    def close(self) -> None:
        """Stop the pool and remove the temporary folder (idempotent)."""
        self.pool.shutdown(wait=False, cancel_futures=True)
        shutil.rmtree(self.tmp, ignore_errors=True)
        atexit.unregister(self.close)

    # -- sessions ---------------------------------------------------------------------------

    def new_session(self) -> Session:
        """A session with a server-made id (never one a client chose)."""
        with self._guard:
            self._expire()
            sid = secrets.token_urlsafe(24)
            folder = self.tmp / sid
            folder.mkdir()
            self.sessions[sid] = session = Session(sid, folder)
            return session

    def session(self, sid: str | None) -> Session:
        """The live session ``sid``, marked as used now."""
        with self._guard:
            self._expire()
            if sid and sid in self.sessions:
                session = self.sessions[sid]
                session.last_used = time.monotonic()
                self.sessions.move_to_end(sid)
                return session
            why = self._dropped.get(sid or "", "this page's session is not known to the server")
        raise SessionGone(f"{why}; reload the page to start again")

    def hold(self, session: Session) -> None:
        """Keep all sessions' arrays within ``max_memory``: drop the least recently used others
        (never ``session`` itself, whose upload was checked against the upload limits)."""
        with self._guard:
            total = sum(s.nbytes for s in self.sessions.values())
            for sid in list(self.sessions):
                if total <= self.max_memory:
                    break
                if sid != session.sid and not self.sessions[sid].lock.locked():
                    total -= self.sessions[sid].nbytes
                    self._drop(
                        sid,
                        f"your session was closed to make room for newer ones (the "
                        f"server keeps {self.max_memory / 1e6:.0f} MB of images)",
                    )

    def _expire(self) -> None:
        now = time.monotonic()
        for sid, s in list(self.sessions.items()):
            if now - s.last_used > self.idle_timeout and not s.lock.locked():
                idle = f"{self.idle_timeout / 60:.0f} minutes"
                self._drop(sid, f"your session expired after {idle} without use")

    def _drop(self, sid: str, why: str) -> None:
        session = self.sessions.pop(sid)
        shutil.rmtree(session.folder, ignore_errors=True)
        self._dropped[sid] = why
        while len(self._dropped) > 10_000:
            self._dropped.popitem(last=False)

    # -- work -------------------------------------------------------------------------------

    def model(self, name: str):
        """The network of checkpoint ``name``, loaded once."""
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
                f"{filename} is {len(data) / 1e6:.1f} MB; the limit is {self.max_bytes / 1e6:g} MB"
            )
        if not data:
            raise ValueError(f"{filename} is empty")
        fd, name = tempfile.mkstemp(prefix="upload-", dir=self.tmp)
        path = Path(name)
        with open(fd, "wb") as f:
            f.write(data)
        try:
            if what in ("truth", "mask"):
                return io.read_labels(path, self.max_pixels)
            return io.read_image(path, self.max_pixels)
        except ValueError as exc:
            text = str(exc).replace(str(path), filename)
            raise ValueError(text if filename in text else f"{filename}: {text}") from None
        finally:
            path.unlink(missing_ok=True)


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
