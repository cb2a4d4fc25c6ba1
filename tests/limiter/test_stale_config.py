"""A definition changed by another replica mid-check: the statement notices, and nothing consumes twice."""

from __future__ import annotations

from google.protobuf import duration_pb2, field_mask_pb2

from foundation.limiter.v1 import limiter_pb2 as pb
from foundation.limiter.v1 import limiter_pb2_grpc as rpc
from tests.harness import running_service

HOUR = duration_pb2.Duration(seconds=3600)


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


async def test_shadow_and_burst_changed_on_another_replica_apply_to_the_next_check(db_url: str) -> None:
    async with running_service("limiter", db_url) as one, running_service("limiter", db_url) as two:
        first, second = rpc.LimiterServiceStub(one.channel), rpc.LimiterServiceStub(two.channel)
        await first.CreateLimiter(
            pb.CreateLimiterRequest(limiter_id="edge", limiter=pb.Limiter(limit=1, burst=2, period=HOUR))
        )
        check = pb.CheckRequest(items=[pb.CheckItem(limiter="limiters/edge", key="k", cost=2)])
        assert (await first.Check(check)).allowed  # the first replica now caches the definition
        await second.UpdateLimiter(
            pb.UpdateLimiterRequest(
                limiter=pb.Limiter(name="limiters/edge", shadow=True, burst=3),
                update_mask=field_mask_pb2.FieldMask(paths=["shadow", "burst"]),
            )
        )
        # Within the cache's second: shadow mode already lets the denial through, counted as shadow-denied…
        response = await first.Check(check)
        assert response.allowed
        assert response.results[0].shadow_denied
        # …and a cost only the raised burst admits is no longer refused as invalid.
        costly = pb.CheckRequest(items=[pb.CheckItem(limiter="limiters/edge", key="other", cost=3)])
        assert (await first.Check(costly)).results[0].allowed
