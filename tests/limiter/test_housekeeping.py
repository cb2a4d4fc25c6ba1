"""The limiter's background work and signals, on a real server: the sweeper, events, metrics, the key bound."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence

import httpx
import sqlalchemy as sa
from google.protobuf import duration_pb2, field_mask_pb2

from foundation.limiter.v1 import limiter_pb2 as pb
from foundation.limiter.v1 import limiter_pb2_grpc as rpc
from services.runtime.events import CloudEvent
from tests.harness import eventually, running_service


def ms(n: int) -> duration_pb2.Duration:
    return duration_pb2.Duration(seconds=n // 1000, nanos=(n % 1000) * 1_000_000)


def stored_rows(db_url: str) -> tuple[set[tuple[str, str]], int]:
    """The (limiter, key) pairs with state, and the number of leases, straight from the database."""
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            states = {(r[0], r[1]) for r in conn.execute(sa.text("SELECT limiter, key FROM limiter_state"))}
            leases = int(conn.execute(sa.text("SELECT count(*) FROM limiter_leases")).scalar_one())
    finally:
        engine.dispose()
    return states, leases


async def test_sweeper_removes_expired_state_and_leases_only(db_url: str) -> None:
    events: list[CloudEvent] = []

    async def sink(batch: Sequence[CloudEvent]) -> None:
        events.extend(batch)

    async with running_service("limiter", db_url, limiter={"sweep_interval_s": 0.1}) as svc:
        svc.app.context.events.set_sink(sink)
        stub = rpc.LimiterServiceStub(svc.channel)
        fixed = pb.Limiter(algorithm=pb.Limiter.ALGORITHM_FIXED_WINDOW, limit=5, period=ms(200))
        conc = pb.Limiter(algorithm=pb.Limiter.ALGORITHM_CONCURRENCY, limit=2, lease_ttl=ms(200))
        lasting = pb.Limiter(limit=5, period=ms(600_000))
        for name, limiter in (("short", fixed), ("conc", conc), ("long", lasting)):
            await stub.CreateLimiter(pb.CreateLimiterRequest(limiter_id=name, limiter=limiter))
        items = [pb.CheckItem(limiter="limiters/short", key=f"k{i}") for i in range(3)]
        items += [
            pb.CheckItem(limiter="limiters/conc", key="c"),
            pb.CheckItem(limiter="limiters/long", key="stays"),
        ]
        response = await stub.Check(pb.CheckRequest(items=items))
        assert response.allowed
        assert response.results[3].lease_id

        def only_the_live_key_is_left() -> bool:
            states, leases = stored_rows(db_url)
            return states == {("long", "stays")} and leases == 0

        await eventually(only_the_live_key_is_left, within=10)
        # Three fixed-window keys, the concurrency key's row and its lease: each removal reported once.
        await eventually(
            lambda: (
                sum(
                    e.data["cleaned_entries"]
                    for e in events
                    if e.type == "foundation.limiter.cleanup_performed"
                )
                == 5
            )
        )
        stats = await stub.GetStats(pb.GetStatsRequest(limiter="limiters/long"))
        assert stats.total.active_keys == 1
        # A released or swept lease is gone: releasing it now frees nothing.
        released = await stub.Release(pb.ReleaseRequest(lease_id=response.results[3].lease_id))
        assert not released.released


async def test_events_are_aggregated_and_metrics_name_limiters_never_keys(db_url: str) -> None:
    events: list[CloudEvent] = []

    async def sink(batch: Sequence[CloudEvent]) -> None:
        events.extend(batch)

    async with running_service("limiter", db_url) as svc:
        svc.app.context.events.set_sink(sink)
        stub = rpc.LimiterServiceStub(svc.channel)
        await stub.CreateLimiter(
            pb.CreateLimiterRequest(
                limiter_id="tight",
                limiter=pb.Limiter(algorithm=pb.Limiter.ALGORITHM_FIXED_WINDOW, limit=1, period=ms(600_000)),
            )
        )
        check = pb.CheckRequest(items=[pb.CheckItem(limiter="limiters/tight", key="secret-user-key")])
        decisions = [(await stub.Check(check)).allowed for _ in range(21)]
        assert decisions == [True] + [False] * 20
        await stub.DeleteLimiter(pb.DeleteLimiterRequest(name="limiters/tight"))

        def types() -> list[str]:
            return [e.type for e in events]

        await eventually(lambda: "foundation.limiter.limiter_removed" in types())
        configured = [e for e in events if e.type == "foundation.limiter.limiter_configured"]
        assert [(e.subject, e.data["limit"], e.data["algorithm"]) for e in configured] == [
            ("limiters/tight", 1, "FIXED_WINDOW")
        ]

        async with httpx.AsyncClient() as client:
            text = (await client.get(svc.metrics_url, timeout=5)).text
    assert 'foundation_limiter_decisions_total{decision="allowed",limiter="tight"} 1.0' in text
    assert 'foundation_limiter_decisions_total{decision="denied",limiter="tight"} 20.0' in text
    assert "secret-user-key" not in text


async def test_denial_events_carry_the_counts_of_a_flush(db_url: str) -> None:
    events: list[CloudEvent] = []

    async def sink(batch: Sequence[CloudEvent]) -> None:
        events.extend(batch)

    async with running_service("limiter", db_url) as svc:
        svc.app.context.events.set_sink(sink)
        stub = rpc.LimiterServiceStub(svc.channel)
        await stub.CreateLimiter(
            pb.CreateLimiterRequest(limiter_id="one", limiter=pb.Limiter(limit=1, period=ms(600_000)))
        )
        check = pb.CheckRequest(items=[pb.CheckItem(limiter="limiters/one", key="k")] * 10)
        response = await stub.Check(pb.CheckRequest(items=check.items, mode=pb.CheckRequest.MODE_INDEPENDENT))
        assert [r.allowed for r in response.results] == [True] + [False] * 9

        def denied_total() -> int:
            return sum(e.data["denied"] for e in events if e.type == "foundation.limiter.denied")

        await eventually(lambda: denied_total() == 9)
        assert len([e for e in events if e.type == "foundation.limiter.denied"]) == 1


async def test_stored_keys_are_a_bounded_resource(db_url: str) -> None:
    async with running_service("limiter", db_url, limiter={"max_keys": 40}) as svc:
        stub = rpc.LimiterServiceStub(svc.channel)
        await stub.CreateLimiter(
            pb.CreateLimiterRequest(limiter_id="many", limiter=pb.Limiter(limit=5, period=ms(600_000)))
        )
        items = [pb.CheckItem(limiter="limiters/many", key=f"user-{i}") for i in range(30)]
        await stub.Check(pb.CheckRequest(items=items, mode=pb.CheckRequest.MODE_INDEPENDENT))
        resources = svc.app.context.resources
        await resources.measure()
        usage = {u.name: u for u in resources.usage()}["limiter.keys"]
        assert (usage.bound, usage.used, usage.state) == (40, 30, "normal")
        more = [pb.CheckItem(limiter="limiters/many", key=f"other-{i}") for i in range(9)]
        await stub.Check(pb.CheckRequest(items=more, mode=pb.CheckRequest.MODE_INDEPENDENT))
        await resources.measure()
        usage = {u.name: u for u in resources.usage()}["limiter.keys"]
        assert (usage.used, usage.state) == (39, "severe")


async def test_near_the_key_bound_expired_keys_are_swept_at_once(db_url: str) -> None:
    # The periodic sweep is 300 s away: the measurement itself clears what has expired.
    async with running_service("limiter", db_url, limiter={"max_keys": 40}) as svc:
        stub = rpc.LimiterServiceStub(svc.channel)
        brief = pb.Limiter(algorithm=pb.Limiter.ALGORITHM_FIXED_WINDOW, limit=5, period=ms(200))
        await stub.CreateLimiter(pb.CreateLimiterRequest(limiter_id="brief", limiter=brief))
        items = [pb.CheckItem(limiter="limiters/brief", key=f"user-{i}") for i in range(39)]
        assert (await stub.Check(pb.CheckRequest(items=items))).allowed
        resources = svc.app.context.resources

        async def measured() -> tuple[int, str]:
            await resources.measure()
            usage = {u.name: u for u in resources.usage()}["limiter.keys"]
            return usage.used, usage.state

        await eventually(lambda: _is(measured(), (0, "normal")), within=5)
        assert (await stub.Check(pb.CheckRequest(items=items))).allowed  # not shed


async def _is(value: Awaitable[object], expected: object) -> bool:
    return await value == expected


async def test_stats_read_during_a_flush_count_every_decision_once(db_url: str) -> None:
    """GetStats adds the stored sums to the unflushed ones; a flush moving counts between them must not hide any."""

    def flushed_checks() -> int:
        engine = sa.create_engine(db_url)
        try:
            with engine.connect() as conn:
                return int(
                    conn.execute(sa.text("SELECT coalesce(sum(checks), 0) FROM limiter_stats")).scalar_one()
                )
        finally:
            engine.dispose()

    async with running_service("limiter", db_url) as svc:
        stub = rpc.LimiterServiceStub(svc.channel)
        await stub.CreateLimiter(
            pb.CreateLimiterRequest(limiter_id="seen", limiter=pb.Limiter(limit=5, period=ms(600_000)))
        )
        items = [pb.CheckItem(limiter="limiters/seen", key=f"k{i}") for i in range(7)]
        await stub.Check(pb.CheckRequest(items=items, mode=pb.CheckRequest.MODE_INDEPENDENT))
        seen: list[int] = []
        stop = asyncio.Event()

        async def reader() -> None:
            while not stop.is_set():
                seen.append((await stub.GetStats(pb.GetStatsRequest())).total.checks)

        readers = [asyncio.create_task(reader()) for _ in range(8)]
        try:
            # The periodic flush (every second) moves the 7 checks into the table while the readers run.
            await eventually(lambda: flushed_checks() == 7, within=10)
            count_after_flush = len(seen)
            await eventually(lambda: len(seen) > count_after_flush + 50)
        finally:
            stop.set()
            await asyncio.gather(*readers)
    assert set(seen) == {7}


async def test_sweeper_keeps_a_gcra_key_whose_bucket_refills_slower_since_an_update(db_url: str) -> None:
    async with running_service("limiter", db_url, limiter={"sweep_interval_s": 0.1}) as svc:
        stub = rpc.LimiterServiceStub(svc.channel)
        for name in ("slowed", "control"):  # full again 500 ms after being emptied
            await stub.CreateLimiter(
                pb.CreateLimiterRequest(
                    limiter_id=name, limiter=pb.Limiter(limit=10, burst=10, period=ms(500))
                )
            )
        items = [pb.CheckItem(limiter=f"limiters/{name}", key="k", cost=10) for name in ("slowed", "control")]
        assert (await stub.Check(pb.CheckRequest(items=items))).allowed
        # Now one unit per 600 s: the emptied bucket is full again in 6,000 s, not at its stored expiry.
        await stub.UpdateLimiter(
            pb.UpdateLimiterRequest(
                limiter=pb.Limiter(name="limiters/slowed", limit=1, period=ms(600_000)),
                update_mask=field_mask_pb2.FieldMask(paths=["limit", "period"]),
            )
        )
        # The control key, expired at the same moment, shows that the sweeper has run past that expiry.
        await eventually(lambda: stored_rows(db_url)[0] == {("slowed", "k")}, within=10)
        check = pb.CheckRequest(items=[pb.CheckItem(limiter="limiters/slowed", key="k")])
        assert not (await stub.Check(check)).allowed  # a swept key would have come back as a full bucket


def gcra_row(db_url: str, limiter: str, key: str) -> tuple[int, int] | None:
    """(stamp_us, expires_us) of a key's stored state, or None once it is swept."""
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            row = conn.execute(
                sa.text("SELECT stamp_us, expires_us FROM limiter_state WHERE limiter = :l AND key = :k"),
                {"l": limiter, "k": key},
            ).first()
    finally:
        engine.dispose()
    return None if row is None else (int(row[0]), int(row[1]))


async def test_sweeper_redates_then_removes_a_gcra_key_by_its_level_under_the_new_settings(
    db_url: str,
) -> None:
    async with running_service("limiter", db_url, limiter={"sweep_interval_s": 0.1}) as svc:
        stub = rpc.LimiterServiceStub(svc.channel)
        await stub.CreateLimiter(
            pb.CreateLimiterRequest(
                limiter_id="eased", limiter=pb.Limiter(limit=10, burst=10, period=ms(10_000))
            )
        )
        check = pb.CheckRequest(items=[pb.CheckItem(limiter="limiters/eased", key="k")])
        assert (await stub.Check(check)).allowed  # 9 of 10 tokens left: full again in 1 s
        # Now one token per 2 s: the bucket lacks one token, so it is full 2 s after its last decision (an
        # emptied one would take 20).
        await stub.UpdateLimiter(
            pb.UpdateLimiterRequest(
                limiter=pb.Limiter(name="limiters/eased", limit=1, burst=10, period=ms(2_000)),
                update_mask=field_mask_pb2.FieldMask(paths=["limit", "burst", "period"]),
            )
        )
        first = gcra_row(db_url, "eased", "k")
        assert first is not None  # its stored expiry (1 s) has not passed
        stamp_us = first[0]

        def redated_or_gone() -> bool:
            row = gcra_row(db_url, "eased", "k")
            return row is None or row[1] > stamp_us + 1_000_000

        # Past its stored expiry the sweeper moves it to when the current settings fill it (1 µs late)...
        await eventually(redated_or_gone, within=10)
        row = gcra_row(db_url, "eased", "k")
        assert row is None or row == (stamp_us, stamp_us + 2_000_001)
        # ...and removes it then, well before an emptied bucket's twenty seconds.
        await eventually(lambda: gcra_row(db_url, "eased", "k") is None, within=10)
        assert (await stub.Check(check)).results[0].remaining == 9  # a fresh, full bucket took one
