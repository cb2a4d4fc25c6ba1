"""Supervisor and worker pools: restarts with growing backoff, ordered shutdown, true pool counters."""

from __future__ import annotations

import asyncio
import functools
import itertools
import time

import pytest

from services.runtime.errors import DeadlineExceeded, ResourceExhausted
from services.runtime.logs import get_logger
from services.runtime.supervisor import Backoff, Supervisor

LOG = get_logger("test.supervisor")


async def poll(predicate, within: float = 5.0, interval: float = 0.005) -> None:
    """Waits until `predicate()` is true; fails the test at the deadline."""
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached before the deadline")
        await asyncio.sleep(interval)


async def test_a_crashing_task_is_restarted_with_growing_backoff():
    backoff = Backoff(initial=0.1, maximum=10.0)
    supervisor = Supervisor(LOG, backoff=backoff)
    starts: list[float] = []

    async def crash() -> None:
        starts.append(time.monotonic())
        raise RuntimeError("boom")

    supervisor.spawn("crasher", crash)
    try:
        await poll(lambda: len(starts) >= 5)
    finally:
        await supervisor.shutdown(timeout=1.0)
    intervals = [b - a for a, b in itertools.pairwise(starts)][:4]
    # Restart n waits in [initial*2**(n-1)/2, initial*2**(n-1)]: never shorter than half its base.
    for n, interval in enumerate(intervals, start=1):
        assert interval >= 0.95 * backoff.initial * 2 ** (n - 1) / 2, intervals
    for earlier, later in itertools.pairwise(intervals):
        assert later > 0.8 * earlier, intervals
    assert intervals[-1] > 2.5 * intervals[0], intervals
    [stats] = supervisor.stats()
    assert stats.name == "crasher"
    assert stats.failures == stats.runs >= 5
    assert stats.restarts >= 4


async def test_restart_policies_never_and_on_failure():
    supervisor = Supervisor(LOG, backoff=Backoff(initial=0.01))
    runs = {"never": 0, "finishes": 0, "always": 0}

    async def fail_once() -> None:
        runs["never"] += 1
        raise ValueError("no restart for me")

    async def finish() -> None:
        runs["finishes"] += 1

    async def return_and_come_back() -> None:
        runs["always"] += 1

    supervisor.spawn("never", fail_once, restart="never")
    supervisor.spawn("finishes", finish, restart="on_failure")
    supervisor.spawn("always", return_and_come_back, restart="always")
    try:
        await poll(lambda: runs["always"] >= 3)
        states = {s.name: s for s in supervisor.stats()}
        await poll(lambda: {s.name: s.state for s in supervisor.stats()}["never"] == "failed")
        states = {s.name: s for s in supervisor.stats()}
        assert states["never"].failures == 1
        assert states["never"].restarts == 0
        assert states["finishes"].state == "done"
        assert states["finishes"].failures == 0
        assert runs["never"] == 1
        assert runs["finishes"] == 1
    finally:
        await supervisor.shutdown(timeout=1.0)


async def test_shutdown_cancels_in_reverse_start_order_one_after_another():
    supervisor = Supervisor(LOG)
    started: list[str] = []
    ended: list[str] = []

    def forever(name: str):
        async def run() -> None:
            started.append(name)
            try:
                await asyncio.Event().wait()
            finally:
                # A slow clean-up: if shutdown did not wait for it, the next task would end first.
                await asyncio.sleep(0.03)
                ended.append(name)

        return run

    for name in ("first", "second", "third"):
        supervisor.spawn(name, forever(name))
    await poll(lambda: len(started) == 3)
    await supervisor.shutdown(timeout=2.0)
    assert ended == ["third", "second", "first"]
    assert {s.state for s in supervisor.stats()} == {"cancelled"}
    with pytest.raises(RuntimeError):
        supervisor.spawn("late", forever("late"))


async def test_periodic_job_keeps_its_schedule_through_failures():
    supervisor = Supervisor(LOG)
    times: list[float] = []

    async def tick() -> None:
        times.append(time.monotonic())
        if len(times) % 2 == 0:
            raise RuntimeError("every other run fails")

    created = time.monotonic()
    supervisor.every("ticker", 0.03, tick)
    try:
        await poll(lambda: len(times) >= 6)
    finally:
        await supervisor.shutdown(timeout=1.0)
    [stats] = supervisor.stats()
    assert stats.kind == "periodic"
    assert stats.failures == stats.runs // 2 >= 3
    # Start to start on a fixed schedule, failures or not: no run starts before its slot (a late start, on a
    # loaded machine, does not push the later slots back, so single gaps may be short), none bunch up.
    for run, began in enumerate(times, start=1):
        assert began >= created + run * 0.03 - 0.001, (run, began - created)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(0 < gap < 0.3 for gap in gaps), gaps  # a failure is not followed by a restart's back-off


async def test_duplicate_names_are_refused():
    supervisor = Supervisor(LOG)

    async def idle() -> None:
        await asyncio.Event().wait()

    supervisor.spawn("one", idle)
    with pytest.raises(ValueError):
        supervisor.every("one", 1.0, idle)
    await supervisor.shutdown(timeout=1.0)


async def test_worker_pool_counters_are_true_and_a_full_queue_refuses_at_once():
    supervisor = Supervisor(LOG)
    pool = supervisor.worker_pool("jobs", max_concurrency=2, max_queue=2, timeout=0.2)
    release = asyncio.Event()

    async def ok() -> str:
        await release.wait()
        return "done"

    async def broken() -> str:
        await release.wait()
        raise ValueError("bad job")

    async def too_slow() -> str:
        await asyncio.Event().wait()  # never set: only the pool's timeout ends it
        return "never"

    async def quick() -> str:
        return "quick"

    futures = [pool.submit(ok), pool.submit(broken), pool.submit(too_slow), pool.submit(quick)]
    await poll(lambda: pool.stats().started == 2)
    stats = pool.stats()
    assert (stats.active, stats.queued, stats.started) == (2, 2, 2)
    began = time.monotonic()
    with pytest.raises(ResourceExhausted) as refused:
        pool.submit(quick)
    assert time.monotonic() - began < 0.05
    assert refused.value.reason == "POOL_QUEUE_FULL"
    assert refused.value.retry_after > 0
    assert pool.stats().rejected == 1

    release.set()
    results = await asyncio.gather(*futures, return_exceptions=True)
    assert results[0] == "done"
    assert isinstance(results[1], ValueError)
    assert isinstance(results[2], DeadlineExceeded)
    assert results[3] == "quick"
    stats = pool.stats()
    assert (stats.started, stats.completed, stats.failed, stats.timed_out) == (4, 2, 1, 1)
    assert (stats.active, stats.queued, stats.rejected, stats.cancelled) == (0, 0, 1, 0)
    assert supervisor.pool_stats() == [stats]
    await supervisor.shutdown(timeout=1.0)


async def test_cancelling_the_caller_cancels_the_work_and_is_counted():
    supervisor = Supervisor(LOG)
    pool = supervisor.worker_pool("cancellable", max_concurrency=1, max_queue=1)
    work_cancelled = asyncio.Event()
    running = asyncio.Event()

    async def long_job() -> None:
        running.set()
        try:
            await asyncio.Event().wait()  # never set: only the caller's cancellation ends it
        except asyncio.CancelledError:
            work_cancelled.set()
            raise

    caller = asyncio.create_task(pool.run(long_job))
    await asyncio.wait_for(running.wait(), 2)
    caller.cancel()
    await asyncio.wait_for(work_cancelled.wait(), 2)
    await poll(lambda: pool.stats().active == 0)
    stats = pool.stats()
    assert (stats.started, stats.cancelled, stats.completed) == (1, 1, 0)
    await supervisor.shutdown(timeout=1.0)


async def test_pool_never_runs_more_than_its_bound_under_concurrent_submitters():
    supervisor = Supervisor(LOG)
    pool = supervisor.worker_pool("bounded", max_concurrency=5, max_queue=1000)
    running = 0
    peak = 0

    async def job(i: int) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.001 * (i % 3))
        running -= 1
        return i

    async def submitter(base: int) -> list[int]:
        return list(
            await asyncio.gather(*(pool.run(functools.partial(job, i)) for i in range(base, base + 40)))
        )

    results = await asyncio.gather(*(submitter(k * 40) for k in range(5)))
    assert sorted(x for chunk in results for x in chunk) == list(range(200))
    assert peak == 5
    stats = pool.stats()
    assert (stats.started, stats.completed, stats.active, stats.queued) == (200, 200, 0, 0)
    await supervisor.shutdown(timeout=1.0)


async def test_pool_shutdown_drops_the_queue_and_refuses_new_work():
    supervisor = Supervisor(LOG)
    pool = supervisor.worker_pool("closing", max_concurrency=1, max_queue=5)
    gate = asyncio.Event()

    async def wait_for_gate() -> None:
        await gate.wait()

    running = pool.submit(wait_for_gate)
    queued = [pool.submit(wait_for_gate) for _ in range(3)]
    await poll(lambda: pool.stats().active == 1)
    await supervisor.shutdown(timeout=0.1)
    assert all(f.cancelled() for f in queued)
    assert running.done()
    stats = pool.stats()
    assert stats.cancelled == 4
    assert stats.active == 0
    assert stats.queued == 0
    with pytest.raises(Exception) as refused:
        pool.submit(wait_for_gate)
    assert getattr(refused.value, "reason", "") == "SHUTTING_DOWN"
