"""A definition changed by another replica mid-check: the statement notices, the check is rolled back whole and
runs again (or is NOT_FOUND), and nothing consumes twice."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest
from envoy.service.ratelimit.v3 import rls_pb2_grpc
from google.protobuf import duration_pb2, field_mask_pb2

from foundation.limiter.v1 import limiter_pb2 as pb
from foundation.limiter.v1 import limiter_pb2_grpc as rpc
from services.limiter import service
from services.limiter.configs import ConfigCache
from services.limiter.envoy_config import limiter_id_for
from tests.harness import running_service
from tests.limiter.test_envoy import CONFIG, request


async def test_other_items_are_not_consumed_again_when_one_limiter_changed(db_url: str) -> None:
    async with running_service("limiter", db_url) as one, running_service("limiter", db_url) as two:
        first, second = rpc.LimiterServiceStub(one.channel), rpc.LimiterServiceStub(two.channel)
        for name in ("steady", "changing"):
            await first.CreateLimiter(pb.CreateLimiterRequest(limiter_id=name, limiter=pb.Limiter(limit=10)))
        items = [
            pb.CheckItem(limiter="limiters/steady", key="k"),
            pb.CheckItem(limiter="limiters/changing", key="k"),
        ]
        independent = pb.CheckRequest(items=items, mode=pb.CheckRequest.MODE_INDEPENDENT)
        assert (await first.Check(independent)).allowed  # the first replica now caches both as GCRA
        await second.UpdateLimiter(
            pb.UpdateLimiterRequest(
                limiter=pb.Limiter(
                    name="limiters/changing", algorithm=pb.Limiter.ALGORITHM_FIXED_WINDOW, limit=10
                ),
                update_mask=field_mask_pb2.FieldMask(paths=["algorithm"]),
            )
        )
        response = await first.Check(independent)
        assert [r.allowed for r in response.results] == [True, True]
        assert [r.remaining for r in response.results] == [8, 9]  # fixed window: its state began anew
        for name, remaining in (("steady", 8), ("changing", 9)):
            status = await first.GetStatus(pb.GetStatusRequest(limiter=f"limiters/{name}", key="k"))
            assert status.remaining == remaining, name
        stats = await first.GetStats(pb.GetStatsRequest(limiter="limiters/steady"))
        assert stats.total.checks == 2


DAY = duration_pb2.Duration(seconds=86_400)
"""A period long enough that no token refills while a test runs."""


async def remaining(stub: rpc.LimiterServiceStub, limiter: str, key: str = "k") -> int:
    status = await stub.GetStatus(pb.GetStatusRequest(limiter=f"limiters/{limiter}", key=key))
    left: int = status.remaining
    return left


async def test_a_limiter_deleted_by_another_replica_mid_check_is_not_found_and_nothing_consumed(
    db_url: str,
) -> None:
    async with running_service("limiter", db_url) as one, running_service("limiter", db_url) as two:
        first, second = rpc.LimiterServiceStub(one.channel), rpc.LimiterServiceStub(two.channel)
        for name in ("steady", "doomed"):
            await first.CreateLimiter(
                pb.CreateLimiterRequest(limiter_id=name, limiter=pb.Limiter(limit=10, period=DAY))
            )
        items = [pb.CheckItem(limiter=f"limiters/{name}", key="k") for name in ("steady", "doomed")]
        independent = pb.CheckRequest(items=items, mode=pb.CheckRequest.MODE_INDEPENDENT)
        assert (await first.Check(independent)).allowed  # the first replica now caches both
        await second.DeleteLimiter(pb.DeleteLimiterRequest(name="limiters/doomed"))
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await first.Check(independent)  # its cache still names `doomed`; the statement finds it gone
        assert raised.value.code() is grpc.StatusCode.NOT_FOUND
        assert await remaining(first, "steady") == 9  # the refused check changed nothing
        registry = one.app.context.metrics.registry
        assert registry.get_sample_value("foundation_limiter_stale_definitions_total") == 1


async def test_checks_batched_beside_a_stale_one_each_consume_once(db_url: str) -> None:
    async with running_service("limiter", db_url) as one, running_service("limiter", db_url) as two:
        first, second = rpc.LimiterServiceStub(one.channel), rpc.LimiterServiceStub(two.channel)
        for name in ("steady", "doomed"):
            await first.CreateLimiter(
                pb.CreateLimiterRequest(limiter_id=name, limiter=pb.Limiter(limit=1000, period=DAY))
            )
        mixed = pb.CheckRequest(
            items=[pb.CheckItem(limiter=f"limiters/{name}", key="k") for name in ("steady", "doomed")],
            mode=pb.CheckRequest.MODE_INDEPENDENT,
        )
        assert (await first.Check(mixed)).allowed
        await second.DeleteLimiter(pb.DeleteLimiterRequest(name="limiters/doomed"))
        plain = pb.CheckRequest(items=[pb.CheckItem(limiter="limiters/steady", key="k")])
        # Sent together, so the writer gathers them into one batch with the stale check.
        results = await asyncio.gather(
            first.Check(mixed), *(first.Check(plain) for _ in range(30)), return_exceptions=True
        )
        assert isinstance(results[0], grpc.aio.AioRpcError)
        assert results[0].code() is grpc.StatusCode.NOT_FOUND
        assert all(isinstance(r, pb.CheckResponse) and r.allowed for r in results[1:])
        assert await remaining(first, "steady") == 1000 - 1 - 30
        store = one.app.context.store
        assert store is not None
        assert store.stats().isolations == 0  # refused, not run op by op


async def test_envoy_redefines_a_limiter_deleted_by_another_replica_and_counts_each_descriptor_once(
    db_url: str, tmp_path: Path
) -> None:
    config = tmp_path / "edge.yaml"
    config.write_text(CONFIG)
    settings = {"envoy_config": str(config)}
    async with (
        running_service("limiter", db_url, limiter=settings) as one,
        running_service("limiter", db_url, limiter=settings) as two,
    ):
        envoy = rls_pb2_grpc.RateLimitServiceStub(one.channel)
        api = rpc.LimiterServiceStub(two.channel)
        both = request("edge", [("remote_address", "10.5.5.5")], [("plan", "gold")])
        doomed = limiter_id_for("edge", [("remote_address", None)])
        first = await envoy.ShouldRateLimit(both)  # the first replica now caches both limiters
        assert [s.limit_remaining for s in first.statuses] == [2, 4]
        await api.DeleteLimiter(pb.DeleteLimiterRequest(name=f"limiters/{doomed}"))
        again = await envoy.ShouldRateLimit(both)
        # `remote_address` starts over (its keys went with it); `plan` counted once more, not twice.
        assert [s.limit_remaining for s in again.statuses] == [2, 3]
        assert (await api.GetLimiter(pb.GetLimiterRequest(name=f"limiters/{doomed}"))).limiter.limit == 3


async def test_a_cost_within_a_burst_raised_on_another_replica_is_accepted_at_once(db_url: str) -> None:
    async with running_service("limiter", db_url) as one, running_service("limiter", db_url) as two:
        first, second = rpc.LimiterServiceStub(one.channel), rpc.LimiterServiceStub(two.channel)
        await first.CreateLimiter(
            pb.CreateLimiterRequest(limiter_id="roomy", limiter=pb.Limiter(limit=5, burst=5, period=DAY))
        )
        small = pb.CheckRequest(items=[pb.CheckItem(limiter="limiters/roomy", key="k", cost=1)])
        assert (await first.Check(small)).allowed  # the first replica now caches burst 5
        await second.UpdateLimiter(
            pb.UpdateLimiterRequest(
                limiter=pb.Limiter(name="limiters/roomy", burst=20),
                update_mask=field_mask_pb2.FieldMask(paths=["burst"]),
            )
        )
        # A new key's bucket holds the new burst; cost 10 is over the cached burst, within the stored one.
        large = pb.CheckRequest(items=[pb.CheckItem(limiter="limiters/roomy", key="new", cost=10)])
        response = await first.Check(large)
        assert (response.allowed, response.results[0].remaining) == (True, 10)
        with pytest.raises(grpc.aio.AioRpcError) as raised:  # beyond the stored burst: refused as before
            await first.Check(
                pb.CheckRequest(items=[pb.CheckItem(limiter="limiters/roomy", key="k", cost=21)])
            )
        assert raised.value.code() is grpc.StatusCode.INVALID_ARGUMENT


def _shadow_update(name: str, shadow: bool) -> pb.UpdateLimiterRequest:
    return pb.UpdateLimiterRequest(
        limiter=pb.Limiter(name=f"limiters/{name}", shadow=shadow),
        update_mask=field_mask_pb2.FieldMask(paths=["shadow"]),
    )


@pytest.fixture
def long_cached_definitions(monkeypatch: pytest.MonkeyPatch) -> None:
    """Definitions stay cached for an hour: a change on another replica is seen only because a statement
    reports it, never because the cache expired between two steps of a slow test."""
    monkeypatch.setattr(service, "ConfigCache", lambda store: ConfigCache(store, ttl_s=3600))


@pytest.mark.parametrize(
    "algorithm",
    [pb.Limiter.ALGORITHM_GCRA, pb.Limiter.ALGORITHM_FIXED_WINDOW, pb.Limiter.ALGORITHM_CONCURRENCY],
)
@pytest.mark.usefixtures("long_cached_definitions")
async def test_shadow_switched_on_another_replica_applies_to_the_next_check(
    db_url: str, algorithm: int
) -> None:
    async with running_service("limiter", db_url) as one, running_service("limiter", db_url) as two:
        first, second = rpc.LimiterServiceStub(one.channel), rpc.LimiterServiceStub(two.channel)
        for name, limit in (("roomy", 1000), ("tight", 1)):
            await first.CreateLimiter(
                pb.CreateLimiterRequest(
                    limiter_id=name,
                    limiter=pb.Limiter(algorithm=algorithm, limit=limit, period=DAY),  # type: ignore[arg-type]
                )
            )

        async def decided(request: pb.CheckRequest) -> list[tuple[bool, bool]]:
            return [(r.allowed, r.shadow_denied) for r in (await first.Check(request)).results]

        tight = pb.CheckItem(limiter="limiters/tight", key="k")
        assert await decided(pb.CheckRequest(items=[tight])) == [(True, False)]  # the only unit; cached
        # ALL_OR_NOTHING: a denial that is not a shadow one would roll `roomy` back.
        both = pb.CheckRequest(items=[pb.CheckItem(limiter="limiters/roomy", key="k"), tight])
        twice = pb.CheckRequest(items=[tight, tight], mode=pb.CheckRequest.MODE_INDEPENDENT)  # one merged row
        peek = pb.CheckRequest(items=[pb.CheckItem(limiter="limiters/tight", key="k", cost=0)])
        # Each step flips the flag on the second replica, then sends its checks together to the first (two
        # ALL_OR_NOTHING checks in one batch are first decided together, in one savepoint).
        steps = [
            (True, [both], [(True, False), (True, True)]),
            (False, [peek], [(False, False)]),
            (True, [twice], [(True, True), (True, True)]),
            (False, [both], [(True, False), (False, False)]),
            (True, [both, both], [(True, False), (True, True)]),
        ]
        for shadow, requests, expected in steps:
            await second.UpdateLimiter(_shadow_update("tight", shadow))
            results = await asyncio.gather(*(decided(request) for request in requests))
            assert results == [expected] * len(requests), (shadow, requests)
        if algorithm != pb.Limiter.ALGORITHM_CONCURRENCY:
            assert await remaining(first, "roomy") == 1000 - 3  # consumed by the shadowed checks only
        registry = one.app.context.metrics.registry
        # once per step, the last one's two checks each refused if both read the flag before either re-read it
        stale = registry.get_sample_value("foundation_limiter_stale_definitions_total") or 0
        assert len(steps) <= stale <= len(steps) + 1
