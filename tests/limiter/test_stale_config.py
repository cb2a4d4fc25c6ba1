"""A definition changed by another replica mid-check: the statement notices, and nothing consumes twice."""

from __future__ import annotations

from google.protobuf import field_mask_pb2

from foundation.limiter.v1 import limiter_pb2 as pb
from foundation.limiter.v1 import limiter_pb2_grpc as rpc
from tests.harness import running_service


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
