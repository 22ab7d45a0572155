"""Several cores for the compiled kernels, without numba's ``parallel=True``.

The kernels are serial (C that releases the GIL, or numba with ``nogil=True``) and take a range
of work items (chunks of points, bands of image rows); :func:`parallel_for` hands out the ranges
to a shared pool of threads, and since a running kernel holds no GIL the threads run on all
cores. Why not
``prange``: parfors lowering multiplies numba's compile time (with it, a first
``seglab segment`` in a fresh cache spent 28 s compiling the k-means kernels), and a user meets
that cost on the first photo after installing. The ranges are fixed by the number of items and of
threads only, so results do not depend on timing.

The number of threads: :func:`set_num_threads`, else the ``SEGLAB_NUM_THREADS`` or
``NUMBA_NUM_THREADS`` environment variable, else the cores this process may run on.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any

__all__ = ["get_num_threads", "parallel_for", "run_all", "set_num_threads", "split"]

_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_n_threads: int | None = None


def _default_threads() -> int:
    for name in ("SEGLAB_NUM_THREADS", "NUMBA_NUM_THREADS"):
        value = os.environ.get(name, "").strip()
        if value:
            try:
                n = int(value)
            except ValueError:
                raise ValueError(f"{name}={value!r}; expected a whole number of threads") from None
            if n < 1:
                raise ValueError(f"{name}={value!r}; expected at least 1 thread")
            return n
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def get_num_threads() -> int:
    """Threads the compiled kernels use."""
    global _n_threads
    if _n_threads is None:
        _n_threads = _default_threads()
    return _n_threads


def set_num_threads(n: int) -> None:
    """Use ``n`` threads (>= 1) in the compiled kernels from now on."""
    global _n_threads, _pool
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"the number of threads must be a whole number >= 1, got {n!r}")
    with _lock:
        if _pool is not None and n != _n_threads:
            _pool.shutdown(wait=False)
            _pool = None
        _n_threads = n


def _serial() -> bool:
    """One thread, or already on a pool thread: a task that waited on tasks queued behind it
    would never finish, so work from inside the pool runs where it is."""
    return get_num_threads() == 1 or threading.current_thread().name.startswith(_PREFIX)


_PREFIX = "seglab-kernel"


def _get_pool() -> ThreadPoolExecutor:
    global _pool
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(get_num_threads(), thread_name_prefix=_PREFIX)
        return _pool


def _forget_pool() -> None:
    """After a fork the pool's threads do not exist in the child: make a new one when needed."""
    global _pool, _lock
    _pool = None
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_pool)


def split(n_items: int, n_parts: int) -> list[tuple[int, int]]:
    """[0, n_items) cut into at most ``n_parts`` contiguous ranges of near-equal size."""
    n_parts = max(1, min(n_parts, n_items))
    edges = [n_items * i // n_parts for i in range(n_parts + 1)]
    return [(edges[i], edges[i + 1]) for i in range(n_parts) if edges[i] < edges[i + 1]]


def parallel_for(
    kernel: Callable[..., Any],
    n_items: int,
    *args: Any,
    tasks_per_thread: int = 1,
    grain: int | None = None,
) -> list[Any]:
    """Call ``kernel(*args, lo, hi)`` on ranges covering [0, n_items); returns their results in
    order. More tasks than threads (``tasks_per_thread``) balance items of uneven cost; with
    ``grain``, each thread takes the next ``grain`` items whenever it is free (for items whose cost
    varies a lot, such as image rows under mean-shift; the kernel then writes its results in place
    and the list holds None)."""
    threads = get_num_threads()
    if grain is not None:
        return _dynamic(kernel, n_items, args, 1 if _serial() else threads, grain)
    ranges = split(n_items, threads * tasks_per_thread)
    if _serial() or len(ranges) <= 1:
        return [kernel(*args, lo, hi) for lo, hi in ranges]
    pool = _get_pool()
    futures = [pool.submit(kernel, *args, lo, hi) for lo, hi in ranges[1:]]
    first = kernel(*args, *ranges[0])  # the calling thread works too
    return [first] + [f.result() for f in futures]


def _dynamic(kernel: Callable[..., Any], n_items: int, args: tuple, threads: int, grain: int):
    """Every thread (the caller's too) runs the next ``grain`` items until none are left."""
    if grain < 1:
        raise ValueError(f"grain must be >= 1, got {grain}")
    n_ranges = (n_items + grain - 1) // grain
    ticket = itertools.count()  # next() on a count is atomic under the GIL
    stop = threading.Event()  # set when the caller is interrupted: the others stop too

    def work() -> None:
        while not stop.is_set() and (i := next(ticket)) < n_ranges:
            kernel(*args, i * grain, min(n_items, (i + 1) * grain))

    n_workers = min(threads, n_ranges)
    futures = [_get_pool().submit(work) for _ in range(n_workers - 1)]
    try:
        work()
        for f in futures:
            f.result()
    except BaseException:
        stop.set()
        raise
    return [None] * n_ranges


def run_all(tasks: list[Callable[[], Any]]) -> list[Any]:
    """Run independent calls at once (the caller runs the first), for work that releases the GIL
    (encoding pictures, say); returns their results in order, or raises the first error. If the
    caller is interrupted, calls not yet started are cancelled and running ones finished before
    the interruption goes on, so none writes after its caller has cleaned up."""
    if _serial() or len(tasks) <= 1:
        return [task() for task in tasks]
    futures = [_get_pool().submit(task) for task in tasks[1:]]
    try:
        first = tasks[0]()
        return [first] + [f.result() for f in futures]
    except BaseException:
        for f in futures:
            f.cancel()
        wait(futures)
        raise
