"""The limiter's logic between the servicer (protos) and the store (SQL).

Checks: validate against the limiters' definitions, shed at `severe`, decide through the group-commit writer
within the store timeout, and when the store cannot answer in time apply each limiter's failure mode (a
result, never an error). CRUD, status, reset and release are thin transactions. The sweeper and the stats
flush run under the supervisor (wired in services.limiter.server).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Sequence
from typing import Any, NamedTuple

import structlog

from services.limiter import reads
from services.limiter import store as sql
from services.limiter.algorithms import Algorithm, FailureMode, LimiterConfig, View
from services.limiter.batch import CheckHandler
from services.limiter.configs import RESOURCE_TYPE, ConfigCache
from services.limiter.decisions import CheckOp, Decision, StaleConfig, Unit
from services.limiter.statements import SqlClock, dialect_of
from services.limiter.stats import StatsBook
from services.limiter.store import Counts, ReleaseHandler
from services.limiter.validation import Item, Violations, combination, complete
from services.runtime import deadlines
from services.runtime.errors import AlreadyExists, NotFound, ResourceExhausted, Unavailable
from services.runtime.service import ServiceContext
from services.runtime.store import Store, StoreTimeout, StoreUnavailable
from services.runtime.supervisor import WorkerPool

log = structlog.get_logger(__name__)

KEYS_RESOURCE = "limiter.keys"
ORPHAN_QUEUE = 1000
"""Checks whose leases may wait to be freed after a store timeout (beyond it, their TTL frees them)."""
FAILURE_RETRY_US = 1_000_000
"""What a FAIL_CLOSED denial tells the client to wait: the store is expected back within about a second."""


class Outcome(NamedTuple):
    """A decided Check item as the servicer reports it."""

    config: LimiterConfig
    allowed: bool
    view: View
    lease_id: str
    shadow_denied: bool


class Limiters:
    """Everything the limiter does, on one store."""

    def __init__(self, ctx: ServiceContext, clock: SqlClock | None = None) -> None:
        if ctx.store is None:
            raise ValueError("the limiter needs a store")
        self._ctx = ctx
        self._store: Store = ctx.store
        self._settings = ctx.settings.limiter
        self.clock = clock or SqlClock.for_store(self._store)
        self._dialect = dialect_of(self._store.dialect)
        self._checker = CheckHandler(self._store.dialect, self.clock)
        self._releaser = ReleaseHandler(self._store.dialect, self.clock)
        self.configs = ConfigCache(self._store)
        self.stats = StatsBook(self._store, ctx.metrics, ctx.events)
        self._orphans: WorkerPool | None = None
        self._store_failures = ctx.metrics.counter(
            "foundation_limiter_store_failures_total",
            "Checks answered by their failure mode because the store could not answer in time",
            ["failure_mode"],
        )
        self._stale = ctx.metrics.counter(
            "foundation_limiter_stale_definitions_total",
            "Check attempts rolled back because a limiter was deleted or changed algorithm or shadow flag since it "
            "was cached",
        )

    # ---- limiter resources ----------------------------------------------------------------------------

    async def create(self, limiter_id: str, values: dict[str, Any], *, burst_set: bool) -> LimiterConfig:
        """Creates a limiter; ALREADY_EXISTS when the id is taken."""
        values = complete({"id": limiter_id, **values})
        _validate(_preview(values), burst_set=burst_set)
        created = await self._store.transaction(lambda conn: sql.insert_limiter(conn, self.clock, values))
        if created is None:
            raise AlreadyExists(RESOURCE_TYPE, f"limiters/{limiter_id}")
        self.configs.put(created)
        self._ctx.events.emit("limiter_configured", _event(created), subject=created.name)
        return created

    async def ensure(self, values: dict[str, Any]) -> None:
        """Creates or updates a limiter defined by configuration (idempotent, safe across replicas)."""
        full = complete(dict(values))
        _validate(_preview(full), burst_set=False)
        await self._store.transaction(lambda conn: sql.sync_limiter(conn, self.clock, full))
        self.configs.forget([str(full["id"])])

    async def get(self, limiter_id: str) -> LimiterConfig:
        """One limiter or NOT_FOUND."""
        found = await self._store.read(lambda conn: sql.get_limiters(conn, [limiter_id]))
        if limiter_id not in found:
            raise NotFound(RESOURCE_TYPE, f"limiters/{limiter_id}")
        return found[limiter_id]

    async def page(self, after: str, size: int) -> tuple[list[LimiterConfig], str]:
        """One page in id order and the id to continue after ('' on the last page)."""
        page = await self._store.read(lambda conn: sql.list_limiters(conn, after, size + 1))
        more = len(page) > size
        page = page[:size]
        return page, (page[-1].id if more else "")

    async def update(self, limiter_id: str, values: dict[str, Any], *, burst_set: bool) -> LimiterConfig:
        """Changes the given fields in one statement; the result is validated before it commits."""

        def change(conn: object) -> LimiterConfig:
            updated = sql.update_limiter(conn, self.clock, limiter_id, values)  # type: ignore[arg-type]
            if updated is None:
                raise NotFound(RESOURCE_TYPE, f"limiters/{limiter_id}")
            _validate(updated, burst_set=burst_set)  # raising here rolls the update back
            return updated

        updated = await self._store.transaction(change)
        self.configs.put(updated)
        self._ctx.events.emit("limiter_configured", _event(updated), subject=updated.name)
        return updated

    async def delete(self, limiter_id: str) -> int:
        """Deletes a limiter and its keys; returns how many keys it had."""
        keys = await self._store.transaction(lambda conn: sql.delete_limiter(conn, limiter_id))
        if keys is None:
            raise NotFound(RESOURCE_TYPE, f"limiters/{limiter_id}")
        self.configs.forget([limiter_id])
        self.stats.forget(limiter_id)
        self._ctx.events.emit(
            "limiter_removed", {"limiter": f"limiters/{limiter_id}"}, subject=f"limiters/{limiter_id}"
        )
        return keys

    # ---- decisions ------------------------------------------------------------------------------------

    async def check(self, items: Sequence[Item], *, all_or_nothing: bool, dry_run: bool) -> list[Outcome]:
        """Decides the items; over-limit and store failures are results, never errors."""
        # One budget for every wait on the store (definitions, then the decision), not one per wait.
        timeout = deadlines.bounded(self._settings.store_timeout_ms / 1000)
        until = None if timeout is None else time.monotonic() + timeout
        if len(items) == 1:
            ids = [items[0].limiter_id]
        else:
            ids = list(dict.fromkeys(item.limiter_id for item in items))
        for attempt in range(3):
            asked = time.monotonic()
            configs = self.configs.cached(ids)
            if configs is None:
                configs = await self.configs.get_many(ids, timeout=_left(until))
            units, over, consumes = _units(items, configs)
            if over:
                if cached := self.configs.read_before(over, asked):
                    # A cached definition may predate a burst or limit raised on another replica: a cost is
                    # refused on a definition read now (or, with the store down, on the cached one).
                    configs = await self.configs.get_many(ids, timeout=_left(until), fresh=cached)
                self._check_costs(items, configs)
                units = _units(items, configs)[0]
            if consumes and not dry_run:
                self._ctx.resources.check_writes()
            op = CheckOp(units, atomic=all_or_nothing and len(units) > 1, dry_run=dry_run)
            try:
                decisions = await self._store.write(
                    self._checker, op, timeout=_left(until), weight=len(units)
                )
            except StaleConfig as stale:
                # Rolled back whole (services.limiter.batch): nothing of this attempt consumed.
                self._stale.inc()
                self.configs.forget(stale.limiters)
                if attempt == 2:
                    raise Unavailable("limiters kept changing during the check; try again") from stale
                continue
            except (StoreTimeout, StoreUnavailable) as failure:
                decisions = self._failure_mode(units, configs, failure)
                if isinstance(failure, StoreTimeout) and not dry_run:
                    self._release_orphans([unit.lease_id for unit in units if unit.lease_id])
            return self._settle(items, configs, decisions)
        raise AssertionError("unreachable")

    def start(self) -> None:
        """Creates the supervised pool that frees orphaned leases (called once the supervisor runs)."""
        self._orphans = self._ctx.supervisor.worker_pool(
            "limiter.orphan_leases", max_concurrency=1, max_queue=ORPHAN_QUEUE, timeout=60.0
        )

    def _release_orphans(self, lease_ids: list[str]) -> None:
        """Frees the leases of a check the store may have decided after its caller stopped waiting: the answer
        (the failure mode's) named no lease, so nobody could release them before their TTL. The releases queue
        behind the check in the writer, so they find its leases if it ran; they go together, so the writer
        batches them. A full or shut-down pool (or none: not started) leaves them to the TTL."""
        if not lease_ids or self._orphans is None:
            return

        async def release_all() -> None:
            results = await asyncio.gather(
                *(self._store.write(self._releaser, lease_id) for lease_id in lease_ids),
                return_exceptions=True,
            )
            failed = [r for r in results if isinstance(r, BaseException)]
            if failed:
                log.warning("orphaned leases left to their TTL", count=len(failed), error=str(failed[0]))

        with contextlib.suppress(ResourceExhausted, Unavailable):
            self._orphans.submit(release_all).add_done_callback(_retrieved)

    def _check_costs(self, items: Sequence[Item], configs: dict[str, LimiterConfig]) -> None:
        v = Violations()
        for i, item in enumerate(items):
            config = configs[item.limiter_id]
            if item.cost > config.capacity:
                what = "burst" if config.algorithm is Algorithm.GCRA else "limit"
                v.add(
                    f"items[{i}].cost",
                    f"{item.cost} can never be allowed: {config.name} has {what} {config.capacity}",
                )
        v.raise_if_any()

    def _failure_mode(
        self, units: Sequence[Unit], configs: dict[str, LimiterConfig], failure: Exception
    ) -> list[Decision]:
        log.warning("limiter store did not answer in time; failure modes apply", error=str(failure))
        decisions = []
        for unit in units:
            config = configs[unit.limiter]
            open_ = config.failure_mode is FailureMode.FAIL_OPEN
            self._store_failures.labels(config.failure_mode.name).inc()
            view = View(config.limit, config.limit if open_ else 0, 0, 0 if open_ else FAILURE_RETRY_US)
            decisions.append(Decision(open_, view))
        return decisions

    def _settle(
        self, items: Sequence[Item], configs: dict[str, LimiterConfig], decisions: Sequence[Decision]
    ) -> list[Outcome]:
        outcomes = []
        tally: dict[str, list[int]] = {}  # limiter id → [checks, allowed, denied, shadow denied]
        for item, decision in zip(items, decisions, strict=True):
            limiter_id = item.limiter_id
            config = configs[limiter_id]
            counts = tally.get(limiter_id)
            if counts is None:
                counts = tally[limiter_id] = [0, 0, 0, 0]
            counts[0] += 1
            view = decision.view
            if decision.allowed:
                counts[1] += 1
                outcomes.append(Outcome(config, True, view, decision.lease_id, False))
            elif config.shadow:  # decide and count, but always allow
                counts[1] += 1
                counts[3] += 1
                view = View(view.limit, view.remaining, view.reset_after_us, 0)
                outcomes.append(Outcome(config, True, view, decision.lease_id, True))
            else:
                counts[2] += 1
                outcomes.append(Outcome(config, False, view, decision.lease_id, False))
        record = self.stats.record
        for limiter_id, (checks, allowed, denied, shadow_denied) in tally.items():
            record(limiter_id, checks, allowed, denied, shadow_denied)
        return outcomes

    async def status(self, limiter_id: str, key: str) -> tuple[View, int]:
        """The key's view now and the clock's value (µs), without changing anything."""

        def read(conn: object) -> tuple[list[View | None], int]:
            found = reads.views(conn, self.clock, self._dialect, [(limiter_id, key, 0)])  # type: ignore[arg-type]
            return found, self.clock.now_us(conn)  # type: ignore[arg-type]

        found, now = await self._store.read(read)
        if found[0] is None:
            raise NotFound(RESOURCE_TYPE, f"limiters/{limiter_id}")
        return found[0], now

    async def reset(self, limiter_id: str, key: str) -> bool:
        """Clears one key; whether it had state."""
        existed = await self._store.transaction(lambda conn: sql.reset_key(conn, limiter_id, key))
        if existed is None:
            raise NotFound(RESOURCE_TYPE, f"limiters/{limiter_id}")
        return existed

    async def release(self, lease_id: str) -> bool:
        """Frees a lease early; False when it was unknown or already expired."""
        released: bool = await self._store.write(self._releaser, lease_id)
        return released

    async def read_stats(self, limiter_id: str | None) -> list[tuple[str, Counts, int]]:
        """Counters (stored + unflushed) and live keys per limiter, in id order."""
        stored, pending = await self.stats.read_with_pending(
            lambda left: self._store.read(
                lambda conn: sql.read_stats(conn, self.clock, limiter_id), timeout=left
            ),
            timeout=deadlines.bounded(self._settings.store_timeout_ms / 1000),
        )
        if limiter_id is not None and limiter_id not in stored:
            raise NotFound(RESOURCE_TYPE, f"limiters/{limiter_id}")
        result = []
        for lid, (counts, keys) in stored.items():
            if lid in pending:
                counts.add(pending[lid])
            result.append((lid, counts, keys))
        return result

    # ---- background work (supervised) -----------------------------------------------------------------

    async def sweep(self) -> int:
        """Deletes expired state and leases in bounded batches; the number of rows removed."""
        batch = self._settings.sweep_batch
        removed = 0
        for _ in range(1000):  # bounded work per run; the next run continues
            states, redated, leases = await self._store.transaction(
                lambda conn: sql.sweep(conn, self.clock, batch)
            )
            removed += states + leases
            if states < batch and redated < batch and leases < batch:
                break
        if removed:
            level = log.warning if removed > 1000 else log.info
            level("limiter cleanup", removed=removed)
            self._ctx.events.emit("cleanup_performed", {"cleaned_entries": removed})
        return removed

    async def count_keys(self) -> int:
        """Stored key states (the resource manager's measure). Near the bound, expired states are swept first:
        keys back to a fresh key's state must not make the limiter shed until the next periodic sweep."""
        count: int = await self._store.read(sql.count_keys)
        if count > self._settings.max_keys * self._ctx.settings.resources.moderate_ratio:
            await self.sweep()
            count = await self._store.read(sql.count_keys)
        return count


def _retrieved(future: asyncio.Future[None]) -> None:
    """Marks a fire-and-forget job's outcome as seen (the pool has logged a failure already)."""
    if not future.cancelled():
        future.exception()


def _left(until: float | None) -> float | None:
    """Seconds left of a budget ending at `until` (time.monotonic()), or None without one."""
    return None if until is None else max(0.0, until - time.monotonic())


def _units(items: Sequence[Item], configs: dict[str, LimiterConfig]) -> tuple[list[Unit], set[str], bool]:
    """The items as units to decide, the limiters whose capacity some cost passes, and whether any item
    consumes (cost > 0)."""
    units = []
    over: set[str] = set()
    consumes = False
    for item in items:
        limiter_id, cost = item.limiter_id, item.cost
        config = configs[limiter_id]
        algorithm = config.algorithm
        if cost > config.capacity:
            over.add(limiter_id)
        lease_id = ""
        if cost > 0:
            consumes = True
            # Dry runs take their leases too, inside a savepoint that is always rolled back: lease ids must be
            # unique even then, and no lease id is reported for them.
            if algorithm is Algorithm.CONCURRENCY:
                lease_id = uuid.uuid4().hex
        units.append(Unit(limiter_id, item.key, cost, algorithm, config.shadow, lease_id))
    return units, over, consumes


def _preview(values: dict[str, Any]) -> LimiterConfig:
    return LimiterConfig(
        id=str(values["id"]),
        algorithm=Algorithm(values["algorithm"]),
        limit=int(values["limit_count"]),
        period_us=int(values["period_us"]),
        burst=int(values["burst"]),
        failure_mode=FailureMode(values["failure_mode"]),
        shadow=bool(values["shadow"]),
        lease_ttl_us=int(values["lease_ttl_us"]),
        description=str(values["description"]),
        create_us=0,
        update_us=0,
    )


def _validate(config: LimiterConfig, *, burst_set: bool) -> None:
    v = Violations()
    combination(config, v, burst_set=burst_set)
    v.raise_if_any()


def _event(config: LimiterConfig) -> dict[str, object]:
    return {
        "limiter": config.name,
        "algorithm": config.algorithm.name,
        "limit": config.limit,
        "period_ms": config.period_us / 1000,
        "burst": config.burst,
    }
