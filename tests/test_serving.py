"""The worker's thread pool (``sorregistry.serving.LifoPool``): the thread idle last takes
the next task; otherwise ``ThreadPoolExecutor``'s contract - futures, errors, as many
threads as tasks need up to the limit, tasks beyond it in order, shutdown."""

from __future__ import annotations

import threading
import time
from concurrent import futures

import pytest
from gunicorn.config import Config

from sorregistry.serving import LifoPool, ThreadWorker


def _until(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


def _idle(pool: LifoPool, count: int) -> None:
    """Wait until *count* of the pool's threads are idle."""
    _until(lambda: len(pool._idle) == count)


def test_one_task_at_a_time_runs_on_the_thread_idle_last() -> None:
    pool = LifoPool(4)
    try:
        # Four threads made busy at once, then idle in the order they are released.
        gates = [threading.Event() for _ in range(4)]
        started = threading.Barrier(5)

        def hold(gate: threading.Event) -> int:
            started.wait(5)
            gate.wait(5)
            return threading.get_ident()

        held = [pool.submit(hold, gate) for gate in gates]
        started.wait(5)
        idents = []
        for count, (gate, future) in enumerate(zip(gates, held, strict=True), 1):
            gate.set()
            idents.append(future.result(5))
            _idle(pool, count)
        assert len(set(idents)) == 4
        # Each next task, submitted when the one before has ended: always the thread that
        # went idle last (gunicorn's stock pool hands them to the threads in turn).
        ran = []
        for _ in range(20):
            ran.append(pool.submit(threading.get_ident).result(5))
            _idle(pool, 4)
        assert set(ran) == {idents[-1]}
    finally:
        pool.shutdown()


def test_tasks_run_side_by_side_up_to_the_limit_then_wait_in_order() -> None:
    pool = LifoPool(3)
    try:
        gate = threading.Event()
        running = []
        lock = threading.Lock()

        def task(i: int) -> int:
            with lock:
                running.append(i)
            gate.wait(5)
            return i

        submitted = [pool.submit(task, i) for i in range(6)]
        _until(lambda: len(running) == 3)
        assert sorted(running) == [0, 1, 2] and len(pool._threads) == 3
        assert [f.done() for f in submitted] == [False] * 6
        gate.set()
        assert [f.result(5) for f in submitted] == list(range(6))
        assert sorted(running[3:]) == [3, 4, 5]
        assert len(pool._threads) == 3  # never more than the limit
    finally:
        pool.shutdown()
    # The waiting ones run in the order they came (one thread: no race to see it).
    one = LifoPool(1)
    try:
        gate = threading.Event()
        order: list[int] = []
        first = one.submit(gate.wait, 5)
        queued = [one.submit(order.append, i) for i in range(5)]
        gate.set()
        first.result(5)
        for future in queued:
            future.result(5)
        assert order == [0, 1, 2, 3, 4]
    finally:
        one.shutdown()


def test_an_error_goes_to_the_future_and_the_thread_lives_on() -> None:
    pool = LifoPool(1)
    try:
        def fail() -> None:
            raise ValueError("bad request")

        failed = pool.submit(fail)
        with pytest.raises(ValueError, match="bad request"):
            failed.result(5)
        assert pool.submit(lambda: 42).result(5) == 42
        assert len(pool._threads) == 1
    finally:
        pool.shutdown()


def test_callbacks_see_the_result_and_cancelled_tasks_do_not_run() -> None:
    pool = LifoPool(1)
    gate = threading.Event()
    first = pool.submit(gate.wait, 5)
    queued = pool.submit(lambda: pytest.fail("a cancelled task ran"))
    assert queued.cancel()
    done = []
    third = pool.submit(lambda: "third")
    third.add_done_callback(lambda f: done.append(f.result()))
    gate.set()
    assert first.result(5) is True and third.result(5) == "third"
    _until(lambda: done == ["third"])
    pool.shutdown()


def test_shutdown_finishes_running_and_queued_tasks_then_ends_the_threads() -> None:
    pool = LifoPool(2)
    gate = threading.Event()
    slow = [pool.submit(lambda: gate.wait(5) and "slow") for _ in range(2)]
    queued = pool.submit(lambda: "queued")
    threading.Timer(0.05, gate.set).start()
    pool.shutdown(wait=True)
    assert [f.result(0) for f in slow] == ["slow", "slow"] and queued.result(0) == "queued"
    assert not pool._threads
    with pytest.raises(RuntimeError, match="after shutdown"):
        pool.submit(lambda: None)


def test_shutdown_without_waiting_stops_idle_threads_and_may_cancel_queued_ones() -> None:
    pool = LifoPool(1)
    gate = threading.Event()
    running = pool.submit(gate.wait, 5)
    queued = pool.submit(lambda: "never")
    pool.shutdown(wait=False, cancel_futures=True)
    assert queued.cancelled()
    gate.set()
    assert running.result(5) is True
    _until(lambda: not pool._threads)

    idle = LifoPool(3)
    together = threading.Barrier(3)  # three at once: three threads
    for future in [idle.submit(together.wait, 5) for _ in range(3)]:
        future.result(5)
    _idle(idle, 3)
    threads = list(idle._threads)
    idle.shutdown(wait=False)
    for thread in threads:
        thread.join(5)
        assert not thread.is_alive()


def test_the_limit_must_be_positive() -> None:
    with pytest.raises(ValueError):
        LifoPool(0)


def test_gunicorns_worker_takes_the_pool_through_its_hook() -> None:
    config = Config()
    config.set("threads", 5)
    worker = ThreadWorker(0, 0, [], None, 30, config, None)
    pool = worker.get_thread_pool()
    try:
        assert isinstance(pool, LifoPool) and isinstance(pool, futures.Executor)
        assert pool.max_workers == 5
    finally:
        pool.shutdown()
        worker.tmp.close()  # the heartbeat file gunicorn's worker opens
