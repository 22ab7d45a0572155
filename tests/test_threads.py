"""The thread pool behind the compiled kernels: every item once, results in order, errors and
interruptions reach the caller, and results do not depend on the number of threads."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from seglab import _threads
from seglab._threads import get_num_threads, parallel_for, run_all, set_num_threads, split


@pytest.fixture
def threads():
    """Set the number of threads for one test, restoring it after."""
    before = get_num_threads()
    yield set_num_threads
    set_num_threads(before)


@pytest.mark.parametrize("n_items, n_parts", [(0, 3), (1, 4), (10, 3), (7, 7), (5, 9)])
def test_split_covers_the_range_once(n_items, n_parts):
    ranges = split(n_items, n_parts)
    covered = [i for lo, hi in ranges for i in range(lo, hi)]
    assert covered == list(range(n_items))
    assert len(ranges) <= n_parts
    assert all(hi > lo for lo, hi in ranges)


@pytest.mark.parametrize("n_threads", [1, 2, 5])
@pytest.mark.parametrize("grain", [None, 1, 3])
def test_every_item_is_done_once(threads, n_threads, grain):
    threads(n_threads)
    hits = np.zeros(23, dtype=int)
    lock = threading.Lock()

    def kernel(out, lo, hi):
        with lock:
            out[lo:hi] += 1
        return (lo, hi)

    results = parallel_for(kernel, 23, hits, grain=grain, tasks_per_thread=2)
    assert (hits == 1).all()
    if grain is None:  # static ranges come back in order
        assert [r[0] for r in results] == sorted(r[0] for r in results)


def test_an_error_in_a_task_reaches_the_caller(threads):
    threads(2)

    def kernel(lo, hi):
        if lo > 0:
            raise ValueError("task failed")

    with pytest.raises(ValueError, match="task failed"):
        parallel_for(kernel, 10)
    with pytest.raises(ValueError, match="task failed"):
        parallel_for(kernel, 10, grain=1)


def test_an_interrupted_caller_stops_the_other_threads(threads):
    threads(2)
    done = []

    def kernel(lo, hi):
        if threading.current_thread() is threading.main_thread() and lo > 0:
            raise KeyboardInterrupt
        done.append(lo)
        threading.Event().wait(0.01)

    with pytest.raises(KeyboardInterrupt):
        parallel_for(kernel, 200, grain=1)
    threading.Event().wait(0.1)
    assert len(done) < 150  # the pool's thread stopped taking work


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_set_num_threads_refuses_nonsense(bad):
    with pytest.raises(ValueError, match="number of threads"):
        set_num_threads(bad)


def test_thread_count_from_the_environment(monkeypatch):
    monkeypatch.setenv("SEGLAB_NUM_THREADS", "3")
    assert _threads._default_threads() == 3
    monkeypatch.setenv("SEGLAB_NUM_THREADS", "many")
    with pytest.raises(ValueError, match="SEGLAB_NUM_THREADS"):
        _threads._default_threads()


def test_kmeans_does_not_depend_on_the_number_of_threads(threads):
    from seglab.cluster import KMeans

    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(c, 1.0, (40_000, 5)) for c in (0, 4, 8)]).astype(np.float32)
    runs = []
    for n in (1, 2, 3):
        threads(n)
        km = KMeans(6, random_state=0, n_init=1).fit(X)
        runs.append((km.labels_, km.cluster_centers_, km.inertia_, km.n_iter_))
    for labels, centers, inertia, n_iter in runs[1:]:
        np.testing.assert_array_equal(labels, runs[0][0])
        np.testing.assert_array_equal(centers, runs[0][1])
        assert inertia == runs[0][2] and n_iter == runs[0][3]


def test_work_started_from_a_pool_thread_runs_there(threads):
    threads(2)
    seen = []

    def inner(lo, hi):
        seen.append(threading.current_thread().name)

    def outer():  # a task of the pool that itself asks for parallel work: no deadlock
        parallel_for(inner, 8, tasks_per_thread=2)
        parallel_for(inner, 8, grain=1)
        return "done"

    assert run_all([lambda: None, outer, outer]) == [None, "done", "done"]
    assert len(seen) == 2 * (4 + 8)  # every range, each run on the pool thread that asked
    assert all(name.startswith("seglab-kernel") for name in seen)
