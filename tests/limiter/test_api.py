"""LimiterService over gRPC: resources, Check semantics, stats (algorithms: test_api_algorithms.py)."""

from __future__ import annotations

import time

import grpc
import pytest
from google.protobuf import field_mask_pb2

from foundation.limiter.v1 import limiter_pb2 as pb
from foundation.limiter.v1 import limiter_pb2_grpc as rpc
from tests.harness import eventually, rich_status, running_service
from tests.limiter.conftest import Api


async def error_of(call: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call  # type: ignore[misc]
    return raised.value


# ---- resources ---------------------------------------------------------------------------------------


async def test_create_fills_the_seed_defaults(api: Api) -> None:
    before = time.time()
    limiter = await api.create("plain")
    assert limiter.name == "limiters/plain"
    assert limiter.algorithm == pb.Limiter.ALGORITHM_GCRA
    assert (limiter.limit, limiter.burst, limiter.period.seconds) == (1000, 1000, 60)
    assert limiter.failure_mode == pb.Limiter.FAILURE_MODE_FAIL_OPEN
    assert not limiter.HasField("lease_ttl")
    assert before - 1 <= limiter.create_time.seconds <= time.time() + 1
    assert limiter.update_time == limiter.create_time
    concurrency = await api.create("conc", algorithm=pb.Limiter.ALGORITHM_CONCURRENCY)
    assert concurrency.lease_ttl.seconds == 300
    assert not concurrency.HasField("burst")


async def test_create_twice_is_already_exists_and_changes_nothing(api: Api) -> None:
    await api.create("twice", limit=5)
    error = await error_of(api.create("twice", limit=9))
    status = rich_status(error)
    assert status.code is grpc.StatusCode.ALREADY_EXISTS
    assert status.details["ResourceInfo"].resource_name == "limiters/twice"
    got = await api.stub.GetLimiter(pb.GetLimiterRequest(name="limiters/twice"))
    assert got.limiter.limit == 5


async def test_list_pages_in_name_order(api: Api) -> None:
    for name in ["c", "a", "e", "b", "d"]:
        await api.create(name)
    seen, token = [], ""
    for _ in range(3):
        page = await api.stub.ListLimiters(pb.ListLimitersRequest(page_size=2, page_token=token))
        seen += [limiter.name for limiter in page.limiters]
        token = page.next_page_token
    assert seen == [f"limiters/{n}" for n in "abcde"]
    assert token == ""
    everything = await api.stub.ListLimiters(pb.ListLimitersRequest())  # page_size 0: the default (50)
    assert ([limiter.name for limiter in everything.limiters], everything.next_page_token) == (seen, "")
    error = await error_of(api.stub.ListLimiters(pb.ListLimitersRequest(page_token="garbage")))
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT


async def test_update_with_masks(api: Api) -> None:
    await api.create("upd", limit=10)
    request = pb.UpdateLimiterRequest(
        limiter=pb.Limiter(name="limiters/upd", limit=20, description="changed"),
        update_mask=field_mask_pb2.FieldMask(paths=["limit"]),
    )
    updated = (await api.stub.UpdateLimiter(request)).limiter
    assert (updated.limit, updated.burst, updated.description) == (
        20,
        20,
        "",
    )  # default burst follows the limit
    await api.stub.UpdateLimiter(
        pb.UpdateLimiterRequest(
            limiter=pb.Limiter(name="limiters/upd", burst=3),
            update_mask=field_mask_pb2.FieldMask(paths=["burst"]),
        )
    )
    raised = await api.stub.UpdateLimiter(
        pb.UpdateLimiterRequest(
            limiter=pb.Limiter(name="limiters/upd", limit=40),
            update_mask=field_mask_pb2.FieldMask(paths=["limit"]),
        )
    )
    assert (raised.limiter.limit, raised.limiter.burst) == (40, 3)  # an explicit burst stays
    everything = await api.stub.UpdateLimiter(
        pb.UpdateLimiterRequest(limiter=pb.Limiter(name="limiters/upd", limit=7))
    )
    assert (everything.limiter.limit, everything.limiter.burst, everything.limiter.period.seconds) == (
        7,
        7,
        60,
    )
    assert everything.limiter.update_time.ToNanoseconds() >= everything.limiter.create_time.ToNanoseconds()
    star = await api.stub.UpdateLimiter(
        pb.UpdateLimiterRequest(
            limiter=pb.Limiter(name="limiters/upd", limit=9, burst=4, description="star"),
            update_mask=field_mask_pb2.FieldMask(paths=["*"]),
        )
    )
    assert (star.limiter.limit, star.limiter.burst, star.limiter.description) == (9, 4, "star")
    bad = await error_of(
        api.stub.UpdateLimiter(
            pb.UpdateLimiterRequest(
                limiter=pb.Limiter(name="limiters/upd"),
                update_mask=field_mask_pb2.FieldMask(paths=["create_time"]),
            )
        )
    )
    assert rich_status(bad).details["BadRequest"].field_violations[0].field == "update_mask"


async def test_changing_the_algorithm_forgets_state(api: Api) -> None:
    await api.create("switch", limit=2, period_ms=60_000)
    await api.check("switch")
    assert await api.remaining("switch") == 1
    await api.stub.UpdateLimiter(
        pb.UpdateLimiterRequest(
            limiter=pb.Limiter(name="limiters/switch", algorithm=pb.Limiter.ALGORITHM_FIXED_WINDOW),
            update_mask=field_mask_pb2.FieldMask(paths=["algorithm"]),
        )
    )
    assert await api.remaining("switch") == 2


async def test_delete_removes_keys_and_everything_is_not_found_after(api: Api) -> None:
    await api.create("gone", limit=5)
    for key in "abc":
        await api.check("gone", key)
    deleted = await api.stub.DeleteLimiter(pb.DeleteLimiterRequest(name="limiters/gone"))
    assert deleted.deleted_keys == 3
    calls = [
        api.stub.GetLimiter(pb.GetLimiterRequest(name="limiters/gone")),
        api.stub.DeleteLimiter(pb.DeleteLimiterRequest(name="limiters/gone")),
        api.stub.UpdateLimiter(
            pb.UpdateLimiterRequest(
                limiter=pb.Limiter(name="limiters/gone", limit=9),
                update_mask=field_mask_pb2.FieldMask(paths=["limit"]),
            )
        ),
        api.check("gone"),
        api.stub.GetStatus(pb.GetStatusRequest(limiter="limiters/gone", key="a")),
        api.stub.Reset(pb.ResetRequest(limiter="limiters/gone", key="a")),
        api.stub.GetStats(pb.GetStatsRequest(limiter="limiters/gone")),
    ]
    for call in calls:
        status = rich_status(await error_of(call))
        assert status.code is grpc.StatusCode.NOT_FOUND
        assert status.details["ResourceInfo"].resource_name == "limiters/gone"
        assert status.error_info is not None
        assert status.error_info.domain == "limiter.foundation"
    await api.create("gone", limit=5)  # a limiter of the same name starts with none of the old state
    assert [await api.remaining("gone", key) for key in "abc"] == [5, 5, 5]
    assert (await api.stub.GetStats(pb.GetStatsRequest(limiter="limiters/gone"))).total.active_keys == 0


# ---- Check semantics -------------------------------------------------------------------------------


async def test_cost_defaults_to_one_and_peek_changes_nothing(api: Api) -> None:
    await api.create("peek", limit=2, period_ms=60_000, algorithm=pb.Limiter.ALGORITHM_FIXED_WINDOW)
    assert (await api.check("peek")).results[0].remaining == 1
    peek = await api.check("peek", cost=0)
    assert peek.allowed
    assert peek.results[0].remaining == 1
    assert await api.remaining("peek") == 1
    await api.check("peek")
    empty = await api.check("peek", cost=0)
    assert not empty.allowed  # a cost-1 check would be denied now
    assert empty.results[0].retry_after.ToMilliseconds() > 0
    assert await api.remaining("peek") == 0


async def test_dry_run_answers_like_a_check_and_changes_nothing(api: Api) -> None:
    await api.create("dry", limit=3, period_ms=60_000, algorithm=pb.Limiter.ALGORITHM_FIXED_WINDOW)
    fits = await api.check("dry", cost=3, dry_run=True)
    too_much = await api.check("dry", cost=3, dry_run=True)
    assert fits.allowed
    assert too_much.allowed  # the first dry run consumed nothing
    assert fits.results[0].remaining == 3
    await api.check("dry", cost=2)
    assert not (await api.check("dry", cost=2, dry_run=True)).allowed
    assert await api.remaining("dry") == 1


async def test_all_or_nothing_changes_no_counter_when_any_item_is_denied(api: Api) -> None:
    await api.create("aon", limit=5, period_ms=60_000)
    await api.check("aon", "b", cost=4)
    request = pb.CheckRequest(
        items=[
            pb.CheckItem(limiter="limiters/aon", key="a", cost=2),
            pb.CheckItem(limiter="limiters/aon", key="b", cost=2),
            pb.CheckItem(limiter="limiters/aon", key="c", cost=1),
        ]
    )
    response = await api.stub.Check(request)
    assert not response.allowed
    assert [r.allowed for r in response.results] == [True, False, True]
    assert [r.remaining for r in response.results] == [5, 1, 5]  # the untouched state
    assert [await api.remaining("aon", key) for key in "abc"] == [5, 1, 5]
    assert response.headers["Retry-After"]
    independent = await api.stub.Check(
        pb.CheckRequest(items=request.items, mode=pb.CheckRequest.MODE_INDEPENDENT)
    )
    assert [r.allowed for r in independent.results] == [True, False, True]
    assert [await api.remaining("aon", key) for key in "abc"] == [3, 1, 4]


async def test_duplicate_keys_in_one_request_fit_together_or_not_at_all(api: Api) -> None:
    await api.create("dup", limit=3, period_ms=60_000)
    item = pb.CheckItem(limiter="limiters/dup", key="k", cost=2)
    denied = await api.stub.Check(pb.CheckRequest(items=[item, item]))
    assert not denied.allowed
    assert await api.remaining("dup") == 3
    independent = await api.stub.Check(
        pb.CheckRequest(items=[item, item], mode=pb.CheckRequest.MODE_INDEPENDENT)
    )
    assert [r.allowed for r in independent.results] == [True, False]


async def test_shadow_limiter_allows_and_reports(api: Api) -> None:
    await api.create("shadow", limit=1, period_ms=60_000, shadow=True)
    first, second = await api.check("shadow"), await api.check("shadow")
    assert first.allowed
    assert not first.results[0].shadow_denied
    assert second.allowed
    assert second.results[0].shadow_denied
    assert second.results[0].retry_after.ToMilliseconds() == 0
    stats = await api.stub.GetStats(pb.GetStatsRequest(limiter="limiters/shadow"))
    assert (stats.total.checks, stats.total.allowed, stats.total.shadow_denied, stats.total.denied) == (
        2,
        2,
        1,
        0,
    )


async def test_headers_match_the_result(api: Api) -> None:
    await api.create("hdr", limit=2, period_ms=10_000)
    allowed = await api.check("hdr")
    assert allowed.headers["RateLimit-Policy"] == '"hdr";q=2;w=10'
    assert allowed.headers["RateLimit"] == '"hdr";r=1;t=5'
    assert "Retry-After" not in allowed.headers
    assert allowed.results[0].retry_after.ToNanoseconds() == 0  # non-zero only when denied
    await api.check("hdr")
    denied = await api.check("hdr")
    retry_ms = denied.results[0].retry_after.ToMilliseconds()
    assert 0 < retry_ms <= 5000
    assert denied.results[0].retry_after.nanos % 1_000_000 == 0  # rounded up to the millisecond
    assert denied.headers["Retry-After"] == str(-(-retry_ms // 1000))
    assert denied.results[0].headers == denied.headers


async def test_headers_of_several_items_are_the_most_restrictive_items(api: Api) -> None:
    for name, limit, period_ms in (("tie-a", 5, 60_000), ("tie-b", 5, 60_000), ("few", 2, 60_000)):
        await api.create(name, limit=limit, period_ms=period_ms)
    await api.create("quick", limit=1, period_ms=2_000)
    await api.create("slow", limit=1, period_ms=60_000)

    def check(*limiters: str) -> pb.CheckRequest:
        items = [pb.CheckItem(limiter=f"limiters/{name}", key="k") for name in limiters]
        return pb.CheckRequest(items=items, mode=pb.CheckRequest.MODE_INDEPENDENT)

    tie = await api.stub.Check(check("tie-a", "tie-b"))
    assert tie.headers == tie.results[0].headers  # equal remaining: the first item
    least = await api.stub.Check(check("tie-a", "few", "tie-b"))
    assert least.headers == least.results[1].headers  # `few` has the least remaining
    assert "Retry-After" not in least.headers
    await api.stub.Check(check("quick", "slow"))
    denied = await api.stub.Check(check("tie-a", "quick", "slow", "few"))
    assert [r.allowed for r in denied.results] == [True, False, False, True]
    assert denied.headers == denied.results[2].headers  # the denial that waits longest
    assert denied.headers["Retry-After"] == "60"


async def test_unknown_limiter_in_check_is_not_found(api: Api) -> None:
    status = rich_status(await error_of(api.check("nobody")))
    assert status.code is grpc.StatusCode.NOT_FOUND
    assert status.details["ResourceInfo"].resource_type == "limiter.foundation/Limiter"


# ---- stats -------------------------------------------------------------------------------------------


async def test_stats_per_limiter_and_total_reach_other_replicas(api: Api, db_url: str) -> None:
    await api.create("s1", limit=2, period_ms=60_000)
    await api.create("s2", limit=1, period_ms=60_000)
    for _ in range(3):
        await api.check("s1", "a")
    await api.check("s2", "a")
    await api.check("s2", "b", cost=0)
    stats = await api.stub.GetStats(pb.GetStatsRequest())
    by_name = {s.limiter: s for s in stats.limiters}
    assert (by_name["limiters/s1"].checks, by_name["limiters/s1"].allowed, by_name["limiters/s1"].denied) == (
        3,
        2,
        1,
    )
    assert by_name["limiters/s1"].active_keys == 1
    assert by_name["limiters/s2"].checks == 2
    assert stats.total.checks == 5
    assert stats.total.active_keys == 2  # the peek stored no key
    assert stats.total.allowed == 4  # the peek of s2/b would be allowed
    async with running_service("limiter", db_url) as other:
        replica = rpc.LimiterServiceStub(other.channel)

        async def flushed() -> bool:
            seen: pb.GetStatsResponse = await replica.GetStats(pb.GetStatsRequest(limiter="limiters/s1"))
            return seen.total.checks == 3

        await eventually(flushed, within=5)


async def test_a_deleted_limiters_stats_do_not_come_back(db_url: str) -> None:
    async with running_service("limiter", db_url) as first:
        api = Api(first, rpc.LimiterServiceStub(first.channel))
        await api.create("gone", limit=5)
        await api.check("gone")
        await api.check("gone")
    async with running_service("limiter", db_url) as second:  # a clean stop flushed the counts
        api = Api(second, rpc.LimiterServiceStub(second.channel))
        assert (await api.stub.GetStats(pb.GetStatsRequest(limiter="limiters/gone"))).total.checks == 2
        for _ in range(3):
            await api.check("gone")
        await api.stub.DeleteLimiter(pb.DeleteLimiterRequest(name="limiters/gone"))
        await api.create("gone", limit=5)
        await api.check("gone")
    async with running_service("limiter", db_url) as third:
        stub = rpc.LimiterServiceStub(third.channel)
        stats = await stub.GetStats(pb.GetStatsRequest(limiter="limiters/gone"))
        assert (stats.total.checks, stats.total.active_keys) == (1, 1)  # only the new limiter's check
