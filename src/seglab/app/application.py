"""The application: the endpoints, the guard and the error handler put together, and the
server that runs it until a signal stops it."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Any

from . import labelling, routes
from ._http import Guard, error_response
from .server import LOOPBACK_HOSTS, App

logger = logging.getLogger(__name__)


def build_app(app_state: App):
    """The Starlette application over ``app_state``; its temporary folder goes with the
    application's lifespan (and, failing that, with the interpreter)."""
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.routing import Route

    @contextlib.asynccontextmanager
    async def lifespan(application):
        # the clustering kernels load (or, on a first run, compile) while the user picks an
        # image, so that the first Run does not wait for them
        app_state.warming = app_state.pool.submit(prepare_kernels)
        try:
            yield
        finally:
            app_state.close()

    table = [
        Route("/", routes.page),
        Route("/api/session", routes.new_session, methods=["POST"]),
        Route("/api/config", routes.config),
        Route("/api/upload", routes.upload, methods=["POST"]),
        Route("/api/sample/{name}", routes.sample, methods=["POST"]),
        Route("/api/run", routes.run, methods=["POST"]),
        *labelling.routes(),
        Route("/files/{sid}/{path:path}", routes.files),
        Route("/{name:str}", routes.static),
    ]
    application = Starlette(
        routes=table,
        middleware=[Middleware(Guard, state=app_state)],
        exception_handlers={
            ValueError: error_response,
            FileNotFoundError: error_response,
            404: error_response,
            405: error_response,
            Exception: error_response,
        },
        lifespan=lifespan,
    )
    application.state.seglab = app_state
    return application


def prepare_kernels() -> None:
    """Run k-means and mean-shift once on a tiny colour image (:func:`seglab.segment.warm_up`)."""
    import numpy as np

    from ..segment import warm_up

    tiny = np.zeros((12, 12, 3), np.uint8)
    for method in ("kmeans", "meanshift"):
        try:
            warm_up(tiny, method, {})
        except Exception:  # a warm-up is a courtesy: the Run reports any real problem
            logger.debug("warming up %s failed", method, exc_info=True)


def serve(
    host: str = "127.0.0.1",
    port: int = 7860,
    runs: str | Path = "runs",
    max_bytes: int = 20_000_000,
    max_pixels: int = 25_000_000,
    ready=None,
    **options: Any,
) -> None:
    """Run the app until interrupted; the temporary folder is removed when it stops (Ctrl-C,
    SIGTERM, SIGHUP). ``ready(url)`` is called once the server listens (the command line prints
    the address); ``options`` go to :class:`App` (``max_memory``, ``idle_timeout``,
    ``workers``)."""
    try:
        import uvicorn
    except ImportError:
        raise ValueError("seglab app needs its extra: pip install 'seglab[app]'") from None
    if host not in LOOPBACK_HOSTS:
        logger.warning(
            "listening on %s: anyone who can reach this machine can use the app, read its "
            "checkpoint list and run work on it; use the default 127.0.0.1 to keep it private",
            host or "every interface",
        )
    state = App(runs, max_bytes, max_pixels, host=host, **options)
    try:
        config = uvicorn.Config(build_app(state), host, port, log_level="warning")
        server = uvicorn.Server(config)
        if ready is not None:
            original = server.startup

            async def startup(sockets=None):
                await original(sockets)
                if server.started:
                    ready(f"http://{host}:{port}/")

            server.startup = startup
        server.run()
        if not server.started:
            raise ValueError(
                f"the app could not listen on {host}:{port} (in use?); try another `port`"
            )
    finally:
        state.close()
