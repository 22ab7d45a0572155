"""``seglab app``: a local web app to explore every method on your own images.

Needs the ``app`` extra (``pip install "seglab[app]"``: Starlette and uvicorn). The state is in
:mod:`seglab.app.server`, the endpoints in :mod:`seglab.app.routes`.
"""

from .application import build_app, serve
from .server import App, find_checkpoints

__all__ = ["App", "build_app", "find_checkpoints", "serve"]
