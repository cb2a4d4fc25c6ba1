"""Bad input, as properties: any CreateLimiter or Check either succeeds or is INVALID_ARGUMENT naming exactly
the bad fields (never UNKNOWN or INTERNAL), and a rejected request changes nothing.

The expected verdict is computed here from the contract's rules, independently of services.limiter.validation.
"""

from __future__ import annotations

import re
import uuid
from typing import Any, cast

import grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from foundation.limiter.v1 import limiter_pb2 as pb
from tests.harness import rich_status
from tests.limiter.conftest import Api

ID = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")
US_PER_DAY = 86_400_000_000
PROPERTY = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

durations = st.one_of(
    st.none(),
    st.tuples(
        st.integers(0, 400 * 86_400), st.sampled_from([0, 500, 1_000, 999_000, 1_000_000, 123_456_789])
    ),
)


def expected_create_faults(limiter_id: str, fields: dict[str, Any]) -> set[str]:
    faults = set()
    if not ID.fullmatch(limiter_id):
        faults.add("limiter_id")
    if fields["algorithm"] not in range(5):
        faults.add("limiter.algorithm")
    if fields["failure_mode"] not in range(3):
        faults.add("limiter.failure_mode")
    if fields["limit"] is not None and fields["limit"] < 1:
        faults.add("limiter.limit")
    if fields["burst"] is not None and fields["burst"] < 1:
        faults.add("limiter.burst")
    for name, low, high in (("period", 1_000, 366 * US_PER_DAY), ("lease_ttl", 1_000, US_PER_DAY)):
        if fields[name] is not None:
            seconds, nanos = fields[name]
            if nanos % 1000 or not low <= seconds * 1_000_000 + nanos // 1000 <= high:
                faults.add(f"limiter.{name}")
    if len(fields["description"]) > 1024 or "\x00" in fields["description"]:
        faults.add("limiter.description")
    if faults:
        return faults
    limit = fields["limit"] or 1000
    period = (
        60_000_000
        if fields["period"] is None
        else fields["period"][0] * 1_000_000 + fields["period"][1] // 1000
    )
    burst = fields["burst"] or limit
    gcra = fields["algorithm"] in (0, 1)
    if fields["burst"] is not None and not gcra and burst != limit:
        faults.add("limiter.burst")
    if gcra and burst * period > 2**62:
        faults.add("limiter.burst")
    if fields["algorithm"] == 3 and limit * period > 2**62:
        faults.add("limiter.limit")
    return faults


def limiter_message(fields: dict[str, Any]) -> pb.Limiter:
    message = pb.Limiter(algorithm=fields["algorithm"], failure_mode=fields["failure_mode"])
    message.description = fields["description"]
    for name in ("limit", "burst"):
        if fields[name] is not None:
            setattr(message, name, fields[name])
    for name in ("period", "lease_ttl"):
        if fields[name] is not None:
            getattr(message, name).seconds, getattr(message, name).nanos = fields[name]
    return message


async def exists(api: Api, limiter_id: str) -> bool | None:
    """Whether limiters/{limiter_id} exists; None when that is no valid name (nothing can exist there)."""
    if not ID.fullmatch(limiter_id):
        return None
    try:
        await api.stub.GetLimiter(pb.GetLimiterRequest(name=f"limiters/{limiter_id}"))
    except grpc.aio.AioRpcError as error:
        if error.code() is grpc.StatusCode.NOT_FOUND:
            return False
        raise
    return True


@PROPERTY
@given(
    valid_id=st.booleans(),
    bad_id=st.text(max_size=80),
    fields=st.fixed_dictionaries(
        {
            "algorithm": st.integers(-1, 6),
            "failure_mode": st.integers(-1, 4),
            "limit": st.one_of(st.none(), st.integers(-3, 2**62)),
            "burst": st.one_of(st.none(), st.integers(-3, 2**40)),
            "period": durations,
            "lease_ttl": durations,
            "description": st.text(max_size=3).map(lambda t: t * 400),
        }
    ),
)
async def test_create_succeeds_or_names_exactly_the_bad_fields(
    api: Api, valid_id: bool, bad_id: str, fields: dict[str, Any]
) -> None:
    limiter_id = f"v{uuid.uuid4().hex[:12]}" if valid_id else bad_id
    expected = expected_create_faults(limiter_id, fields)
    request = pb.CreateLimiterRequest(limiter_id=limiter_id, limiter=limiter_message(fields))
    # A drawn id such as "0" may have been created by an earlier example: compare with what was there.
    existed = await exists(api, limiter_id)
    try:
        await api.stub.CreateLimiter(request)
    except grpc.aio.AioRpcError as error:
        status = rich_status(error)
        if status.code is grpc.StatusCode.ALREADY_EXISTS:
            assert existed
            assert expected == set()
            return
        assert status.code is grpc.StatusCode.INVALID_ARGUMENT, (status.code, status.message)
        named = {v.field for v in status.details["BadRequest"].field_violations}
        assert named == expected
        assert await exists(api, limiter_id) == existed  # nothing was created
    else:
        assert expected == set()


item_strategy = st.fixed_dictionaries(
    {
        "limiter": st.sampled_from(["limiters/known", "limiters/unknown", "known", "limiters/UP", ""]),
        "key": st.one_of(
            st.sampled_from(["", "k", "é" * 512, "é" * 513, "x" * 1024, "x" * 1025, "a\x00b"]),
            st.text(min_size=1, max_size=20),
        ),
        "cost": st.one_of(st.none(), st.integers(-2, 12)),
    }
)


@PROPERTY
@given(items=st.lists(item_strategy, max_size=4), mode=st.integers(-1, 3), dry_run=st.booleans())
async def test_check_succeeds_or_names_exactly_the_bad_fields(
    api: Api, items: list[dict[str, Any]], mode: int, dry_run: bool
) -> None:
    known = f"k{uuid.uuid4().hex[:12]}"
    await api.create(known, limit=10, period_ms=3_600_000, algorithm=pb.Limiter.ALGORITHM_FIXED_WINDOW)
    before = await api.remaining(known, "k")
    request = pb.CheckRequest(mode=cast(Any, mode), dry_run=dry_run)
    faults = set()
    if not items:
        faults.add("items")
    if mode not in range(3):
        faults.add("mode")
    unknown = False
    for i, item in enumerate(items):
        name = item["limiter"].replace("limiters/known", f"limiters/{known}")
        message = request.items.add(limiter=name, key=item["key"])
        if item["cost"] is not None:
            message.cost = item["cost"]
        if item["limiter"] not in ("limiters/known", "limiters/unknown"):
            faults.add(f"items[{i}].limiter")
        unknown |= item["limiter"] == "limiters/unknown"
        if not item["key"] or len(item["key"].encode()) > 1024 or "\x00" in item["key"]:
            faults.add(f"items[{i}].key")
        if item["cost"] is not None and item["cost"] < 0:
            faults.add(f"items[{i}].cost")
    too_costly = {
        f"items[{i}].cost"
        for i, item in enumerate(items)
        if item["limiter"] == "limiters/known" and (item["cost"] or 0) > 10
    }
    try:
        response = await api.stub.Check(request)
    except grpc.aio.AioRpcError as error:
        status = rich_status(error)
        if faults:
            assert status.code is grpc.StatusCode.INVALID_ARGUMENT, (status.code, status.message)
            assert {v.field for v in status.details["BadRequest"].field_violations} == faults
        elif unknown:
            assert status.code is grpc.StatusCode.NOT_FOUND
        else:
            assert status.code is grpc.StatusCode.INVALID_ARGUMENT
            assert {v.field for v in status.details["BadRequest"].field_violations} == too_costly
        assert await api.remaining(known, "k") == before  # a refused check changed nothing
    else:
        assert not faults
        assert not unknown
        assert not too_costly
        assert len(response.results) == len(items)


async def test_a_thousand_items_are_accepted_and_one_more_is_not(api: Api) -> None:
    await api.create("many", limit=10**6, period_ms=3_600_000, algorithm=pb.Limiter.ALGORITHM_FIXED_WINDOW)
    item = pb.CheckItem(limiter="limiters/many", key="k")
    response = await api.stub.Check(
        pb.CheckRequest(items=[item] * 1000, mode=pb.CheckRequest.MODE_INDEPENDENT)
    )
    assert len(response.results) == 1000
    assert response.allowed
    try:
        await api.stub.Check(pb.CheckRequest(items=[item] * 1001))
    except grpc.aio.AioRpcError as error:
        status = rich_status(error)
        assert status.code is grpc.StatusCode.INVALID_ARGUMENT
        assert [v.field for v in status.details["BadRequest"].field_violations] == ["items"]
    else:
        raise AssertionError("1001 items were accepted")
    assert await api.remaining("many") == 10**6 - 1000
