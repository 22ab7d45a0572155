"""The ``seglab`` command line: each subcommand parses its options, calls the library, reports.

A user's error prints one line on stderr, exit status 2. Modules: :mod:`.segment` (segment, demo,
compare), :mod:`.engine` (train, evaluate, predict, export, models), :mod:`.app`, :mod:`._common`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from .. import __version__
from .._signals import Interrupted, handle_termination
from ..io import describe_os_error
from . import _common, app, engine, segment
from ._common import EXIT_USAGE, Parser, UsageError

__all__ = ["UsageError", "build_parser", "main"]


def build_parser() -> Parser:
    """The ``seglab`` parser with every subcommand."""
    parser = Parser(
        prog="seglab",
        formatter_class=_common.RAW,
        description="Image segmentation: clustering (k-means, mean-shift), fully "
        "convolutional networks and Mask R-CNN.",
        epilog="example:\n  seglab segment photo.jpg --k 5 --out results\n\n"
        "run 'seglab COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"seglab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in (segment, engine, app):
        module.add_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """The ``seglab`` command; returns the exit status."""
    try:
        return _main(argv)
    except BrokenPipeError:  # output piped into `head` and the like: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error already reported
        return int(exc.code or 0)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    _common.configure_logging(getattr(args, "quiet", False))
    try:
        with handle_termination():  # SIGTERM and SIGHUP clean up as Ctrl-C does
            return args.run(args)
    except (UsageError, ValueError, FileNotFoundError) as exc:
        message = _common.in_flags(" ".join(str(exc).split()), _common.option_strings(parser))
        print(f"seglab: error: {message}", file=sys.stderr)
    except OSError as exc:  # a read-only file system, a full disk, a path under a file, ...
        message = _common.in_flags(describe_os_error(exc), _common.option_strings(parser))
        print(f"seglab: error: {message}", file=sys.stderr)
    except Interrupted as exc:
        print(f"seglab: interrupted by {exc}; nothing earlier was lost", file=sys.stderr)
        return exc.exit_status
    except KeyboardInterrupt:
        print("seglab: interrupted", file=sys.stderr)
        return 130
    return EXIT_USAGE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
