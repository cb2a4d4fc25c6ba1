"""Dry runs on every kind of limiter answer like the real check would and change nothing."""

from __future__ import annotations

from foundation.limiter.v1 import limiter_pb2 as pb
from tests.limiter.conftest import Api

KEYS = ("a", "b", "a", "a")


async def test_concurrency_dry_run_in_both_modes_takes_no_lease(api: Api) -> None:
    await api.create("conc", algorithm=pb.Limiter.ALGORITHM_CONCURRENCY, limit=2)
    items = [pb.CheckItem(limiter="limiters/conc", key=k) for k in KEYS]
    for mode in (pb.CheckRequest.MODE_ALL_OR_NOTHING, pb.CheckRequest.MODE_INDEPENDENT):
        response = await api.stub.Check(pb.CheckRequest(items=items, mode=mode, dry_run=True))
        assert [r.allowed for r in response.results] == [True, True, True, False]
        assert not response.allowed
        assert all(r.lease_id == "" for r in response.results)
        assert (await api.remaining("conc", "a"), await api.remaining("conc", "b")) == (2, 2)
    real = await api.stub.Check(pb.CheckRequest(items=items, mode=pb.CheckRequest.MODE_INDEPENDENT))
    assert [r.allowed for r in real.results] == [True, True, True, False]
    assert [bool(r.lease_id) for r in real.results] == [True, True, True, False]
    assert (await api.remaining("conc", "a"), await api.remaining("conc", "b")) == (0, 1)


async def test_mixed_dry_run_reports_each_key_untouched(api: Api) -> None:
    await api.create("gcra", limit=3, period_ms=60_000)
    await api.create("conc", algorithm=pb.Limiter.ALGORITHM_CONCURRENCY, limit=1)
    items = [
        pb.CheckItem(limiter="limiters/gcra", key="k", cost=2),
        pb.CheckItem(limiter="limiters/conc", key="k"),
    ]
    response = await api.stub.Check(pb.CheckRequest(items=items, dry_run=True))
    assert response.allowed
    assert [(r.allowed, r.remaining, r.lease_id) for r in response.results] == [(True, 3, ""), (True, 1, "")]
    assert (await api.remaining("gcra"), await api.remaining("conc")) == (3, 1)
