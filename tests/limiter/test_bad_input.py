"""Bad input, case by case: INVALID_ARGUMENT with one field violation per bad field, and nothing changed.

The property tests (test_validation.py) explore random combinations; these pin each rule of the contract
to a concrete request, including the edges that random values rarely reach (exactly 1 KiB keys, int64
overflow of burst × period, burst on a non-GCRA limiter).
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, cast

import grpc
import pytest
from google.protobuf import duration_pb2, field_mask_pb2

from foundation.limiter.v1 import limiter_pb2 as pb
from tests.harness import rich_status
from tests.limiter.conftest import Api

YEAR = duration_pb2.Duration(seconds=365 * 86_400)
FIXED = pb.Limiter.ALGORITHM_FIXED_WINDOW
CONCURRENCY = pb.Limiter.ALGORITHM_CONCURRENCY
SLIDING = pb.Limiter.ALGORITHM_SLIDING_WINDOW


async def violations(call: Awaitable[object]) -> list[str]:
    """The fields an INVALID_ARGUMENT names, in the order given (the call must fail that way)."""
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call
    status = rich_status(raised.value)
    assert status.code is grpc.StatusCode.INVALID_ARGUMENT, (status.code, status.message)
    assert status.error_info is not None
    assert status.error_info.domain == "limiter.foundation"
    return [v.field for v in status.details["BadRequest"].field_violations]


CREATE_CASES: list[tuple[dict[str, Any], list[str]]] = [
    ({"limit": 0}, ["limiter.limit"]),
    ({"limit": -5}, ["limiter.limit"]),
    ({"period": duration_pb2.Duration()}, ["limiter.period"]),
    ({"period": duration_pb2.Duration(seconds=-1)}, ["limiter.period"]),
    ({"period": duration_pb2.Duration(nanos=999_000)}, ["limiter.period"]),  # 999 µs < 1 ms
    ({"period": duration_pb2.Duration(seconds=1, nanos=500)}, ["limiter.period"]),  # not whole µs
    ({"period": duration_pb2.Duration(seconds=367 * 86_400)}, ["limiter.period"]),
    ({"burst": 0}, ["limiter.burst"]),
    ({"burst": -1}, ["limiter.burst"]),
    ({"algorithm": FIXED, "limit": 5, "burst": 7}, ["limiter.burst"]),
    ({"algorithm": CONCURRENCY, "limit": 5, "burst": 2}, ["limiter.burst"]),
    ({"limit": 10, "burst": 2**40, "period": YEAR}, ["limiter.burst"]),  # 2^40 × 3.2e13 µs > 2^62
    ({"limit": 2**63 - 1, "burst": 1, "period": duration_pb2.Duration(nanos=1_000_000)}, ["limiter.limit"]),
    (
        {"algorithm": SLIDING, "limit": 2**40, "period": YEAR},
        ["limiter.limit"],
    ),  # weighs counts by the period
    ({"algorithm": cast(Any, 9)}, ["limiter.algorithm"]),
    ({"failure_mode": cast(Any, 7)}, ["limiter.failure_mode"]),
    ({"algorithm": CONCURRENCY, "lease_ttl": duration_pb2.Duration()}, ["limiter.lease_ttl"]),
    ({"description": "d" * 1025}, ["limiter.description"]),
    (
        {"limit": 0, "burst": 0, "algorithm": cast(Any, 9), "period": duration_pb2.Duration(nanos=1)},
        ["limiter.algorithm", "limiter.limit", "limiter.period", "limiter.burst"],
    ),
]


async def test_create_names_each_bad_field_once_and_creates_nothing(api: Api) -> None:
    for fields, expected in CREATE_CASES:
        request = pb.CreateLimiterRequest(limiter_id="bad", limiter=pb.Limiter(**fields))
        named = await violations(api.stub.CreateLimiter(request))
        assert sorted(named) == sorted(expected), fields
    for bad_id in ["", "UP", "-x", "a/b", "x" * 64, "é", "limiters/x"]:
        request = pb.CreateLimiterRequest(limiter_id=bad_id, limiter=pb.Limiter())
        assert await violations(api.stub.CreateLimiter(request)) == ["limiter_id"], bad_id
    assert await violations(api.stub.CreateLimiter(pb.CreateLimiterRequest(limiter_id="bad"))) == ["limiter"]
    listed = await api.stub.ListLimiters(pb.ListLimitersRequest())
    assert list(listed.limiters) == []
    # The edges that are allowed: 1 ms, burst equal to limit on another algorithm, the longest id.
    ok = await api.create("x" * 63, algorithm=FIXED, limit=5, burst=5, period_ms=1)
    assert (ok.limit, ok.period.nanos) == (5, 1_000_000)


async def test_update_with_bad_values_changes_nothing(api: Api) -> None:
    gcra = await api.create("u", limit=5, period_ms=60_000)
    fixed = await api.create("uf", algorithm=FIXED, limit=5, period_ms=60_000)
    await api.check("u")
    cases = [
        (pb.Limiter(name="limiters/u", limit=0), ["limit"], ["limiter.limit"]),
        (pb.Limiter(name="limiters/u", burst=2**40, period=YEAR), ["burst", "period"], ["limiter.burst"]),
        (pb.Limiter(name="limiters/uf", burst=3), ["burst"], ["limiter.burst"]),
        (pb.Limiter(name="limiters/u", algorithm=cast(Any, 8)), ["algorithm"], ["limiter.algorithm"]),
        (pb.Limiter(name="limiters/u"), ["limit", "no_such_field"], ["update_mask"]),
        (pb.Limiter(name="limiters/u"), ["name"], ["update_mask"]),
        (pb.Limiter(name="u", limit=3), ["limit"], ["limiter.name"]),
        (
            pb.Limiter(name="limiters/u", limit=-1, burst=0),
            ["limit", "burst"],
            ["limiter.limit", "limiter.burst"],
        ),
    ]
    for limiter, paths, expected in cases:
        request = pb.UpdateLimiterRequest(limiter=limiter, update_mask=field_mask_pb2.FieldMask(paths=paths))
        assert sorted(await violations(api.stub.UpdateLimiter(request))) == sorted(expected), paths
    # Refused after the row was changed (the combination is checked on the updated row): the transaction,
    # including the state an algorithm change forgets, is rolled back.
    switch = pb.UpdateLimiterRequest(
        limiter=pb.Limiter(name="limiters/u", algorithm=FIXED, burst=3),
        update_mask=field_mask_pb2.FieldMask(paths=["algorithm", "burst"]),
    )
    assert await violations(api.stub.UpdateLimiter(switch)) == ["limiter.burst"]
    assert (await api.stub.GetLimiter(pb.GetLimiterRequest(name="limiters/u"))).limiter == gcra
    assert (await api.stub.GetLimiter(pb.GetLimiterRequest(name="limiters/uf"))).limiter == fixed
    assert await api.remaining("u") == 4  # the one check before is still counted


def item(limiter: str, key: str = "k", cost: int | None = None) -> pb.CheckItem:
    message = pb.CheckItem(limiter=limiter, key=key)
    if cost is not None:
        message.cost = cost
    return message


async def test_check_names_each_bad_item_field_and_consumes_nothing(api: Api) -> None:
    await api.create("g", limit=10, burst=4, period_ms=60_000)
    await api.create("f", algorithm=FIXED, limit=3, period_ms=60_000)
    await api.create("c", algorithm=CONCURRENCY, limit=2)
    g, f, c = "limiters/g", "limiters/f", "limiters/c"
    cases: list[tuple[pb.CheckRequest, list[str]]] = [
        (pb.CheckRequest(), ["items"]),
        (pb.CheckRequest(items=[item(g, cost=-1)]), ["items[0].cost"]),
        (pb.CheckRequest(items=[item(g, cost=5)]), ["items[0].cost"]),  # more than the burst, ever
        (pb.CheckRequest(items=[item(f, cost=4)]), ["items[0].cost"]),  # more than the limit
        (pb.CheckRequest(items=[item(c, cost=3)]), ["items[0].cost"]),
        (pb.CheckRequest(items=[item(g, key="")]), ["items[0].key"]),
        (pb.CheckRequest(items=[item(g, key="x" * 1025)]), ["items[0].key"]),
        (pb.CheckRequest(items=[item(g, key="é" * 513)]), ["items[0].key"]),  # 513 characters, 1026 bytes
        (pb.CheckRequest(items=[item(g, key="😀" * 257)]), ["items[0].key"]),  # 257 characters, 1028 bytes
        (pb.CheckRequest(items=[item(g)], mode=cast(Any, 7)), ["mode"]),
        (
            pb.CheckRequest(items=[item(g), item(f, key="", cost=-2), item(c, cost=-1)], mode=cast(Any, -1)),
            ["mode", "items[1].key", "items[1].cost", "items[2].cost"],
        ),
        (
            pb.CheckRequest(items=[item(g, cost=9), item(f), item(c, cost=3)]),
            ["items[0].cost", "items[2].cost"],
        ),
    ]
    for name in ["g", "limiters/", "limiters/G", "other/g", "", "limiters/g/x"]:
        cases.append((pb.CheckRequest(items=[item(name)]), ["items[0].limiter"]))
    for request, expected in cases:
        for dry_run in (False, True):
            request.dry_run = dry_run
            assert sorted(await violations(api.stub.Check(request))) == sorted(expected), request
    assert [await api.remaining(name) for name in "gfc"] == [4, 3, 2]  # GCRA's at rest: the burst
    stats = await api.stub.GetStats(pb.GetStatsRequest())
    assert (stats.total.checks, stats.total.active_keys) == (0, 0)


async def test_unknown_limiter_is_not_found_and_the_other_items_are_untouched(api: Api) -> None:
    await api.create("known", limit=3, period_ms=60_000)
    request = pb.CheckRequest(items=[item("limiters/known"), item("limiters/nobody")])
    for mode in (pb.CheckRequest.MODE_ALL_OR_NOTHING, pb.CheckRequest.MODE_INDEPENDENT):
        request.mode = mode
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await api.stub.Check(request)
        status = rich_status(raised.value)
        assert status.code is grpc.StatusCode.NOT_FOUND
        assert status.details["ResourceInfo"].resource_name == "limiters/nobody"
    assert await api.remaining("known") == 3
    assert (await api.stub.GetStats(pb.GetStatsRequest())).total.checks == 0


async def test_keys_are_measured_in_utf8_bytes(api: Api) -> None:
    await api.create("bytes", limit=2, period_ms=60_000)
    keys = ["x" * 1024, "é" * 512, "😀" * 256, "日" * 341]  # 1024, 1024, 1024 and 1023 bytes
    for key in keys:
        assert (await api.check("bytes", key)).allowed
    for key in keys:  # each one stored whole under its own key
        assert await api.remaining("bytes", key) == 1
    assert await api.remaining("bytes", "x" * 1023) == 2
    assert (await api.stub.GetStats(pb.GetStatsRequest(limiter="limiters/bytes"))).total.active_keys == 4


async def test_status_reset_stats_list_and_release_refuse_bad_fields(api: Api) -> None:
    await api.create("s", limit=2, period_ms=60_000)
    await api.check("s")
    calls: list[tuple[Awaitable[object], list[str]]] = [
        (api.stub.GetStatus(pb.GetStatusRequest(limiter="limiters/s", key="")), ["key"]),
        (api.stub.GetStatus(pb.GetStatusRequest(limiter="s", key="k")), ["limiter"]),
        (api.stub.GetStatus(pb.GetStatusRequest(limiter="s", key="x" * 1025)), ["limiter", "key"]),
        (api.stub.Reset(pb.ResetRequest(limiter="limiters/s", key="")), ["key"]),
        (api.stub.Reset(pb.ResetRequest(limiter="limiters/S", key="k")), ["limiter"]),
        (api.stub.GetStats(pb.GetStatsRequest(limiter="s")), ["limiter"]),
        (api.stub.GetLimiter(pb.GetLimiterRequest(name="limiters/")), ["name"]),
        (api.stub.DeleteLimiter(pb.DeleteLimiterRequest(name="s")), ["name"]),
        (api.stub.ListLimiters(pb.ListLimitersRequest(page_size=-1)), ["page_size"]),
        (api.stub.ListLimiters(pb.ListLimitersRequest(page_size=1001)), ["page_size"]),
        (api.stub.ListLimiters(pb.ListLimitersRequest(page_token="after:UP")), ["page_token"]),
        (api.stub.Release(pb.ReleaseRequest(lease_id="")), ["lease_id"]),
        (api.stub.Release(pb.ReleaseRequest(lease_id="l" * 65)), ["lease_id"]),
    ]
    for call, expected in calls:
        assert sorted(await violations(call)) == sorted(expected), expected
    assert await api.remaining("s") == 1  # the refused Reset reset nothing
    assert (await api.stub.GetLimiter(pb.GetLimiterRequest(name="limiters/s"))).limiter.limit == 2
