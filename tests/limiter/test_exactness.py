"""Exactness under concurrency: 16 clients on one key, real time, real servers; two replicas on PostgreSQL.

Each decision happened somewhere between its request's send and its response's receipt (client clock; the
server's clock is the same host's — SQLite's writer reads it, PostgreSQL runs on 127.0.0.1). Bounds are
checked against those intervals, so they are never looser than the truth:
- GCRA: the admissions decided inside any [a, b] are at most burst + (b − a) × limit / period; under
  saturation the total is at least what the bucket refilled (no false denials).
- Fixed window: exactly `limit` in every window the run covers (at most, and at least under saturation).
- Sliding window: at most `limit` per aligned window, at most 2 × limit in any period-long interval.
- Concurrency: at no moment more than `limit` leases held.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import grpc
import pytest
from google.protobuf import duration_pb2

from foundation.limiter.v1 import limiter_pb2 as pb
from foundation.limiter.v1 import limiter_pb2_grpc as rpc
from tests.harness import running_service

CLIENTS = 16
REPLICAS = pytest.mark.parametrize("replicas", [1, 2], ids=["one-process", "two-replicas"])
"""Two replicas share one database: PostgreSQL, or one SQLite file (two writers, BEGIN IMMEDIATE)."""


@dataclass(frozen=True)
class Record:
    """One check as the client saw it (wall-clock microseconds)."""

    sent_us: int
    received_us: int
    allowed: bool
    reset_after_us: int
    lease_id: str


def now_us() -> int:
    return time.time_ns() // 1000


def micros(duration: duration_pb2.Duration) -> int:
    return duration.seconds * 1_000_000 + duration.nanos // 1000


@contextlib.asynccontextmanager
async def limiter_stubs(db_url: str, replicas: int) -> AsyncIterator[list[rpc.LimiterServiceStub]]:
    async with contextlib.AsyncExitStack() as stack:
        services = [
            # A long store timeout: on a loaded machine a slow write must still be decided, not failed over.
            await stack.enter_async_context(
                running_service("limiter", db_url, limiter={"store_timeout_ms": 20_000})
            )
            for _ in range(replicas)
        ]
        yield [rpc.LimiterServiceStub(s.channel) for s in services]


async def create(stub: rpc.LimiterServiceStub, name: str, **fields: object) -> None:
    """A FAIL_CLOSED limiter: on a loaded machine a write slower than the store timeout must not be let through
    by the failure mode (FAIL_OPEN would admit it and the test would see an over-admission that is not one)."""
    fields.setdefault("failure_mode", pb.Limiter.FAILURE_MODE_FAIL_CLOSED)
    await stub.CreateLimiter(pb.CreateLimiterRequest(limiter_id=name, limiter=pb.Limiter(**fields)))  # type: ignore[arg-type]


async def hammer(
    stubs: Sequence[rpc.LimiterServiceStub], limiter: str, seconds: float, *, hold_s: float = 0.0
) -> tuple[list[Record], list[tuple[int, int]]]:
    """CLIENTS clients checking one key as fast as they can for `seconds`.

    Leases are held up to `hold_s`, then released; returns the records and each lease's held interval.
    """
    records: list[Record] = []
    held: list[tuple[int, int]] = []
    stop = time.monotonic() + seconds
    request = pb.CheckRequest(items=[pb.CheckItem(limiter=f"limiters/{limiter}", key="one-key")])

    async def client(stub: rpc.LimiterServiceStub) -> None:
        while time.monotonic() < stop:
            sent = now_us()
            response = await stub.Check(request)
            received = now_us()
            result = response.results[0]
            records.append(
                Record(sent, received, result.allowed, micros(result.reset_after), result.lease_id)
            )
            if result.lease_id:
                await asyncio.sleep(random.uniform(0, hold_s))
                releasing = now_us()
                released = await stub.Release(pb.ReleaseRequest(lease_id=result.lease_id))
                assert released.released
                held.append((received, releasing))

    await asyncio.gather(*(client(stubs[i % len(stubs)]) for i in range(CLIENTS)))
    return records, held


def check_gcra_bound(records: list[Record], limit: int, period_us: int, burst: int) -> None:
    admitted = sorted((r for r in records if r.allowed), key=lambda r: r.sent_us)
    assert admitted
    for i, first in enumerate(admitted):
        for last in admitted[i:]:
            inside = sum(
                1 for r in admitted if r.sent_us >= first.sent_us and r.received_us <= last.received_us
            )
            bound = burst + (last.received_us - first.sent_us) * limit / period_us
            assert inside <= bound, (inside, bound)


def refill_windows(records: list[Record], refill_us: int) -> list[tuple[int, int]]:
    """Where a saturated GCRA bucket may have been full again, as (earliest, latest) bounds on that moment.

    Under saturation the bucket is near empty after each admission, so it fills again only after `refill_us`
    without one, which a stalled machine can cause (the refill beyond full is lost, as GCRA says it must be).
    An admission was decided somewhere in [send, receipt], so a stretch opening after a send can be free of
    admissions only until the earliest receipt of an admission sent after it; when that is `refill_us` or
    more, the bucket may have been full between `refill_us` after the opening and that receipt.
    """
    admitted = sorted((r.sent_us, r.received_us) for r in records if r.allowed)
    windows: list[tuple[int, int]] = []
    earliest_receipt_after: int | None = None
    for sent, received in reversed(admitted):
        if earliest_receipt_after is not None and earliest_receipt_after - sent >= refill_us:
            windows.append((sent + refill_us, earliest_receipt_after))
        earliest_receipt_after = (
            received if earliest_receipt_after is None else min(earliest_receipt_after, received)
        )
    return windows


def false_denials(records: list[Record], interval_us: int, slack_us: int = 1000) -> list[Record]:
    """Denials no GCRA bucket can make: after an admission it refills a whole token within one emission
    interval, so a denial needs an admission decided less than an interval before it. A denial is false when
    no admission's [send, receipt] meets [send − interval, receipt] of the denial (`slack_us` for the clock)."""
    admitted = [(r.sent_us, r.received_us) for r in records if r.allowed]
    return [
        denial
        for denial in records
        if not denial.allowed
        and not any(
            sent <= denial.received_us and received >= denial.sent_us - interval_us - slack_us
            for sent, received in admitted
        )
    ]


@REPLICAS
async def test_gcra_never_over_admits_and_refills_fully(db_url: str, replicas: int) -> None:
    limit, period_us, burst = 40, 1_000_000, 8
    async with limiter_stubs(db_url, replicas) as stubs:
        await create(stubs[0], "gcra", limit=limit, period=duration_pb2.Duration(seconds=1), burst=burst)
        records, _ = await hammer(stubs, "gcra", 1.5)
    check_gcra_bound(records, limit, period_us, burst)
    # No false denials: a denial means the bucket held less than one token when it was decided (after the
    # request was sent), so the admissions since the bucket was last full took everything it refilled since
    # then. It was full at the first decision (before the first answer) or, after a stall, somewhere in one of
    # `refill_windows`; the run must agree with at least one of those. Tokens refilled after the last denial
    # may stay unused once the clients stop, so they are not counted.
    interval_us = period_us // limit
    # Each denial must follow an admission closely (this catches a stretch of false denials, which the sum
    # below may excuse as a stall)...
    assert not false_denials(records, interval_us)
    # ...and, in all, what was admitted matches what the bucket refilled.
    last_denied = max(r.sent_us for r in records if not r.allowed)
    starts = [(0, min(r.received_us for r in records))]
    starts += refill_windows(records, (burst - 1) * interval_us)
    shortfalls = []
    for earliest, latest in starts:
        refilled = burst + max(0, last_denied - latest) / interval_us
        admitted = sum(r.allowed and r.received_us >= earliest for r in records)
        shortfalls.append((refilled - 1) - admitted)
    assert min(shortfalls) < 0, (shortfalls, starts)
    assert len(records) > 3 * sum(r.allowed for r in records)  # the clients really were over the limit


def windows_of(record: Record, period_us: int, windows_ahead: int) -> set[int]:
    """The windows a decision may have fallen in, from `reset_after` (= end of that window − the server's now).

    The server's now lies between the send and the receipt, so the window's end lies between those plus
    `reset_after`: one candidate when both ends round to the same window, two on a loaded machine where a
    decision waited long enough to make it ambiguous.
    """
    return {
        round((moment + record.reset_after_us) / period_us) - windows_ahead
        for moment in (record.sent_us, record.received_us)
    }


def per_window_counts(
    records: list[Record], period_us: int, windows_ahead: int
) -> tuple[Counter[int], Counter[int]]:
    """Admissions per window: those certainly in it, and those that may be in it (ambiguous ones)."""
    certain: Counter[int] = Counter()
    possible: Counter[int] = Counter()
    for record in records:
        if record.allowed:
            candidates = windows_of(record, period_us, windows_ahead)
            if len(candidates) == 1:
                certain.update(candidates)
            possible.update(candidates)
    return certain, possible


@REPLICAS
async def test_fixed_window_admits_exactly_limit_per_window(db_url: str, replicas: int) -> None:
    limit, period_us = 25, 400_000
    async with limiter_stubs(db_url, replicas) as stubs:
        await create(
            stubs[0],
            "fixed",
            algorithm=pb.Limiter.ALGORITHM_FIXED_WINDOW,
            limit=limit,
            period=duration_pb2.Duration(nanos=period_us * 1000),
        )
        records, _ = await hammer(stubs, "fixed", 1.7)
    certain, possible = per_window_counts(records, period_us, 1)
    assert max(certain.values()) <= limit, certain
    first = min(r.received_us for r in records) // period_us
    last = max(r.sent_us for r in records) // period_us
    assert last - first >= 2, "the run must cover a whole window"
    for window in range(first + 1, last):  # saturated: every whole window admits its full limit
        assert certain[window] <= limit <= possible[window], (window, certain, possible)


async def test_sliding_window_bounds(db_url: str) -> None:
    limit, period_us = 20, 400_000
    async with limiter_stubs(db_url, 1) as stubs:
        await create(
            stubs[0],
            "sliding",
            algorithm=pb.Limiter.ALGORITHM_SLIDING_WINDOW,
            limit=limit,
            period=duration_pb2.Duration(nanos=period_us * 1000),
        )
        records, _ = await hammer(stubs, "sliding", 1.7)
    admitted = sorted((r for r in records if r.allowed), key=lambda r: r.sent_us)
    certain, _ = per_window_counts(admitted, period_us, 2)
    assert max(certain.values()) <= limit, certain
    for first in admitted:
        inside = sum(
            1 for r in admitted if first.sent_us <= r.sent_us and r.received_us <= first.sent_us + period_us
        )
        assert inside <= 2 * limit


@REPLICAS
async def test_concurrency_never_holds_more_than_limit(db_url: str, replicas: int) -> None:
    limit = 4
    async with limiter_stubs(db_url, replicas) as stubs:
        await create(
            stubs[0],
            "conc",
            algorithm=pb.Limiter.ALGORITHM_CONCURRENCY,
            limit=limit,
            lease_ttl=duration_pb2.Duration(seconds=30),
        )
        records, held = await hammer(stubs, "conc", 1.2, hold_s=0.02)
        status = await stubs[0].GetStatus(pb.GetStatusRequest(limiter="limiters/conc", key="one-key"))
    assert sum(r.allowed for r in records) == len(held) > limit
    # Held for sure between the grant's arrival and the release's sending: never more than `limit` at once.
    events = sorted([(start, 1) for start, _ in held] + [(end, -1) for _, end in held])
    holding = 0
    for _, change in events:
        holding += change
        assert holding <= limit
    assert status.remaining == limit  # every lease was released


async def test_light_load_is_never_denied(db_url: str) -> None:
    """One client at 80 % of the rate: every check allowed (the burst absorbs scheduling jitter)."""
    async with limiter_stubs(db_url, 1) as stubs:
        await create(
            stubs[0],
            "paced",
            limit=50,
            period=duration_pb2.Duration(seconds=1),
            burst=3,
            failure_mode=pb.Limiter.FAILURE_MODE_FAIL_OPEN,  # a slow store must not look like a false denial
        )
        request = pb.CheckRequest(items=[pb.CheckItem(limiter="limiters/paced", key="k")])
        # Paced from each answer, never by an absolute schedule: after a stall (a loaded machine), a schedule
        # would send its missed checks back to back, a real burst beyond the bucket, not light load.
        interval = 1 / 50 / 0.8
        denied = 0
        for _ in range(40):
            sent = time.monotonic()
            response = await stubs[0].Check(request)
            denied += not response.allowed
            await asyncio.sleep(max(0.0, sent + interval - time.monotonic()))
    assert denied == 0


async def test_unknown_limiter_and_bad_key_do_not_disturb_counts(db_url: str) -> None:
    async with limiter_stubs(db_url, 1) as stubs:
        await create(stubs[0], "solid", limit=3, period=duration_pb2.Duration(seconds=60))
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stubs[0].Check(
                pb.CheckRequest(
                    items=[
                        pb.CheckItem(limiter="limiters/solid", key="k"),
                        pb.CheckItem(limiter="limiters/ghost", key="k"),
                    ]
                )
            )
        assert raised.value.code() is grpc.StatusCode.NOT_FOUND
        status = await stubs[0].GetStatus(pb.GetStatusRequest(limiter="limiters/solid", key="k"))
        assert status.remaining == 3
