"""``seglab app``: a local web app to explore every method on your own images.

Needs the ``app`` extra (``pip install "seglab[app]"``: Starlette and uvicorn). See
:mod:`seglab.app.server`.
"""

from .server import App, build_app, find_checkpoints, serve

__all__ = ["App", "build_app", "find_checkpoints", "serve"]
