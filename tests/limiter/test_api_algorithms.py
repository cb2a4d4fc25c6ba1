"""LimiterService over gRPC, each algorithm in real time with short periods: GCRA burst then refill, fixed
window boundary, sliding window weighting, CONCURRENCY leases (release, expiry), Reset, raised quota."""

from __future__ import annotations

import time

from google.protobuf import duration_pb2, field_mask_pb2

from foundation.limiter.v1 import limiter_pb2 as pb
from tests.harness import eventually
from tests.limiter.conftest import Api


async def test_gcra_burst_then_refill(api: Api) -> None:
    # One unit back every 500 ms: the four checks have that long to be decided before the refill.
    await api.create("g", limit=2, burst=3, period_ms=1000)
    assert [(await api.check("g")).allowed for _ in range(4)] == [True, True, True, False]
    await eventually(lambda: _allowed(api, "g"), within=3)


async def _allowed(api: Api, limiter: str) -> bool:
    return (await api.check(limiter)).allowed


async def test_fixed_window_resets_at_the_boundary(api: Api) -> None:
    await api.create("f", algorithm=pb.Limiter.ALGORITHM_FIXED_WINDOW, limit=2, period_ms=600)
    await api.check("f", cost=0)

    async def early_in_a_window() -> bool:  # so that three quick checks fall in one window
        return (await api.check("f", cost=0)).results[0].reset_after.ToMilliseconds() == 0 and (
            time.time() * 1000 % 600 < 200
        )

    await eventually(early_in_a_window, within=3, interval=0.005)
    assert [(await api.check("f")).allowed for _ in range(3)] == [True, True, False]
    await eventually(lambda: _allowed(api, "f"), within=2)


async def test_sliding_window_weights_the_previous_window(api: Api) -> None:
    await api.create("s", algorithm=pb.Limiter.ALGORITHM_SLIDING_WINDOW, limit=4, period_ms=800)
    admitted = sum([(await api.check("s")).allowed for _ in range(6)])
    assert admitted == 4
    status = await api.stub.GetStatus(pb.GetStatusRequest(limiter="limiters/s", key="k"))
    assert status.remaining == 0
    assert 0 < status.reset_after.ToMilliseconds() <= 1600  # the end of the next window at most
    seen: list[int] = []

    async def recovered() -> bool:  # the previous window weighs less as the next one goes on
        seen.append(await api.remaining("s"))
        return seen[-1] == 4

    await eventually(recovered, within=3, interval=0.005)
    assert seen == sorted(seen)
    assert len({1, 2, 3} & set(seen)) >= 2, seen  # a fixed window would jump from 0 to 4
    assert (await api.check("s", cost=4)).allowed


async def test_concurrency_leases_release_and_expire(api: Api) -> None:
    await api.create(
        "c",
        algorithm=pb.Limiter.ALGORITHM_CONCURRENCY,
        limit=2,
        lease_ttl=duration_pb2.Duration(seconds=1, nanos=500_000_000),  # the three checks fit in it
    )
    first, second, third = [await api.check("c") for _ in range(3)]
    assert [first.allowed, second.allowed, third.allowed] == [True, True, False]
    assert first.results[0].lease_id
    assert first.results[0].lease_id != second.results[0].lease_id
    assert third.results[0].lease_id == ""
    assert 0 < third.results[0].retry_after.ToMilliseconds() <= 1500
    released = await api.stub.Release(pb.ReleaseRequest(lease_id=first.results[0].lease_id))
    again = await api.stub.Release(pb.ReleaseRequest(lease_id=first.results[0].lease_id))
    unknown = await api.stub.Release(pb.ReleaseRequest(lease_id="no-such-lease"))
    assert (released.released, again.released, unknown.released) == (True, False, False)
    assert (await api.check("c")).allowed
    await eventually(lambda: _allowed(api, "c"), within=5)  # the expired leases free their slots


async def test_reset_clears_state_and_leases(api: Api) -> None:
    await api.create("r", limit=1, period_ms=60_000)
    await api.create("rc", algorithm=pb.Limiter.ALGORITHM_CONCURRENCY, limit=1)
    await api.check("r")
    await api.check("rc")
    assert not (await api.check("r")).allowed
    for name in ("r", "rc"):
        reset = await api.stub.Reset(pb.ResetRequest(limiter=f"limiters/{name}", key="k"))
        assert reset.existed
        assert (await api.check(name)).allowed
    fresh = await api.stub.Reset(pb.ResetRequest(limiter="limiters/r", key="never-seen"))
    assert not fresh.existed


async def test_raised_quota_applies_on_the_next_check(api: Api) -> None:
    await api.create("q", algorithm=pb.Limiter.ALGORITHM_FIXED_WINDOW, limit=2, period_ms=3_600_000)
    await api.check("q")
    await api.check("q")
    assert not (await api.check("q")).allowed
    await api.stub.UpdateLimiter(
        pb.UpdateLimiterRequest(
            limiter=pb.Limiter(name="limiters/q", limit=3),
            update_mask=field_mask_pb2.FieldMask(paths=["limit"]),
        )
    )
    assert (await api.check("q")).allowed
    assert not (await api.check("q")).allowed
