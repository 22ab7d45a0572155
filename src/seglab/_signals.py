"""SIGTERM and SIGHUP as interruptions, not losses.

A scheduler, ``torchrun``, ``systemd`` or a closed terminal stops a process with SIGTERM or SIGHUP,
which by default kill Python without running a single ``finally``: a batch that was replacing
earlier results would leave them in its staging folder. :func:`handle_termination` turns those
signals into :class:`Interrupted` (a :class:`KeyboardInterrupt`, as Ctrl-C raises), so the same
clean-up runs for all three. :func:`deferred` marks the few steps that must not be cut in two (a
pair of renames): a signal that arrives inside is raised when the block ends.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

#: The signals handled as Ctrl-C is.
TERMINATION_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)
)

_state = threading.local()


class Interrupted(KeyboardInterrupt):
    """The process was asked to stop by ``signum``; exit status 128 + ``signum``."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_status(self) -> int:
        return 128 + self.signum


def _handler(signum, frame) -> None:
    if getattr(_state, "depth", 0):
        _state.pending = signum
        return
    raise Interrupted(signum)


@contextlib.contextmanager
def handle_termination() -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP raise :class:`Interrupted` in the main thread (outside
    it, or off the main thread, nothing changes). The previous handlers are restored after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, _handler) for s in TERMINATION_SIGNALS}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """A block that a termination signal does not cut in two: it is raised when the block ends."""
    _state.depth = getattr(_state, "depth", 0) + 1
    try:
        yield
    finally:
        _state.depth -= 1
        pending = getattr(_state, "pending", None)
        if not _state.depth and pending is not None:
            _state.pending = None
            raise Interrupted(pending)
