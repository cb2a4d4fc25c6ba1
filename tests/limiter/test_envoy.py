"""The Envoy adapter through real `ShouldRateLimit` calls (xds-protos stubs), on SQLite and PostgreSQL."""

from __future__ import annotations

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
from services.limiter.envoy_config import limiter_id_for
from tests.harness import rich_status, running_service

OK = rls_pb2.RateLimitResponse.OK
OVER = rls_pb2.RateLimitResponse.OVER_LIMIT
Unit = rls_pb2.RateLimitResponse.RateLimit.Unit

CONFIG = """
domain: edge
descriptors:
  - key: remote_address
    rate_limit: {unit: minute, requests_per_unit: 3}
  - key: remote_address
    value: 10.0.0.66
    rate_limit: {unit: minute, requests_per_unit: 0}
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
    rate_limit: {unit: minute, requests_per_unit: 5, name: gold}
  - key: plan
    rate_limit: {unit: minute, requests_per_unit: 1, name: default, replaces: [{name: gold}]}
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
        assert status.current_limit.unit == Unit.MINUTE
        assert 0 < status.duration_until_reset.ToMilliseconds() <= 60_000
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


async def test_shadow_mode_and_replaces(envoy: Any) -> None:
    stub, limiters = envoy
    for _ in range(3):
        response = await stub.ShouldRateLimit(request("edge", [("shadowed", "a")]))
        assert response.overall_code == OK
    stats = await limiters.GetStats(
        pb.GetStatsRequest(limiter=f"limiters/{limiter_id_for('edge', 'shadowed')}")
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
        pb.GetLimiterRequest(name=f"limiters/{limiter_id_for('mongo_cps', 'database_users')}")
    )
    assert configured.limiter.algorithm == pb.Limiter.ALGORITHM_GCRA
    unknown = await stub.ShouldRateLimit(request("nobody", [("database", "users")]))
    assert unknown.overall_code == OK


@pytest.mark.parametrize(
    ("bad", "field"),
    [
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
