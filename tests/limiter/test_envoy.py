"""The Envoy adapter through real `ShouldRateLimit` calls (xds-protos stubs), on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from envoy.extensions.common.ratelimit.v3 import ratelimit_pb2
from envoy.service.ratelimit.v3 import rls_pb2, rls_pb2_grpc
from google.protobuf import wrappers_pb2

from foundation.limiter.v1 import limiter_pb2 as pb
from foundation.limiter.v1 import limiter_pb2_grpc as rpc
from services.limiter.envoy_config import UNITS_US, limiter_id_for, max_requests
from tests.harness import rich_status, running_service

OK = rls_pb2.RateLimitResponse.OK
OVER = rls_pb2.RateLimitResponse.OVER_LIMIT
Unit = rls_pb2.RateLimitResponse.RateLimit.Unit

CONFIG = """
domain: edge
descriptors:
  - key: remote_address
    rate_limit: {unit: hour, requests_per_unit: 3}
  - key: remote_address
    value: 10.0.0.66
    rate_limit: {unit: hour, requests_per_unit: 0}
  - key: remote_address
    value: 10.9.9.9
    rate_limit: {unlimited: true}
  - key: tenant
    value: acme
    descriptors:
      - key: path
        value: /export*
        rate_limit: {unit: hour, requests_per_unit: 1}
      - key: path
        rate_limit: {unit: second, requests_per_unit: 100}
  - key: shadowed
    shadow_mode: true
    rate_limit: {unit: day, requests_per_unit: 1}
  - key: plan
    value: gold
    rate_limit: {unit: hour, requests_per_unit: 5, name: gold}
  - key: plan
    rate_limit: {unit: hour, requests_per_unit: 1, name: default, replaces: [{name: gold}]}
  - key: files
    value: "/shared/*.pdf"
    share_threshold: true
    value_to_metric: true
    metadata: {team: docs}
    rate_limit: {unit: hour, requests_per_unit: 2}
  - key: files
    value: "/own/*"
    detailed_metric: true
    rate_limit: {unit: hour, requests_per_unit: 1}
  - key: soft
    quota_mode: true
    rate_limit: {unit: hour, requests_per_unit: 1}
"""
SECOND_DOMAIN = """
domain: mongo_cps
descriptors:
  - key: database
    value: users
    rate_limit: {unit: second, requests_per_unit: 2, algorithm: gcra}
"""


@pytest.fixture
async def envoy(db_url: str, tmp_path: Path) -> AsyncIterator[tuple[rls_pb2_grpc.RateLimitServiceStub, Any]]:
    config = tmp_path / "ratelimit"
    config.mkdir()
    (config / "edge.yaml").write_text(CONFIG)
    (config / "mongo.yml").write_text(SECOND_DOMAIN)
    async with running_service("limiter", db_url, limiter={"envoy_config": str(config)}) as svc:
        yield rls_pb2_grpc.RateLimitServiceStub(svc.channel), rpc.LimiterServiceStub(svc.channel)


def request(domain: str, *descriptors: list[tuple[str, str]], hits: int = 0) -> rls_pb2.RateLimitRequest:
    return rls_pb2.RateLimitRequest(
        domain=domain,
        hits_addend=hits,
        descriptors=[
            ratelimit_pb2.RateLimitDescriptor(
                entries=[ratelimit_pb2.RateLimitDescriptor.Entry(key=k, value=v) for k, v in entries]
            )
            for entries in descriptors
        ],
    )


async def test_key_only_rule_limits_each_value_separately(envoy: Any) -> None:
    stub, _ = envoy
    codes = []
    for _ in range(4):
        response = await stub.ShouldRateLimit(request("edge", [("remote_address", "10.0.0.1")]))
        codes.append(response.overall_code)
        status = response.statuses[0]
        assert status.current_limit.requests_per_unit == 3
        assert status.current_limit.unit == Unit.HOUR
        assert 0 < status.duration_until_reset.ToMilliseconds() <= 3_600_000
    assert codes == [OK, OK, OK, OVER]
    assert status.limit_remaining == 0
    headers = {h.key: h.value for h in response.response_headers_to_add}
    assert headers["Retry-After"]
    assert headers["RateLimit"].startswith('"envoy-edge-')
    other = await stub.ShouldRateLimit(request("edge", [("remote_address", "10.0.0.2")]))
    assert other.overall_code == OK
    assert other.statuses[0].limit_remaining == 2


async def test_exact_value_wins_over_key_and_zero_blocks(envoy: Any) -> None:
    stub, _ = envoy
    blocked = await stub.ShouldRateLimit(request("edge", [("remote_address", "10.0.0.66")]))
    assert blocked.overall_code == OVER
    assert blocked.statuses[0].current_limit.requests_per_unit == 0
    free = await stub.ShouldRateLimit(request("edge", [("remote_address", "10.9.9.9")]))
    assert free.overall_code == OK
    assert not free.statuses[0].HasField("current_limit")
    assert free.statuses[0].limit_remaining == 2**32 - 1  # ratelimit's answer for `unlimited`


async def test_nested_descriptors_wildcards_and_depth(envoy: Any) -> None:
    stub, _ = envoy
    export = [("tenant", "acme"), ("path", "/export/all")]
    first = await stub.ShouldRateLimit(request("edge", export))
    second = await stub.ShouldRateLimit(request("edge", export))
    assert (first.overall_code, second.overall_code) == (OK, OVER)
    assert first.statuses[0].current_limit.unit == Unit.HOUR
    other_path = await stub.ShouldRateLimit(request("edge", [("tenant", "acme"), ("path", "/home")]))
    assert other_path.statuses[0].current_limit.requests_per_unit == 100
    # The tenant level has no limit of its own, and a deeper request than the config matches nothing.
    shallow = await stub.ShouldRateLimit(request("edge", [("tenant", "acme")]))
    deeper = await stub.ShouldRateLimit(request("edge", [("tenant", "acme"), ("path", "/home"), ("x", "y")]))
    for response in (shallow, deeper):
        assert response.overall_code == OK
        assert not response.statuses[0].HasField("current_limit")


async def test_several_descriptors_and_hits_addend(envoy: Any) -> None:
    stub, _ = envoy
    response = await stub.ShouldRateLimit(
        request(
            "edge",
            [("remote_address", "10.1.1.1")],
            [("unknown", "x")],
            [("remote_address", "10.0.0.66")],
            hits=2,
        )
    )
    assert [s.code for s in response.statuses] == [OK, OK, OVER]
    assert response.overall_code == OVER
    assert (
        response.statuses[0].limit_remaining == 1
    )  # 2 hits of 3, consumed although another descriptor is over
    too_many = await stub.ShouldRateLimit(request("edge", [("remote_address", "10.1.1.1")], hits=2))
    assert too_many.overall_code == OVER
    assert too_many.statuses[0].limit_remaining == 1
    peek = request("edge", [("remote_address", "10.1.1.1")])
    peek.descriptors[0].hits_addend.CopyFrom(wrappers_pb2.UInt64Value(value=0))
    assert (await stub.ShouldRateLimit(peek)).statuses[0].limit_remaining == 1
    # A peek of a fresh key still names the end of the fixed window, as ratelimit does.
    fresh = request("edge", [("remote_address", "10.2.2.2")])
    fresh.descriptors[0].hits_addend.CopyFrom(wrappers_pb2.UInt64Value(value=0))
    status = (await stub.ShouldRateLimit(fresh)).statuses[0]
    assert (status.code, status.limit_remaining) == (OK, 3)
    assert 0 < status.duration_until_reset.ToMilliseconds() <= 3_600_000


async def test_shadow_mode_and_replaces(envoy: Any) -> None:
    stub, limiters = envoy
    for _ in range(3):
        response = await stub.ShouldRateLimit(request("edge", [("shadowed", "a")]))
        assert response.overall_code == OK
    stats = await limiters.GetStats(
        pb.GetStatsRequest(limiter=f"limiters/{limiter_id_for('edge', [('shadowed', None)])}")
    )
    assert stats.total.shadow_denied == 2
    # gold (5/min) is replaced by the default plan rule when both match; the default allows 1.
    both = await stub.ShouldRateLimit(request("edge", [("plan", "gold")], [("plan", "silver")]))
    assert both.statuses[0].HasField("current_limit") is False
    assert both.statuses[1].current_limit.requests_per_unit == 1


async def test_limit_override_in_the_request(envoy: Any) -> None:
    stub, limiters = envoy
    descriptor = ratelimit_pb2.RateLimitDescriptor(
        entries=[ratelimit_pb2.RateLimitDescriptor.Entry(key="user", value="u1")],
        limit=ratelimit_pb2.RateLimitDescriptor.RateLimitOverride(requests_per_unit=2, unit=Unit.HOUR),
    )
    codes = [
        (
            await stub.ShouldRateLimit(rls_pb2.RateLimitRequest(domain="anything", descriptors=[descriptor]))
        ).overall_code
        for _ in range(3)
    ]
    assert codes == [OK, OK, OVER]
    listed = await limiters.GetLimiter(pb.GetLimiterRequest(name="limiters/envoy-override-hour-2"))
    assert listed.limiter.algorithm == pb.Limiter.ALGORITHM_FIXED_WINDOW
    assert listed.limiter.limit == 2


async def test_second_domain_with_gcra_and_unknown_domain(envoy: Any) -> None:
    stub, limiters = envoy
    codes = [
        (await stub.ShouldRateLimit(request("mongo_cps", [("database", "users")]))).overall_code
        for _ in range(3)
    ]
    assert codes == [OK, OK, OVER]
    configured = await limiters.GetLimiter(
        pb.GetLimiterRequest(name=f"limiters/{limiter_id_for('mongo_cps', [('database', 'users')])}")
    )
    assert configured.limiter.algorithm == pb.Limiter.ALGORITHM_GCRA
    unknown = await stub.ShouldRateLimit(request("nobody", [("database", "users")]))
    assert unknown.overall_code == OK


async def test_share_threshold_wildcards_share_one_counter(envoy: Any) -> None:
    stub, _ = envoy

    async def code(path: str) -> int:
        return int((await stub.ShouldRateLimit(request("edge", [("files", path)]))).overall_code)

    # `/shared/*.pdf` with share_threshold: every matching value counts against one quota of 2.
    assert [await code(p) for p in ("/shared/a.pdf", "/shared/b/c.pdf", "/shared/d.pdf")] == [OK, OK, OVER]
    # A literal value equal to the pattern is its own descriptor, not the shared counter.
    assert await code("/shared/*.pdf") == OK
    # `/own/*` without it: each value has its own quota of 1.
    assert [await code(p) for p in ("/own/a", "/own/b", "/own/a")] == [OK, OK, OVER]
    unmatched = await stub.ShouldRateLimit(request("edge", [("files", "/shared/a.txt")]))
    assert not unmatched.statuses[0].HasField("current_limit")


async def test_quota_mode_blocks_only_when_every_quota_descriptor_is_over(envoy: Any) -> None:
    stub, _ = envoy
    first = await stub.ShouldRateLimit(request("edge", [("soft", "x")]))
    assert first.overall_code == OK
    soft = await stub.ShouldRateLimit(request("edge", [("soft", "x")], [("soft", "y")]))
    assert [s.code for s in soft.statuses] == [OVER, OK]
    assert soft.overall_code == OK
    assert "Retry-After" not in {h.key for h in soft.response_headers_to_add}
    hard = await stub.ShouldRateLimit(request("edge", [("soft", "x")], [("soft", "y")]))
    assert [s.code for s in hard.statuses] == [OVER, OVER]
    assert hard.overall_code == OVER
    assert "Retry-After" in {h.key for h in hard.response_headers_to_add}


async def test_a_deleted_limiter_is_defined_again_on_use(envoy: Any) -> None:
    stub, limiters = envoy
    name = f"limiters/{limiter_id_for('edge', [('remote_address', None)])}"
    await stub.ShouldRateLimit(request("edge", [("remote_address", "10.3.3.3")]))
    await limiters.DeleteLimiter(pb.DeleteLimiterRequest(name=name))
    response = await stub.ShouldRateLimit(request("edge", [("remote_address", "10.3.3.3")]))
    assert (response.overall_code, response.statuses[0].limit_remaining) == (OK, 2)
    assert (await limiters.GetLimiter(pb.GetLimiterRequest(name=name))).limiter.limit == 3


async def test_replicas_start_together_and_share_every_quota(db_url: str, tmp_path: Path) -> None:
    config = tmp_path / "edge.yaml"
    config.write_text(CONFIG)
    async with contextlib.AsyncExitStack() as stack:
        replicas = await asyncio.gather(
            *(
                stack.enter_async_context(
                    running_service("limiter", db_url, limiter={"envoy_config": str(config)})
                )
                for _ in range(2)
            )
        )
        stubs = [rls_pb2_grpc.RateLimitServiceStub(r.channel) for r in replicas]
        configured = request("edge", [("remote_address", "10.4.4.4")])
        descriptor = ratelimit_pb2.RateLimitDescriptor(
            entries=[ratelimit_pb2.RateLimitDescriptor.Entry(key="user", value="u1")],
            limit=ratelimit_pb2.RateLimitDescriptor.RateLimitOverride(requests_per_unit=5, unit=Unit.DAY),
        )
        override = rls_pb2.RateLimitRequest(domain="edge", descriptors=[descriptor])
        # Both replicas create the override limiter on first use at the same moment.
        responses = await asyncio.gather(
            *(stubs[i % 2].ShouldRateLimit(message) for message in (configured, override) for i in range(12))
        )
    allowed = [r.overall_code == OK for r in responses]
    assert sum(allowed[:12]) == 3
    assert sum(allowed[12:]) == 5


def override_request(unit: int, requests_per_unit: int = 1) -> rls_pb2.RateLimitRequest:
    descriptor = ratelimit_pb2.RateLimitDescriptor(
        entries=[ratelimit_pb2.RateLimitDescriptor.Entry(key="user", value="u1")],
        limit=ratelimit_pb2.RateLimitDescriptor.RateLimitOverride(
            requests_per_unit=requests_per_unit, unit=unit
        ),
    )
    return rls_pb2.RateLimitRequest(domain="edge", descriptors=[descriptor])


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        (override_request(Unit.UNKNOWN), "descriptors[0].limit.unit"),
        (override_request(99), "descriptors[0].limit.unit"),
        (rls_pb2.RateLimitRequest(descriptors=[ratelimit_pb2.RateLimitDescriptor()]), "domain"),
        (rls_pb2.RateLimitRequest(domain="edge"), "descriptors"),
        (request("edge", []), "descriptors[0].entries"),
        (request("edge", [("", "x")]), "descriptors[0].entries[0].key"),
    ],
)
async def test_bad_requests_are_invalid_argument(
    envoy: Any, bad: rls_pb2.RateLimitRequest, field: str
) -> None:
    stub, _ = envoy
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.ShouldRateLimit(bad)
    status = rich_status(raised.value)
    assert status.code is grpc.StatusCode.INVALID_ARGUMENT
    assert field in [v.field for v in status.details["BadRequest"].field_violations]


async def test_a_bad_config_stops_the_start_with_one_line(db_url: str, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "domain: edge\ndescriptors:\n  - key: a\n    rate_limit: {unit: fortnight, requests_per_unit: 1}\n"
    )
    from services.runtime.server import StartupError

    with pytest.raises(StartupError) as raised:
        async with running_service("limiter", db_url, limiter={"envoy_config": str(bad)}):
            pass
    message = str(raised.value)
    assert "\n" not in message
    assert "bad.yaml: descriptors[0].rate_limit.unit: unknown unit 'fortnight'" in message


async def test_the_largest_limit_of_every_unit_starts_and_counts(db_url: str, tmp_path: Path) -> None:
    rules = "".join(
        f"  - key: {unit}\n    rate_limit: {{unit: {unit}, requests_per_unit: {min(max_requests(unit), 2**32 - 1)}}}\n"
        for unit in UNITS_US
    )
    config = tmp_path / "big.yaml"
    config.write_text("domain: big\ndescriptors:\n" + rules)
    async with running_service("limiter", db_url, limiter={"envoy_config": str(config)}) as svc:
        stub = rls_pb2_grpc.RateLimitServiceStub(svc.channel)
        response = await stub.ShouldRateLimit(request("big", *([(unit, "k")] for unit in UNITS_US), hits=7))
    assert response.overall_code == OK
    assert [s.limit_remaining for s in response.statuses] == [
        min(max_requests(unit), 2**32 - 1) - 7 for unit in UNITS_US
    ]
