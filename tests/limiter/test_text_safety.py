"""Text PostgreSQL cannot store (NUL) is refused up front, or kept distinct by hashing for Envoy's keys."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from envoy.extensions.common.ratelimit.v3 import ratelimit_pb2
from envoy.service.ratelimit.v3 import rls_pb2, rls_pb2_grpc

from foundation.limiter.v1 import limiter_pb2 as pb
from foundation.limiter.v1 import limiter_pb2_grpc as rpc
from tests.harness import rich_status, running_service
from tests.limiter.conftest import Api


def violations(error: grpc.aio.AioRpcError) -> list[str]:
    status = rich_status(error)
    assert status.code is grpc.StatusCode.INVALID_ARGUMENT
    return [v.field for v in status.details["BadRequest"].field_violations]


async def test_nul_in_keys_and_descriptions_is_invalid_argument(api: Api) -> None:
    await api.create("plain", limit=2, period_ms=60_000)
    calls = [
        (api.stub.Check, pb.CheckRequest(items=[pb.CheckItem(limiter="limiters/plain", key="a\x00b")])),
        (api.stub.GetStatus, pb.GetStatusRequest(limiter="limiters/plain", key="\x00")),
        (api.stub.Reset, pb.ResetRequest(limiter="limiters/plain", key="a\x00")),
        (
            api.stub.CreateLimiter,
            pb.CreateLimiterRequest(limiter_id="other", limiter=pb.Limiter(description="x\x00y")),
        ),
        (api.stub.Release, pb.ReleaseRequest(lease_id="a\x00")),
    ]
    expected = [["items[0].key"], ["key"], ["key"], ["limiter.description"], ["lease_id"]]
    for (method, message), fields in zip(calls, expected, strict=True):
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await method(message)
        assert violations(raised.value) == fields
    assert await api.remaining("plain", "a") == 2


async def test_envoy_descriptor_values_with_nul_are_counted_apart(db_url: str, tmp_path: Path) -> None:
    config = tmp_path / "edge.yaml"
    config.write_text(
        "domain: edge\ndescriptors:\n  - key: user\n    rate_limit: {unit: hour, requests_per_unit: 1}\n"
    )
    async with running_service("limiter", db_url, limiter={"envoy_config": str(config)}) as svc:
        stub = rls_pb2_grpc.RateLimitServiceStub(svc.channel)

        async def code(value: str) -> int:
            entry = ratelimit_pb2.RateLimitDescriptor.Entry(key="user", value=value)
            descriptor = ratelimit_pb2.RateLimitDescriptor(entries=[entry])
            response = await stub.ShouldRateLimit(
                rls_pb2.RateLimitRequest(domain="edge", descriptors=[descriptor])
            )
            return int(response.overall_code)

        ok, over = rls_pb2.RateLimitResponse.OK, rls_pb2.RateLimitResponse.OVER_LIMIT
        assert [await code("a\x00"), await code("a"), await code("a\x00"), await code("a")] == [
            ok,
            ok,
            over,
            over,
        ]
        stats = await rpc.LimiterServiceStub(svc.channel).GetStats(pb.GetStatsRequest())
        assert stats.total.active_keys == 2


async def test_envoy_domain_with_nul_is_invalid_argument(db_url: str) -> None:
    async with running_service("limiter", db_url) as svc:
        stub = rls_pb2_grpc.RateLimitServiceStub(svc.channel)
        entry = ratelimit_pb2.RateLimitDescriptor.Entry(key="user", value="a")
        limit = ratelimit_pb2.RateLimitDescriptor.RateLimitOverride(
            requests_per_unit=5, unit=rls_pb2.RateLimitResponse.RateLimit.SECOND
        )
        descriptor = ratelimit_pb2.RateLimitDescriptor(entries=[entry], limit=limit)
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.ShouldRateLimit(rls_pb2.RateLimitRequest(domain="ed\x00ge", descriptors=[descriptor]))
        assert violations(raised.value) == ["domain"]
        listed = await rpc.LimiterServiceStub(svc.channel).ListLimiters(pb.ListLimitersRequest())
        assert not listed.limiters
