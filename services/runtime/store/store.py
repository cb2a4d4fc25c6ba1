"""`Store`: the one object services use to reach the database.

Writes go through the group-commit writer thread (`write` for batchable operations, `transaction` for a
function that needs a transaction of its own); reads run on a bounded pool of threads with their own
connections. Nothing here blocks the event loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import sqlalchemy as sa
import structlog

from services.runtime.config import StoreSettings
from services.runtime.errors import ResourceExhausted, ServiceError
from services.runtime.store.checkpoint import WalCheckpointer
from services.runtime.store.clock import BatchClock, postgres_now_us
from services.runtime.store.engine import Dialect, create_engine, safe_url
from services.runtime.store.errors import (
    StoreTimeout,
    StoreUnavailable,
    is_disconnect,
    is_statement_timeout,
    is_transient,
    one_line,
)
from services.runtime.store.expiry import ExpiryWatch
from services.runtime.store.ops import BatchHandler, Pending, WriterStats
from services.runtime.store.writer import GroupCommitWriter

OpT = TypeVar("OpT")
ResT = TypeVar("ResT")
T = TypeVar("T")

MAX_PINGS = 3
"""Pings that may wait at once: beyond that, earlier ones are stuck and the database counts as down."""

log = structlog.get_logger(__name__)


class Store:
    """An open database: engine, writer thread and read pool. Create with `Store.open`."""

    url: str
    """The database URL as given (may hold a password: print `safe_url` instead)."""
    dialect: Dialect
    engine: sa.Engine
    """Shared by the writer and the readers. Plain `engine.begin()` is a DEFERRED transaction on SQLite:
    write through `write`/`transaction`, which take the write lock up front."""

    def __init__(self, url: str, dialect: Dialect, engine: sa.Engine, settings: StoreSettings) -> None:
        self.url = url
        self.dialect = dialect
        self.engine = engine
        self.settings = settings
        self._clock = BatchClock() if dialect == "sqlite" else None
        self._checkpointer: WalCheckpointer | None = None
        if dialect == "sqlite" and settings.sqlite_checkpoint_ms > 0:
            self._checkpointer = WalCheckpointer(engine, settings.sqlite_checkpoint_ms / 1000)
        self._writer = GroupCommitWriter(
            engine,
            settings,
            self._clock,
            on_commit=self._checkpointer.notify if self._checkpointer is not None else None,
        )
        self._readers = ThreadPoolExecutor(settings.read_threads, thread_name_prefix="foundation-store-read")
        self._pings_running = 0
        # PostgreSQL pings open a connection each (a few ms every few seconds): a pooled one that a vanished
        # peer left hanging would keep failing them after the database is back. SQLite has no such peer.
        self._ping_engine = engine if dialect == "sqlite" else create_engine(url, settings, pooled=False)[0]
        self._read_bound = settings.writer_queue
        self._reads_pending = 0
        self._lock = threading.Lock()
        self._closing = False
        self._closed = False
        self._expiry: dict[asyncio.AbstractEventLoop, ExpiryWatch] = {}

    @classmethod
    def open(cls, url: str, settings: StoreSettings) -> Store:
        """Connects (verifying the database answers), starts the writer thread and returns the store.

        Raises StoreUrlError for an unusable URL and StoreUnavailable (one line naming the URL, password
        hidden, and the cause) when the database cannot be reached.
        """
        engine, dialect = create_engine(url, settings)
        try:
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except Exception as exc:  # noqa: BLE001 - whatever the cause, the store is unusable
            engine.dispose()
            raise StoreUnavailable(f"cannot connect to {safe_url(engine.url)}: {one_line(exc)}") from None
        store = cls(url, dialect, engine, settings)
        if store._checkpointer is not None:
            store._checkpointer.start()
        store._writer.start()
        log.info("store opened", url=store.safe_url, dialect=dialect)
        return store

    @property
    def safe_url(self) -> str:
        """The URL with the password hidden."""
        return safe_url(self.engine.url)

    def now_us_sql(self) -> sa.ColumnElement[int]:
        """The current time in integer microseconds, as SQL (see `services.runtime.store.clock`).

        PostgreSQL: the server's `clock_timestamp()`. SQLite: one value per write transaction, bound by
        the writer after it took the write lock.
        """
        if self._clock is None:
            return postgres_now_us()
        return self._clock.expression()

    async def write(
        self,
        handler: BatchHandler[OpT, ResT],
        op: OpT,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - the shared API
        weight: int = 1,
    ) -> ResT:
        """Runs `op` through the group-commit writer and returns its own result.

        Queue full → ResourceExhausted(reason="WRITER_QUEUE_FULL"); not done within `timeout` seconds →
        StoreTimeout (not started by then: never executed; started: the result is discarded); database
        down or store closing → StoreUnavailable; an error of this op alone is raised as it is.
        """
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else time.monotonic() + timeout
        item = Pending(loop, handler=handler, op=op, deadline=deadline, weight=weight)
        result: ResT = await self._queued(item, timeout, handler.name)
        return result

    async def transaction(self, fn: Callable[[sa.Connection], T], *, timeout: float | None = None) -> T:  # noqa: ASYNC109 - the shared API
        """Runs `fn(conn)` alone in its own write transaction in the writer thread and returns its result.

        For CRUD and other rare writes. `fn` may run more than once (transient errors are retried), so it
        must do nothing but database work. Errors as for `write`.
        """
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else time.monotonic() + timeout
        result: T = await self._queued(Pending(loop, fn=fn, deadline=deadline), timeout, None)
        return result

    async def _queued(self, item: Pending, timeout: float | None, handler: str | None) -> Any:  # noqa: ASYNC109
        """Queues `item` for the writer and waits for its result, at most `timeout` seconds (see `write`)."""
        self._writer.submit(item)
        timer = None if timeout is None else self._expiry_watch(item.loop).watch(item, timeout, handler)
        try:
            return await item.future
        except asyncio.CancelledError:
            item.abandoned = True
            raise
        finally:
            if timer is not None:
                timer.cancel()

    def _expiry_watch(self, loop: asyncio.AbstractEventLoop) -> ExpiryWatch:
        """The timeouts of the writes awaited on `loop` (one watch per event loop using this store)."""
        watch = self._expiry.get(loop)
        if watch is None:
            # A loop that closed with writes still watched never fires again: it is forgotten here, when
            # another loop comes (no lock: loops of two threads arriving at once may drop each other's watch
            # from the dict, which only costs a new watch, and its timer, on the next write).
            self._expiry = {known: w for known, w in self._expiry.items() if not known.is_closed()}
            watch = self._expiry[loop] = ExpiryWatch(loop)
        return watch

    async def read(self, fn: Callable[[sa.Connection], T], *, timeout: float | None = None) -> T:  # noqa: ASYNC109 - the shared API
        """Runs `fn(conn)` on a read connection in the bounded read pool and returns its result.

        On SQLite the read sees one snapshot (a DEFERRED transaction) and never blocks the writer.
        """
        with self._lock:
            if self._closing:
                raise StoreUnavailable("store is closing")
            if self._reads_pending >= self._read_bound:
                raise ResourceExhausted(
                    f"store read queue is full ({self._read_bound} waiting)",
                    retry_after=0.05,
                    subject="store.read_queue",
                    reason="READ_QUEUE_FULL",
                )
            self._reads_pending += 1
        try:
            future = asyncio.get_running_loop().run_in_executor(self._readers, self._run_read, fn)
            return await _within(future, timeout, "store read")
        finally:
            with self._lock:
                self._reads_pending -= 1

    async def ping(self, timeout: float = 1.0) -> bool:  # noqa: ASYNC109 - the shared API
        """True when the database answers within `timeout` seconds.

        Each ping runs on a thread of its own (a daemon: one stuck on a dead connection neither blocks close
        nor the next ping) and, on PostgreSQL, on a new connection, not on the read pool, whose queue reads
        stuck behind a lock can fill. While `MAX_PINGS` are still waiting, the database counts as down
        without starting another. On SQLite the query reads the schema page, so a file that can no longer
        be read (locked exclusively by another process, corrupted, on a failed disk) counts as down;
        `SELECT 1` never touches the file.
        """
        query = sa.text("SELECT count(*) >= 0 FROM sqlite_master" if self.dialect == "sqlite" else "SELECT 1")
        with self._lock:
            if self._closing or self._pings_running >= MAX_PINGS:
                return False
            self._pings_running += 1
        answer: concurrent.futures.Future[bool] = concurrent.futures.Future()

        def run() -> None:
            # The answer is cancelled when the ping times out first: then nobody wants it.
            try:
                value = self._run_read(lambda conn: bool(conn.execute(query).scalar()), self._ping_engine)
            except BaseException as exc:  # noqa: BLE001 - delivered to the awaiting ping
                with contextlib.suppress(concurrent.futures.InvalidStateError):
                    answer.set_exception(exc)
            else:
                with contextlib.suppress(concurrent.futures.InvalidStateError):
                    answer.set_result(value)
            finally:
                with self._lock:
                    self._pings_running -= 1

        try:
            threading.Thread(target=run, name="foundation-store-ping", daemon=True).start()
        except RuntimeError:  # no thread to be had (the process is at its limit): no answer, so down
            with self._lock:
                self._pings_running -= 1
            return False
        try:
            return await _within(asyncio.wrap_future(answer), timeout, "store ping")
        except (ServiceError, sa.exc.SQLAlchemyError, OSError):
            return False

    def stats(self) -> WriterStats:
        """The writer's counters."""
        return self._writer.stats()

    async def close(self) -> None:
        """Stops taking work, flushes what the writer has queued, joins its thread, disposes the engine.

        Safe to call twice or concurrently; every caller returns once the store is closed.
        """
        with self._lock:
            self._closing = True
        self._writer.stop_accepting()
        await asyncio.to_thread(self._finish_close)

    def _finish_close(self) -> None:
        with self._lock:
            if self._closed:
                return
        self._writer.join()
        if self._checkpointer is not None:
            self._checkpointer.stop()
        self._readers.shutdown(wait=True)
        self.engine.dispose()
        if self._ping_engine is not self.engine:
            self._ping_engine.dispose()
        with self._lock:
            if not self._closed:
                self._closed = True
                log.info("store closed", url=self.safe_url, **_stats_fields(self._writer.stats()))

    def _run_read(self, fn: Callable[[sa.Connection], T], engine: sa.Engine | None = None) -> T:
        try:
            conn = (engine or self.engine).connect()
        except Exception as exc:  # any failure to connect means the store is down
            raise StoreUnavailable(f"cannot connect to {self.safe_url}: {one_line(exc)}") from exc
        try:
            with conn:
                return fn(conn)
        except sa.exc.DBAPIError as exc:
            if is_disconnect(exc):
                raise StoreUnavailable(f"database {self.safe_url} unavailable: {one_line(exc)}") from exc
            if is_statement_timeout(exc):
                raise StoreTimeout(f"database statement timed out: {one_line(exc)}") from exc
            if is_transient(exc):  # e.g. lock_timeout behind another session's lock: no answer in time
                raise StoreTimeout(f"database read could not proceed: {one_line(exc)}") from exc
            raise


async def _within(awaitable: Awaitable[T], seconds: float | None, what: str) -> T:
    if seconds is None:
        return await awaitable
    scope = asyncio.timeout(seconds)
    try:
        async with scope:
            return await awaitable
    except TimeoutError:
        if scope.expired():
            raise StoreTimeout(f"{what} did not finish within {seconds:g} s") from None
        raise


def _stats_fields(stats: WriterStats) -> dict[str, Any]:
    return {
        "batches": stats.batches,
        "operations": stats.operations,
        "mean_batch_size": round(stats.mean_batch_size, 2),
        "retries": stats.retries,
        "failures": stats.failures,
    }
