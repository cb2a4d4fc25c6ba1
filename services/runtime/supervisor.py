"""The only place that creates background tasks (the seed's TaskHelper and TaskPoolManager, done right).

- `spawn(name, fn)`: a named long-running task; a failure is logged with its stack and counted, and the task
  is restarted after an exponential backoff with jitter (the streak resets once a run lasted long enough).
- `every(name, interval, fn)`: a periodic job; a failing run is logged and counted and the next run happens
  on schedule.
- `worker_pool(name, ...)`: a pool bounded in concurrency AND queue; a full queue raises
  RESOURCE_EXHAUSTED at once; its counters (started/completed/failed/timed_out/cancelled/rejected,
  active/queued) are true at every moment.
- `shutdown(timeout)`: cancels everything in reverse start order, each awaited before the next.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import structlog

from services.runtime.errors import DeadlineExceeded, ResourceExhausted, Unavailable

T = TypeVar("T")
Restart = Literal["on_failure", "always", "never"]
TaskState = Literal["running", "backoff", "done", "failed", "cancelled"]


@dataclass(frozen=True)
class TaskStats:
    """A supervised task as seen from outside."""

    name: str
    kind: Literal["task", "periodic"]
    state: TaskState
    runs: int
    failures: int
    restarts: int


@dataclass(frozen=True)
class PoolStats:
    """A worker pool's counters; `active` and `queued` are gauges, the rest only grow."""

    name: str
    max_concurrency: int
    max_queue: int
    active: int
    queued: int
    started: int
    completed: int
    failed: int
    timed_out: int
    cancelled: int
    rejected: int


@dataclass(frozen=True)
class Backoff:
    """Restart delays: `initial * 2**n` capped at `maximum`, each drawn from [half, full] of that value
    (so delays grow monotonically while replicas restarting together still spread out)."""

    initial: float = 0.1
    maximum: float = 30.0
    reset_after: float = 30.0
    """A run that lasted this long resets the streak: the next failure waits `initial` again."""

    def delay(self, streak: int) -> float:
        """The pause before restart number `streak` (1-based) of a streak of failures."""
        base = min(self.maximum, self.initial * 2.0 ** (streak - 1))
        return base / 2 + random.uniform(0, base / 2)


class _Supervised:
    """Book-keeping of one named task (spawned or periodic)."""

    def __init__(self, name: str, kind: Literal["task", "periodic"]) -> None:
        self.name = name
        self.kind: Literal["task", "periodic"] = kind
        self.state: TaskState = "running"
        self.runs = 0
        self.failures = 0
        self.restarts = 0
        self.task: asyncio.Task[None] | None = None

    def stats(self) -> TaskStats:
        return TaskStats(self.name, self.kind, self.state, self.runs, self.failures, self.restarts)


class _Job:
    """One unit of work submitted to a WorkerPool."""

    __slots__ = ("fn", "future", "task", "timeout")

    def __init__(self, fn: Callable[[], Awaitable[Any]], timeout: float | None, future: asyncio.Future[Any]):
        self.fn = fn
        self.timeout = timeout
        self.future = future
        self.task: asyncio.Task[None] | None = None


class WorkerPool:
    """Runs submitted coroutines, at most `max_concurrency` at once, with at most `max_queue` waiting."""

    def __init__(
        self,
        name: str,
        *,
        max_concurrency: int,
        max_queue: int,
        timeout: float | None,
        log: structlog.stdlib.BoundLogger,
    ) -> None:
        if max_concurrency < 1 or max_queue < 0:
            raise ValueError("max_concurrency must be >= 1 and max_queue >= 0")
        self.name = name
        self.max_concurrency = max_concurrency
        self.max_queue = max_queue
        self.timeout = timeout
        self._log = log
        self._queue: collections.deque[_Job] = collections.deque()
        self._running: set[_Job] = set()
        self._closed = False
        self._started = self._completed = self._failed = self._timed_out = 0
        self._cancelled = self._rejected = 0

    def submit(self, fn: Callable[[], Awaitable[T]], *, timeout: float | None = None) -> asyncio.Future[T]:
        """Schedules `fn()`; returns a future of its result. Full → ResourceExhausted(POOL_QUEUE_FULL).

        `timeout` (default: the pool's) bounds the run itself, not the wait in the queue; a run that
        exceeds it is cancelled and its future fails with DeadlineExceeded.
        """
        if self._closed:
            raise Unavailable(f"worker pool {self.name} is shut down", reason="SHUTTING_DOWN")
        job = _Job(
            fn, self.timeout if timeout is None else timeout, asyncio.get_running_loop().create_future()
        )
        if len(self._running) < self.max_concurrency:
            self._start(job)
        elif len(self._queue) < self.max_queue:
            self._queue.append(job)
        else:
            self._rejected += 1
            raise ResourceExhausted(
                f"worker pool {self.name} is full ({self.max_concurrency} running, {self.max_queue} queued)",
                retry_after=0.1,
                subject=f"pools/{self.name}",
                reason="POOL_QUEUE_FULL",
            )
        return job.future

    async def run(self, fn: Callable[[], Awaitable[T]], *, timeout: float | None = None) -> T:  # noqa: ASYNC109
        """Submits `fn` and waits for its result; cancelling the caller cancels the work."""
        future = self.submit(fn, timeout=timeout)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            future.cancel()
            raise

    def _start(self, job: _Job) -> None:
        self._running.add(job)
        job.task = asyncio.create_task(self._execute(job), name=f"pool:{self.name}")

    async def _execute(self, job: _Job) -> None:
        try:
            if job.future.cancelled():  # the caller gave up while the job was being started
                self._cancelled += 1
                return
            self._started += 1
            job.future.add_done_callback(functools.partial(_cancel_if, task=asyncio.current_task()))
            try:
                async with asyncio.timeout(job.timeout):
                    result = await job.fn()
            except TimeoutError:
                self._timed_out += 1
                _settle(job.future, exc=DeadlineExceeded(f"work in pool {self.name} timed out"))
            except asyncio.CancelledError:
                self._cancelled += 1
                job.future.cancel()
                raise
            except Exception as exc:  # noqa: BLE001 - a job's failure is its caller's result
                self._failed += 1
                self._log.warning("pool job failed", pool=self.name, error=repr(exc))
                _settle(job.future, exc=exc)
            else:
                self._completed += 1
                _settle(job.future, result=result)
        finally:
            self._running.discard(job)
            self._start_next()

    def _start_next(self) -> None:
        while self._queue and len(self._running) < self.max_concurrency:
            job = self._queue.popleft()
            if job.future.cancelled():
                self._cancelled += 1
                continue
            self._start(job)

    def stats(self) -> PoolStats:
        """A consistent snapshot of the pool's counters."""
        return PoolStats(
            name=self.name,
            max_concurrency=self.max_concurrency,
            max_queue=self.max_queue,
            active=len(self._running),
            queued=len(self._queue),
            started=self._started,
            completed=self._completed,
            failed=self._failed,
            timed_out=self._timed_out,
            cancelled=self._cancelled,
            rejected=self._rejected,
        )

    async def shutdown(self, timeout: float) -> None:  # noqa: ASYNC109
        """Refuses new work, drops the queue, lets running jobs finish within `timeout`, then cancels them."""
        self._closed = True
        while self._queue:
            job = self._queue.popleft()
            self._cancelled += 1
            job.future.cancel()
        tasks = [job.task for job in self._running if job.task is not None]
        if not tasks:
            return
        _done, pending = await asyncio.wait(tasks, timeout=max(timeout, 0.0))
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=1.0)


def _settle(future: asyncio.Future[Any], *, result: object = None, exc: BaseException | None = None) -> None:
    if future.done():
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)


def _cancel_if(future: asyncio.Future[Any], task: asyncio.Task[Any] | None) -> None:
    if future.cancelled() and task is not None and not task.done():
        task.cancel()


class Supervisor:
    """Owns every background task of one process (one ServiceApp)."""

    def __init__(self, log: structlog.stdlib.BoundLogger, *, backoff: Backoff | None = None) -> None:
        self._log = log
        self.backoff = backoff or Backoff()
        self._order: list[_Supervised | WorkerPool] = []
        self._names: set[str] = set()
        self._closed = False

    def _claim(self, name: str) -> None:
        if self._closed:
            raise RuntimeError(f"supervisor is shut down; cannot start {name!r}")
        if name in self._names:
            raise ValueError(f"a supervised task named {name!r} already exists")
        self._names.add(name)

    def spawn(self, name: str, fn: Callable[[], Awaitable[None]], *, restart: Restart = "on_failure") -> None:
        """Runs `fn()` as the task `name`; restarts it per `restart` with backoff."""
        self._claim(name)
        entry = _Supervised(name, "task")
        entry.task = asyncio.create_task(self._keep_running(entry, fn, restart), name=name)
        self._order.append(entry)

    def every(self, name: str, interval: float, fn: Callable[[], Awaitable[object]]) -> None:
        """Runs `fn()` every `interval` seconds (start to start; missed ticks are skipped, never bunched)."""
        if interval <= 0:
            raise ValueError("interval must be > 0")
        self._claim(name)
        entry = _Supervised(name, "periodic")
        entry.task = asyncio.create_task(self._periodic(entry, interval, fn), name=name)
        self._order.append(entry)

    def worker_pool(
        self, name: str, *, max_concurrency: int, max_queue: int, timeout: float | None = None
    ) -> WorkerPool:
        """A new named pool, shut down with the supervisor (in reverse start order like the tasks)."""
        self._claim(name)
        pool = WorkerPool(
            name, max_concurrency=max_concurrency, max_queue=max_queue, timeout=timeout, log=self._log
        )
        self._order.append(pool)
        return pool

    async def _keep_running(
        self, entry: _Supervised, fn: Callable[[], Awaitable[None]], restart: Restart
    ) -> None:
        streak = 0
        while True:
            entry.state = "running"
            entry.runs += 1
            began = time.monotonic()
            try:
                await fn()
            except asyncio.CancelledError:
                entry.state = "cancelled"
                raise
            except Exception:  # noqa: BLE001 - logged with its stack, counted, restarted
                entry.failures += 1
                self._log.exception("supervised task failed", task=entry.name, failures=entry.failures)
                if restart == "never":
                    entry.state = "failed"
                    return
            else:
                if restart != "always":
                    entry.state = "done"
                    return
            streak = 1 if time.monotonic() - began >= self.backoff.reset_after else streak + 1
            entry.state = "backoff"
            await asyncio.sleep(self.backoff.delay(streak))
            entry.restarts += 1

    async def _periodic(
        self, entry: _Supervised, interval: float, fn: Callable[[], Awaitable[object]]
    ) -> None:
        next_run = time.monotonic() + interval
        while True:
            await asyncio.sleep(max(0.0, next_run - time.monotonic()))
            entry.runs += 1
            try:
                await fn()
            except asyncio.CancelledError:
                entry.state = "cancelled"
                raise
            except Exception:  # noqa: BLE001 - logged with its stack, counted; the next run is on time
                entry.failures += 1
                self._log.exception("periodic job failed", task=entry.name, failures=entry.failures)
            now = time.monotonic()
            next_run += interval
            if next_run <= now:  # the run overran: skip the missed ticks
                next_run = now + interval - ((now - next_run) % interval)

    def stats(self) -> list[TaskStats]:
        """Every supervised task, in start order."""
        return [entry.stats() for entry in self._order if isinstance(entry, _Supervised)]

    def pool_stats(self) -> list[PoolStats]:
        """Every worker pool, in start order."""
        return [entry.stats() for entry in self._order if isinstance(entry, WorkerPool)]

    async def shutdown(self, timeout: float) -> None:  # noqa: ASYNC109
        """Cancels tasks and shuts pools down in reverse start order, within `timeout` in all."""
        self._closed = True
        deadline = time.monotonic() + timeout
        for entry in reversed(self._order):
            left = max(0.0, deadline - time.monotonic())
            if isinstance(entry, WorkerPool):
                await entry.shutdown(left)
                continue
            task = entry.task
            if task is None or task.done():
                continue
            task.cancel()
            await asyncio.wait({task}, timeout=max(left, 0.05))
            if not task.done():
                self._log.warning("supervised task ignored cancellation", task=entry.name)
