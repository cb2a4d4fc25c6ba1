"""Decision counters: counted in memory per check, added to the shared table every second.

`GetStats` is the stored sums (all replicas) plus what this process has not flushed yet. Denials are also
published as `foundation.limiter.denied` events, one per limiter per flush with the count, so a flood of
denials cannot become a flood of events.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

from prometheus_client.core import CounterMetricFamily
from prometheus_client.metrics_core import Metric

from services.limiter import store as sql
from services.limiter.statements import dialect_of
from services.limiter.store import Counts
from services.runtime.errors import Unavailable
from services.runtime.events import EventPublisher
from services.runtime.metrics import Metrics
from services.runtime.store import Store

T = TypeVar("T")


class StatsBook:
    """Unflushed counters of this process, flushed to the store by a supervised periodic job."""

    def __init__(self, store: Store, metrics: Metrics, events: EventPublisher) -> None:
        self._store = store
        self._events = events
        self._pending: dict[str, Counts] = defaultdict(Counts)
        # A flush moves counters out of `_pending` before its transaction commits them; a reader that ran in
        # between would see them in neither place, so reads and flushes take turns.
        self._flushing = asyncio.Lock()
        self._totals: dict[str, list[int]] = {}
        """Per limiter, decided items since start: [allowed (not shadow-denied), denied, shadow_denied]. Each
        only grows, so a scrape (on the metrics thread) never sees a counter go back, and a deleted limiter's
        series stays, as a Prometheus counter's children would."""
        metrics.add_collector(self._metric_families)

    def record(self, limiter_id: str, checks: int, allowed: int, denied: int, shadow_denied: int) -> None:
        """Adds one check's decided items of a limiter (a shadow denial counts as allowed and shadow-denied).

        Plain integers, exported when Prometheus scrapes: a Counter child's `inc` takes a lock on every check."""
        pending = self._pending[limiter_id]
        pending.checks += checks
        pending.allowed += allowed
        pending.denied += denied
        pending.shadow_denied += shadow_denied
        totals = self._totals.get(limiter_id)
        if totals is None:
            totals = self._totals[limiter_id] = [0, 0, 0]
        totals[0] += allowed - shadow_denied
        totals[1] += denied
        totals[2] += shadow_denied

    def _metric_families(self) -> Iterable[Metric]:
        family = CounterMetricFamily(
            "foundation_limiter_decisions",
            "Check items decided, by limiter and decision (allowed, denied, shadow_denied)",
            labels=["limiter", "decision"],
        )
        for limiter_id, (allowed, denied, shadow_denied) in sorted(self._totals.items()):
            family.add_metric([limiter_id, "allowed"], allowed)
            family.add_metric([limiter_id, "denied"], denied)
            family.add_metric([limiter_id, "shadow_denied"], shadow_denied)
        yield family

    async def read_with_pending(
        self,
        read: Callable[[float | None], Awaitable[T]],
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - bounds the wait for a flush and the read together
    ) -> tuple[T, dict[str, Counts]]:
        """The stored counters `read(seconds_left)` returns and a copy of those not flushed yet, with no flush
        between.

        A flush the store is slow to commit (a locked table) is waited for at most `timeout` seconds, then
        the read is UNAVAILABLE: counters it could not place exactly are never shown twice or not at all. The
        read gets what is left of `timeout`, so the lock is never held past it."""
        until = None if timeout is None else time.monotonic() + timeout
        try:
            async with asyncio.timeout(timeout):
                await self._flushing.acquire()
        except TimeoutError:
            raise Unavailable(
                "the limiter's counters are being written to a slow store; try again",
                retry_after=1.0,
                reason="STATS_FLUSH_IN_PROGRESS",
            ) from None
        try:
            stored = await read(None if until is None else max(0.0, until - time.monotonic()))
            pending = {
                limiter: Counts(c.checks, c.allowed, c.denied, c.shadow_denied)
                for limiter, c in self._pending.items()
            }
        finally:
            self._flushing.release()
        return stored, pending

    def forget(self, limiter_id: str) -> None:
        """Drops the counters of a deleted limiter."""
        self._pending.pop(limiter_id, None)

    async def flush(self) -> None:
        """Adds the pending counters to the shared table; on failure they stay pending for the next flush."""
        if not self._pending:
            return
        async with self._flushing:
            batch, self._pending = self._pending, defaultdict(Counts)
            dialect = dialect_of(self._store.dialect)
            try:
                await self._store.transaction(lambda conn: sql.flush_stats(conn, dialect, batch))
            except BaseException:
                for limiter, counts in batch.items():
                    self._pending[limiter].add(counts)
                raise
        for limiter, counts in sorted(batch.items()):
            if counts.denied or counts.shadow_denied:
                self._events.emit(
                    "denied",
                    {
                        "limiter": f"limiters/{limiter}",
                        "denied": counts.denied,
                        "shadow_denied": counts.shadow_denied,
                    },
                    subject=f"limiters/{limiter}",
                )
