"""``seglab app``: parse, start the local server, print its address."""

from __future__ import annotations

import argparse

from . import _common as c


def add_parsers(sub) -> None:
    # fmt: off
    """The ``app`` subcommand."""
    p = c.command(sub, "app", "a local web app: every method on your own images",
                  "A local web app (pip install 'seglab[app]'); uploads and results live in a "
                  "temporary folder removed at exit.", "example:\n  seglab app --runs runs/\n")
    p.add_argument("--host", default="127.0.0.1", help="(default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=c.number(1, below=65536, kind=int), default=7860,
                   help="(default: 7860)")
    p.add_argument("--max-memory-mb", type=c.number(0, strict=True), default=2000.0,
                   help="memory the images of all sessions may hold; the least recently used "
                   "sessions are closed beyond it (default: 2000)")
    p.add_argument("--idle-minutes", type=c.number(0, strict=True), default=60.0,
                   help="close a session unused this long (default: 60)")
    p.add_argument("--workers", type=c.integer(1), default=2,
                   help="segmentations that run at once; others wait their turn (default: 2)")
    p.add_argument("--runs", default="runs", help="where to look for checkpoints (default: runs)")
    p.add_argument("--max-upload-mb", type=c.number(0, strict=True), default=20.0, help="(20)")
    p.add_argument("--max-pixels", type=c.integer(1), default=25_000_000, help="(25000000)")
    p.set_defaults(run=run_app)
    # fmt: on


def run_app(args: argparse.Namespace) -> int:
    """Serve the app until a signal stops it."""
    from ..app import serve

    serve(
        args.host,
        args.port,
        args.runs,
        int(args.max_upload_mb * 1e6),
        args.max_pixels,
        ready=lambda url: print(f"seglab: the app is at {url} (Ctrl+C stops it)", flush=True),
        max_memory=int(args.max_memory_mb * 1e6),
        idle_timeout=args.idle_minutes * 60,
        workers=args.workers,
    )
    return 0
