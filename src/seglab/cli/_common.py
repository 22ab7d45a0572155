"""What every subcommand shares: the parser, argument types, shared options, messages."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import re
import sys

import numpy as np

EXIT_USAGE = 2
RAW = argparse.RawDescriptionHelpFormatter


class UsageError(Exception):
    """A problem with the user's input: reported in one line, exit status 2."""


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (no usage dump), exit status 2."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(EXIT_USAGE, f"seglab: error: {message} (see '{self.prog} --help')\n")


def number(minimum: float = 0.0, strict: bool = False, below: float | None = None, kind=float):
    """An argparse type: a finite ``kind`` >= minimum (> with ``strict``), < ``below`` if given."""

    def parse(text: str):
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {kind.__name__}, got {text!r}") from None
        low = v > minimum if strict else v >= minimum
        if not (np.isfinite(v) and low and (below is None or v < below)):
            what = f"{'>' if strict else '>='} {minimum:g}" + (f" and < {below:g}" if below else "")
            raise argparse.ArgumentTypeError(f"expected a finite number {what}, got {text}")
        return v

    return parse


def integer(minimum: int = 1):
    return number(minimum, kind=int)  # an argparse type: an integer >= minimum


def integers(text: str) -> list[int]:
    """``"2,3,5"`` -> [2, 3, 5], each >= 1."""
    values = [integer(1)(t) for t in text.split(",") if t.strip()]
    if not values:
        raise argparse.ArgumentTypeError(f"expected integers >= 1 such as 5 or 2,3,5; got {text!r}")
    return values


def checked_by(module: str, function: str):
    """An argparse type that keeps the text if ``seglab.<module>.<function>(text)`` accepts it
    (imported when first used: the CLI starts fast) and turns its ValueError into the message."""

    def parse(text: str) -> str:
        try:
            getattr(importlib.import_module(f"seglab.{module}"), function)(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return text

    return parse


def command(sub, name: str, help: str, description: str, examples: str) -> Parser:
    """A subcommand parser with its examples as epilog."""
    return sub.add_parser(
        name, help=help, description=description, epilog=examples, formatter_class=RAW
    )


def add_output(p: argparse.ArgumentParser, default_out: str, device: bool = True) -> None:
    """The options every command that writes results shares: --out, --device, --quiet."""
    # fmt: off
    p.add_argument("--out", default=default_out, metavar="DIR", help=f"(default: {default_out})")
    if device:
        p.add_argument("--device", help="cpu, cuda, cuda:N or auto (default: the method's own)")
    p.add_argument("--quiet", action="store_true", help="no progress bars or messages")
    # fmt: on


def add_inputs(p: argparse.ArgumentParser) -> None:
    """Inputs as files, folders or glob patterns, and the options of large batches."""
    # fmt: off
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files, folders or globs")
    p.add_argument("--recursive", action="store_true", help="also take images in sub-folders")
    p.add_argument("--skip-existing", action="store_true",
                   help="leave images whose result folder exists (resumes a batch; finished "
                   "images are kept if a later one fails)")
    p.add_argument("--max-pixels", type=integer(1), metavar="N",
                   help="refuse larger images, from their header (default: 100000000, or the "
                   "SEGLAB_MAX_PIXELS environment variable)")
    # fmt: on


def given(args: argparse.Namespace, names: tuple[str, ...]) -> dict:
    """``{name: value}`` for the options the user gave; those left at None keep the library's
    defaults (the CLI restates none of them)."""
    return {n: getattr(args, n) for n in names if getattr(args, n) is not None}


class _Format(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return (
            "seglab: warning: " if record.levelno >= logging.WARNING else ""
        ) + record.getMessage()


def configure_logging(quiet: bool) -> None:
    """Library messages (the ``seglab`` logger) on stderr: info unless ``quiet``, warnings always."""
    logger = logging.getLogger("seglab")
    for handler in [h for h in logger.handlers if isinstance(h.formatter, _Format)]:
        logger.removeHandler(handler)
    logger.addHandler(handler := logging.StreamHandler(sys.stderr))
    handler.setFormatter(_Format())
    logger.setLevel(logging.WARNING if quiet else logging.INFO)


def say(args: argparse.Namespace, message: str) -> None:
    """A closing message on stdout, unless --quiet; under torchrun it names the process."""
    world = os.environ.get("WORLD_SIZE", "1")
    rank = f"[rank {os.environ.get('RANK', '0')}/{world}] " if world != "1" else ""
    if not getattr(args, "quiet", False):
        print(f"seglab: {rank}{message}")


_PARAMETER = re.compile(r"`([a-z][a-z0-9_]*)(=True|=[^`]*)?`")


def in_flags(message: str, flags: set[str]) -> str:
    """A library message in the command line's words: the library names parameters in
    backquotes (`out`, `overwrite=True`, `tile=512`); each that is an option of ``seglab`` becomes
    its flag (--out, --overwrite, --tile 512), the others lose their quotes."""

    def word(match: re.Match) -> str:
        name, value = match.group(1), match.group(2) or ""
        flag = "--" + name.replace("_", "-")
        if flag not in flags:
            return name + value
        if value in ("", "=True"):
            return flag
        return f"{flag} {value[1:]}"

    return _PARAMETER.sub(word, message)


def option_strings(parser: argparse.ArgumentParser) -> set[str]:
    """Every option string of ``parser`` and of its subcommands."""
    found: set[str] = set()
    stack = [parser]
    while stack:
        p = stack.pop()
        for action in p._actions:  # argparse keeps its actions here (no public accessor)
            found.update(action.option_strings)
            if isinstance(action, argparse._SubParsersAction):
                stack.extend(action.choices.values())
    return found
