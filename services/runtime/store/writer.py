"""The group-commit writer: one thread that gathers concurrent writes into one transaction.

Why a thread (DESIGN.md §4, measured on this 2-core machine): grpc.aio runs each RPC in its own loop
iteration, so batching on the event loop leaves batches at 1. The thread instead waits for the first
operation, then sleeps in `batch_step_us` steps while the queue keeps growing (at most `batch_window_us`, or
until `batch_target` are queued): at load batches reach ~20, at idle the wait costs one step. A batch is one
transaction in which each handler's `run()` is called once with all of its operations, so a handler can do
one multi-row statement for the whole batch. Results go back with one `call_soon_threadsafe` per event loop
per batch.

Failures: transient ones (deadlock, serialization failure, lock timeout, SQLite busy) roll back and retry
the batch with jittered backoff; a lost database fails the batch's operations with StoreUnavailable and the
next batch reconnects; a handler's `RefusedOps` rolls back, fails the ops it names and runs the others again
together without them; any other exception rolls back and re-runs each operation alone, so only the guilty
one fails. An operation whose caller gave up (timeout, cancellation) before it started is never executed.
"""

from __future__ import annotations

import asyncio
import functools
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import sqlalchemy as sa
import structlog
from psycopg import pq

from services.runtime.config import StoreSettings
from services.runtime.errors import ResourceExhausted
from services.runtime.store.clock import BatchClock
from services.runtime.store.engine import SQLITE_BEGIN_OPTION, safe_url
from services.runtime.store.errors import (
    StoreTimeout,
    StoreUnavailable,
    is_disconnect,
    is_statement_timeout,
    is_transient,
    one_line,
)
from services.runtime.store.ops import (
    BatchHandler,
    HandlerContractError,
    Outcome,
    Pending,
    RefusedOps,
    WriterStats,
)

T = TypeVar("T")

log = structlog.get_logger(__name__)

MAX_RETRIES = 4
"""Transient failures of one transaction are retried this many times before its operations fail."""
_BACKOFF_BASE_S = 0.002
_BACKOFF_CAP_S = 0.05
_IDLE_RECHECK_S = 1.0
"""A connection idle this long goes back to the pool, whose pre-ping checks it at the next checkout."""


class GroupCommitWriter:
    """The writer thread and its bounded queue. Created and driven by `Store`."""

    def __init__(
        self,
        engine: sa.Engine,
        settings: StoreSettings,
        clock: BatchClock | None,
        *,
        on_commit: Callable[[], None] | None = None,
    ) -> None:
        self._engine = engine
        self._on_commit = on_commit
        self._url = safe_url(engine.url)
        self._clock = clock
        self._bound = settings.writer_queue
        self._max_batch = settings.max_batch
        self._max_rows = settings.max_batch_rows
        self._window_s = settings.batch_window_us / 1e6
        self._step_s = settings.batch_step_us / 1e6
        self._target = settings.batch_target
        self._queue: deque[Pending] = deque()
        self._cond = threading.Condition(threading.Lock())
        self._closing = False
        self._idle = False
        """True while the thread waits for work (guarded by `_cond`): only then does a submit notify it."""
        self._thread = threading.Thread(target=self._main, name="foundation-store-writer", daemon=True)
        self._conn: sa.Connection | None = None
        self._idle_since = 0.0
        self._seconds_per_op = 0.001
        self._batches = self._operations = self._transactions = self._retries = 0
        self._failures = self._skipped = self._rejected = self._isolations = self._largest = 0
        self._batched_ops = 0

    # ---- called from event loops -------------------------------------------------------------------

    def start(self) -> None:
        """Starts the thread."""
        self._thread.start()

    def submit(self, item: Pending) -> None:
        """Queues an item without blocking. Full queue → ResourceExhausted; closing → StoreUnavailable."""
        with self._cond:
            closing, queued = self._closing, len(self._queue)
            accepted = not closing and queued < self._bound
            if accepted:
                self._queue.append(item)
                if self._idle:  # else the thread looks at the queue again before it waits
                    self._cond.notify()
            elif not closing:
                self._rejected += 1
        if closing:
            raise StoreUnavailable("store is closing")
        if not accepted:
            raise ResourceExhausted(
                f"store writer queue is full ({self._bound} waiting)",
                retry_after=min(1.0, max(0.005, queued * self._seconds_per_op)),
                subject="store.writer_queue",
                reason="WRITER_QUEUE_FULL",
            )

    def stop_accepting(self) -> None:
        """New writes get StoreUnavailable; what is queued is still executed."""
        with self._cond:
            self._closing = True
            self._cond.notify()

    def join(self, timeout: float | None = None) -> None:
        """Blocks until the thread has drained the queue and ended (call `stop_accepting` first)."""
        if self._thread.is_alive():
            self._thread.join(timeout)

    def stats(self) -> WriterStats:
        """A snapshot of the counters (plain reads of ints the writer thread updates)."""
        batches = self._batches
        return WriterStats(
            queued=len(self._queue),
            queue_bound=self._bound,
            batches=batches,
            operations=self._operations,
            transactions=self._transactions,
            retries=self._retries,
            failures=self._failures,
            skipped=self._skipped,
            rejected=self._rejected,
            isolations=self._isolations,
            largest_batch=self._largest,
            mean_batch_size=self._batched_ops / batches if batches else 0.0,
        )

    # ---- the thread ---------------------------------------------------------------------------------

    def _main(self) -> None:
        try:
            while (items := self._next_batch()) is not None:
                try:
                    if items[0].fn is not None:
                        self._run_solo(items[0])
                    else:
                        self._run_batch(items)
                except Exception as exc:  # a writer bug must not strand the callers
                    log.exception("store writer failed on a batch", error=str(exc))
                    self._deliver([(item, None, exc) for item in items])
        finally:
            self._drop_connection()

    def _next_batch(self) -> list[Pending] | None:
        with self._cond:
            while not self._queue:
                if self._closing:
                    return None
                self._idle = True
                self._cond.wait()
                self._idle = False
            gather = self._queue[0].fn is None and not self._closing
        if gather:
            self._wait_for_growth()
        with self._cond:
            first = self._queue.popleft()
            items = [first]
            if first.fn is None:
                # A whole-transaction function runs alone, so stop in front of the next one.
                rows = first.weight
                while (
                    self._queue
                    and len(items) < self._max_batch
                    and self._queue[0].fn is None
                    and rows + self._queue[0].weight <= self._max_rows
                ):
                    rows += self._queue[0].weight
                    items.append(self._queue.popleft())
            return items

    def _wait_for_growth(self) -> None:
        """The adaptive window: sleep in steps while the queue keeps growing (DESIGN.md §4)."""
        waited = 0.0
        seen = len(self._queue)
        while seen < self._target and waited < self._window_s:
            time.sleep(self._step_s)
            waited += self._step_s
            now_queued = len(self._queue)
            if now_queued <= seen:
                return
            seen = now_queued

    def _run_batch(self, items: list[Pending]) -> None:
        while True:  # again without the ops a handler refused (each round has fewer)
            started = time.perf_counter()
            live = self._live(items)
            if not live:
                return
            try:
                outcomes = self._in_transaction(functools.partial(self._run_handlers, items=live))
            except _Refused as refused:
                # Rolled back: the refused ops get their errors, the others run again without them.
                self._deliver(refused.outcomes)
                items = [item for item in live if id(item) not in refused.items]
                log.info("store batch run again without ops its handler refused", refused=len(refused.items))
                continue
            except Exception as exc:  # noqa: BLE001 - classified below; each op gets its own error
                if len(live) == 1 or not _is_op_error(exc):
                    self._deliver([(item, None, self._failure(exc)) for item in self._live(live)])
                    return
                log.warning("store batch failed; re-running its operations one by one", error=one_line(exc))
                self._isolations += 1
                outcomes = self._isolate(live)
            else:
                self._batches += 1
                self._batched_ops += len(outcomes)
                self._largest = max(self._largest, len(outcomes))
            elapsed = time.perf_counter() - started
            self._seconds_per_op = 0.8 * self._seconds_per_op + 0.2 * elapsed / max(1, len(outcomes))
            self._deliver(outcomes)
            return

    def _run_handlers(self, conn: sa.Connection, items: list[Pending]) -> list[Outcome]:
        # Ops abandoned while a previous attempt ran must not run on the retry either.
        items[:] = self._live(items)
        groups: dict[int, tuple[BatchHandler[Any, Any], list[Pending]]] = {}
        for item in items:
            assert item.handler is not None
            groups.setdefault(id(item.handler), (item.handler, []))[1].append(item)
        outcomes: list[Outcome] = []
        for handler, group in groups.values():
            try:
                results = handler.run(conn, [item.op for item in group])
            except RefusedOps as refused:
                if not refused.errors or not all(0 <= i < len(group) for i in refused.errors):
                    raise HandlerContractError(
                        f"handler {handler.name!r} refused {sorted(refused.errors)} of {len(group)} operations"
                    ) from None
                raise _Refused([(group[i], None, error) for i, error in refused.errors.items()]) from None
            if len(results) != len(group):
                raise HandlerContractError(
                    f"handler {handler.name!r} returned {len(results)} results for {len(group)} operations"
                )
            for item, result in zip(group, results, strict=True):
                if isinstance(result, BaseException):
                    outcomes.append((item, None, result))
                else:
                    outcomes.append((item, result, None))
        return outcomes

    def _isolate(self, items: list[Pending]) -> list[Outcome]:
        outcomes: list[Outcome] = []
        for item in items:
            if not self._live([item]):
                continue

            def alone(conn: sa.Connection, one: Pending = item) -> list[Outcome]:
                return self._run_handlers(conn, [one])

            try:
                outcomes.extend(self._in_transaction(alone))
            except _Refused as refused:
                outcomes.extend(refused.outcomes)
            except Exception as exc:  # noqa: BLE001 - the op's own failure goes to its caller
                outcomes.append((item, None, self._failure(exc)))
        return outcomes

    def _run_solo(self, item: Pending) -> None:
        if not self._live([item]):
            return
        fn = item.fn
        assert fn is not None
        try:
            value = self._in_transaction(fn)
        except Exception as exc:  # noqa: BLE001 - goes to the caller
            self._deliver([(item, None, self._failure(exc))])
        else:
            self._deliver([(item, value, None)])

    def _in_transaction(self, work: Callable[[sa.Connection], T]) -> T:
        """Runs `work` in one write transaction, retrying transient failures; raises the last error."""
        attempt = 0
        while True:
            try:
                conn = self._connection()
                with conn.begin():
                    if self._clock is not None:
                        self._clock.begin()
                    try:
                        result = work(conn)
                        _raise_if_aborted(conn)
                    finally:
                        if self._clock is not None:
                            self._clock.end()
                self._transactions += 1
                if self._on_commit is not None:
                    self._on_commit()
                return result
            except Exception as exc:
                if is_disconnect(exc):
                    self._drop_connection()
                if attempt >= MAX_RETRIES or not is_transient(exc):
                    raise
                attempt += 1
                self._retries += 1
                time.sleep(random.uniform(0, min(_BACKOFF_CAP_S, _BACKOFF_BASE_S * 2**attempt)))
            finally:
                self._idle_since = time.monotonic()

    def _connection(self) -> sa.Connection:
        conn = self._conn
        if conn is not None and time.monotonic() - self._idle_since > _IDLE_RECHECK_S:
            self._drop_connection()
            conn = None
        if conn is None:
            try:
                conn = self._engine.connect().execution_options(**{SQLITE_BEGIN_OPTION: "IMMEDIATE"})
            except Exception as exc:  # any failure to connect means the store is down
                raise StoreUnavailable(f"cannot connect to {self._url}: {one_line(exc)}") from exc
            self._conn = conn
        return conn

    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception as exc:  # noqa: BLE001 - a broken connection may fail to close; it is gone
                log.debug("store writer connection close failed", error=one_line(exc))

    def _live(self, items: list[Pending]) -> list[Pending]:
        """The items still wanted; callers past their deadline get StoreTimeout without execution."""
        now = time.monotonic()
        live: list[Pending] = []
        expired: list[Outcome] = []
        for item in items:
            if item.abandoned or item.future.cancelled():
                self._skipped += 1
            elif item.deadline is not None and now >= item.deadline:
                self._skipped += 1
                expired.append((item, None, StoreTimeout("store write timed out before it started")))
            else:
                live.append(item)
        if expired:
            self._deliver(expired, counted=False)
        return live

    def _failure(self, exc: BaseException) -> BaseException:
        """What the caller of a failed op gets: store errors for database trouble, else the error itself."""
        if isinstance(exc, StoreUnavailable):
            # A fresh instance per caller: one exception object raised in several tasks would share
            # (and keep growing) one traceback.
            fresh: BaseException = StoreUnavailable(exc.message, retry_after=exc.retry_after)
            fresh.__cause__ = exc.__cause__
            return fresh
        if isinstance(exc, StoreTimeout):
            return StoreTimeout(exc.message)
        if is_disconnect(exc):
            return StoreUnavailable(f"database {self._url} unavailable: {one_line(exc)}")
        if is_statement_timeout(exc):
            return StoreTimeout(f"database statement timed out: {one_line(exc)}")
        if is_transient(exc):
            return StoreUnavailable(f"database stayed busy after {MAX_RETRIES} retries: {one_line(exc)}")
        return exc

    def _deliver(self, outcomes: Sequence[Outcome], *, counted: bool = True) -> None:
        """Resolves futures with one `call_soon_threadsafe` per event loop."""
        by_loop: dict[asyncio.AbstractEventLoop, list[Outcome]] = {}
        for outcome in outcomes:
            by_loop.setdefault(outcome[0].loop, []).append(outcome)
            if not counted:
                continue
            if outcome[2] is not None:
                self._failures += 1
            elif outcome[0].fn is None:
                self._operations += 1
        for loop, group in by_loop.items():
            try:
                loop.call_soon_threadsafe(_resolve, group)
            except RuntimeError:  # the loop is closed: nobody is waiting for these any more
                log.debug("store writer result for a closed event loop dropped", count=len(group))


class _Refused(Exception):
    """RefusedOps translated to the writer's own items."""

    def __init__(self, outcomes: list[Outcome]) -> None:
        super().__init__(f"{len(outcomes)} operation(s) refused by their handler")
        self.outcomes = outcomes
        self.items = {id(item) for item, _, _ in outcomes}


def _is_op_error(exc: BaseException) -> bool:
    """True for failures that one operation may have caused (worth re-running the ops one by one)."""
    if isinstance(exc, StoreUnavailable | StoreTimeout):
        return False
    return not (is_disconnect(exc) or is_statement_timeout(exc) or is_transient(exc))


def _raise_if_aborted(conn: sa.Connection) -> None:
    """PostgreSQL turns COMMIT of a failed transaction into a silent ROLLBACK; refuse to commit it.

    A handler that swallowed a statement error without a savepoint would otherwise lose the whole batch
    while its callers were told it succeeded.
    """
    dbapi = conn.connection.dbapi_connection
    info = getattr(dbapi, "info", None)
    if getattr(info, "transaction_status", None) == pq.TransactionStatus.INERROR:
        raise HandlerContractError("a handler left the transaction failed (use a savepoint per operation)")


def _resolve(outcomes: list[Outcome]) -> None:
    for item, value, error in outcomes:
        future = item.future
        if future.done():
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)
