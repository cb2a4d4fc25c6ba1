"""When the store cannot answer in time: each limiter's failure mode, within the deadline, never an error.

The store is made really unable to answer: SQLite — another connection holds the write lock; PostgreSQL —
another session holds ACCESS EXCLUSIVE locks on the limiter's tables. Also: shedding at `severe`.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterator

import grpc
import pytest
import sqlalchemy as sa
from google.protobuf import duration_pb2

from foundation.limiter.v1 import limiter_pb2 as pb
from foundation.limiter.v1 import limiter_pb2_grpc as rpc
from tests.harness import eventually, rich_status, running_service
from tests.limiter.conftest import Api

STORE_TIMEOUT_MS = 200
MARGIN_S = 1.0
"""Slack for a shared 2-core machine; the answer must still come long before the store's own timeouts."""


@contextlib.contextmanager
def store_blocked(
    db_url: str, tables: tuple[str, ...] = ("limiter_state",), *, mode: str = "ACCESS EXCLUSIVE"
) -> Iterator[None]:
    """Holds locks that make writes of those tables wait: SQLite, the write lock (reads go on); PostgreSQL,
    `LOCK TABLE … IN <mode>` (ACCESS EXCLUSIVE makes reads wait too, EXCLUSIVE lets them go on)."""
    if db_url.startswith("sqlite"):
        path = sa.make_url(db_url).database
        assert path is not None
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        return
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn, conn.begin():
            conn.execute(sa.text(f"LOCK TABLE {', '.join(tables)} IN {mode} MODE"))
            yield
    finally:
        engine.dispose()


async def timed_check(stub: rpc.LimiterServiceStub, limiter: str) -> tuple[pb.CheckResponse, float]:
    started = time.monotonic()
    response: pb.CheckResponse = await stub.Check(
        pb.CheckRequest(items=[pb.CheckItem(limiter=f"limiters/{limiter}", key="k")]), timeout=10
    )
    return response, time.monotonic() - started


async def test_failure_modes_apply_within_the_store_timeout(db_url: str) -> None:
    async with running_service("limiter", db_url, limiter={"store_timeout_ms": STORE_TIMEOUT_MS}) as svc:
        api = Api(svc, rpc.LimiterServiceStub(svc.channel))
        await api.create("open", limit=5, period_ms=3_600_000)
        await api.create(
            "closed", limit=5, period_ms=3_600_000, failure_mode=pb.Limiter.FAILURE_MODE_FAIL_CLOSED
        )
        for name in ("open", "closed"):
            assert (await api.check(name)).allowed
        with store_blocked(db_url):
            opened, open_took = await timed_check(api.stub, "open")
            closed, closed_took = await timed_check(api.stub, "closed")
            assert opened.allowed
            assert opened.results[0].remaining == 5  # unknown: the limiter's full quota is reported
            assert not closed.allowed
            assert closed.results[0].retry_after.ToMilliseconds() == 1000
            assert "Retry-After" in closed.headers
            for took in (open_took, closed_took):
                assert took < STORE_TIMEOUT_MS / 1000 + MARGIN_S
        # The store is back: real decisions again, and what was answered by failure mode consumed nothing.

        async def decided_again() -> bool:
            response, _ = await timed_check(api.stub, "open")
            return response.results[0].remaining < 5

        await eventually(decided_again, within=15)
        assert await api.remaining("closed") == 4


async def test_unknown_limiter_with_the_store_down_is_unavailable(pg_url: str) -> None:
    # PostgreSQL only: SQLite's readers are never blocked by a writer (WAL), so a definition is always readable.
    async with running_service("limiter", pg_url, limiter={"store_timeout_ms": STORE_TIMEOUT_MS}) as svc:
        stub = rpc.LimiterServiceStub(svc.channel)
        with store_blocked(pg_url, ("limiters", "limiter_state")):
            started = time.monotonic()
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await timed_check(stub, "never-created")
            took = time.monotonic() - started
        status = rich_status(raised.value)
        assert status.code is grpc.StatusCode.UNAVAILABLE
        assert status.retry_after() == 1.0
        assert took < STORE_TIMEOUT_MS / 1000 + MARGIN_S


async def test_writes_are_shed_at_severe_and_peeks_still_work(db_url: str) -> None:
    async with running_service(
        "limiter", db_url, limiter={"max_keys": 10}, resources={"measure_interval_s": 0.05}
    ) as svc:
        api = Api(svc, rpc.LimiterServiceStub(svc.channel))
        await api.create("full", limit=100, period_ms=3_600_000)
        for i in range(10):
            await api.check("full", f"key-{i}")

        async def shed() -> bool:
            try:
                await api.check("full", "one-more")
            except grpc.aio.AioRpcError as error:
                return error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
            return False

        await eventually(shed, within=5)
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await api.check("full", "key-0")
        status = rich_status(raised.value)
        assert status.error_info is not None
        assert status.error_info.reason == "RESOURCE_SEVERE"
        assert status.retry_after() is not None
        peek = await api.check("full", "key-0", cost=0)
        assert peek.allowed
        assert peek.results[0].remaining == 99


async def test_reads_the_store_cannot_answer_are_deadline_exceeded_not_internal(pg_url: str) -> None:
    # PostgreSQL only (SQLite's readers are never blocked). The session's lock_timeout is half of it.
    async with running_service("limiter", pg_url, store={"statement_timeout_ms": 600}) as svc:
        api = Api(svc, rpc.LimiterServiceStub(svc.channel))
        await api.create("held", limit=5, period_ms=3_600_000)
        with store_blocked(pg_url):
            reads: list[Callable[[], Awaitable[object]]] = [
                lambda: api.stub.GetStatus(pb.GetStatusRequest(limiter="limiters/held", key="k"), timeout=10),
                lambda: api.stub.GetStats(pb.GetStatsRequest(), timeout=10),
            ]
            for call in reads:
                started = time.monotonic()
                with pytest.raises(grpc.aio.AioRpcError) as raised:
                    await call()
                status = rich_status(raised.value)
                assert status.code is grpc.StatusCode.DEADLINE_EXCEEDED, (status.code, status.message)
                assert status.error_info is not None
                assert status.error_info.reason == "STORE_TIMEOUT"
                assert time.monotonic() - started < 0.6 + MARGIN_S
        assert await api.remaining("held") == 5


async def test_the_store_timeout_bounds_the_whole_check_not_each_wait(pg_url: str) -> None:
    # The definition has expired from the per-process cache (1 s), so the check first reads it (blocked on
    # PostgreSQL by the lock on `limiters`), then writes: both waits share one store_timeout.
    timeout_s = 0.5
    async with running_service("limiter", pg_url, limiter={"store_timeout_ms": int(timeout_s * 1000)}) as svc:
        api = Api(svc, rpc.LimiterServiceStub(svc.channel))
        await api.create("stale", limit=5, period_ms=3_600_000)
        loaded = time.monotonic()
        await eventually(lambda: time.monotonic() - loaded > 1.2, within=3)  # the cache's TTL has passed
        with store_blocked(pg_url, ("limiters", "limiter_state")):
            response, took = await timed_check(api.stub, "stale")
        assert response.allowed
        assert response.results[0].remaining == 5  # the failure mode's answer, from the last known definition
        assert took < timeout_s * 1.8, took  # two waits of store_timeout each would take 2×


async def create_hour_leases(api: Api, name: str, *, limit: int) -> None:
    """A FAIL_CLOSED concurrency limiter whose leases last an hour: only a release frees them in a test."""
    await api.create(
        name,
        algorithm=pb.Limiter.ALGORITHM_CONCURRENCY,
        limit=limit,
        failure_mode=pb.Limiter.FAILURE_MODE_FAIL_CLOSED,
        lease_ttl=duration_pb2.Duration(seconds=3600),
    )


async def test_leases_of_a_check_decided_after_its_caller_gave_up_are_freed(db_url: str) -> None:
    # PostgreSQL: the writer's statement waits on the lock (below lock_timeout) and commits its lease after the
    # caller was answered by the failure mode, which names no lease. SQLite: the write never starts.
    async with running_service("limiter", db_url, limiter={"store_timeout_ms": STORE_TIMEOUT_MS}) as svc:
        api = Api(svc, rpc.LimiterServiceStub(svc.channel))
        await create_hour_leases(api, "held", limit=2)
        assert (await api.check("held")).allowed  # one of the two slots, held for the hour
        with store_blocked(db_url):
            answered, _ = await timed_check(api.stub, "held")
            assert not answered.allowed
            assert not answered.results[0].lease_id
        # The given-up check's lease, if it was taken, is released ahead of this check in the writer's queue.
        response = await api.stub.Check(
            pb.CheckRequest(items=[pb.CheckItem(limiter="limiters/held", key="k")]), timeout=10
        )
        assert response.allowed
        assert await api.remaining("held") == 0


async def test_every_lease_of_a_given_up_check_is_freed(pg_url: str) -> None:
    # PostgreSQL only: there the given-up statements wait on the lock and take their leases after the answer
    # (SQLite never starts them).
    async with running_service("limiter", pg_url, limiter={"store_timeout_ms": STORE_TIMEOUT_MS}) as svc:
        api = Api(svc, rpc.LimiterServiceStub(svc.channel))
        await create_hour_leases(api, "slots", limit=1)
        keys = ["a", "b", "c", "d"]
        items = [pb.CheckItem(limiter="limiters/slots", key=key) for key in keys]
        with store_blocked(pg_url):
            answered = await api.stub.Check(
                pb.CheckRequest(items=items, mode=pb.CheckRequest.MODE_INDEPENDENT), timeout=10
            )
            assert not any(result.lease_id for result in answered.results)

        async def all_free() -> bool:
            return all([await api.remaining("slots", key) == 1 for key in keys])

        await eventually(all_free)
        # And they stay free: a new check on each key gets its slot.
        again = await api.stub.Check(pb.CheckRequest(items=items, mode=pb.CheckRequest.MODE_INDEPENDENT))
        assert all(result.allowed for result in again.results)


async def test_stats_wait_for_a_stuck_flush_no_longer_than_the_store_timeout(db_url: str) -> None:
    # The flush's transaction waits on the lock far longer (statement timeout 20 s) than GetStats may.
    async with running_service(
        "limiter",
        db_url,
        limiter={"store_timeout_ms": STORE_TIMEOUT_MS},
        store={"statement_timeout_ms": 20_000},
    ) as svc:
        api = Api(svc, rpc.LimiterServiceStub(svc.channel))
        await api.create("counted", limit=100, period_ms=3_600_000)
        assert (await api.check("counted")).allowed
        with store_blocked(db_url, ("limiter_stats",), mode="EXCLUSIVE"):

            async def refused_while_flushing() -> bool:
                try:
                    await api.stub.GetStats(pb.GetStatsRequest(), timeout=5)
                except grpc.aio.AioRpcError as error:
                    code: grpc.StatusCode = error.code()
                    if code is not grpc.StatusCode.UNAVAILABLE:
                        raise
                    return True
                return False  # no flush was in flight yet (one runs every second)

            await eventually(refused_while_flushing, within=10)
            started = time.monotonic()
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await api.stub.GetStats(pb.GetStatsRequest(), timeout=5)
            assert refused.value.code() is grpc.StatusCode.UNAVAILABLE
            assert time.monotonic() - started < 5
        # Once the flush commits, the one check is counted exactly once.

        async def counted_once() -> bool:
            stats = await api.stub.GetStats(pb.GetStatsRequest(limiter="limiters/counted"), timeout=5)
            assert stats.total.checks <= 1
            checks: int = stats.total.checks
            return checks == 1

        await eventually(counted_once, within=10)


async def test_a_cost_refused_while_the_store_is_down_leaves_the_failure_mode_in_place(pg_url: str) -> None:
    # PostgreSQL: `limiters` locked, so even the definitions cannot be read again; the cached one decides.
    async with running_service("limiter", pg_url, limiter={"store_timeout_ms": STORE_TIMEOUT_MS}) as svc:
        api = Api(svc, rpc.LimiterServiceStub(svc.channel))
        await api.create("open", limit=5, period_ms=86_400_000)
        assert (await api.check("open")).allowed  # cached now
        too_much = pb.CheckRequest(items=[pb.CheckItem(limiter="limiters/open", key="k", cost=6)])
        with store_blocked(pg_url, ("limiters", "limiter_state")):
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await api.stub.Check(too_much, timeout=10)
            assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
            answered, _ = await timed_check(api.stub, "open")
            assert answered.allowed  # FAIL_OPEN, from the definition the refusal did not drop
