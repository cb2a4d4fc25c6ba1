"""Every process serves its contract: reflection lists it, health answers for it, and every RPC answers with
a proper status (UNIMPLEMENTED with ErrorInfo until implemented; then a result or INVALID_ARGUMENT for an
empty request) — never UNKNOWN. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor_pool
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from google.protobuf.message_factory import GetMessageClass
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from tests.harness import health_of, reflected_services, rich_status, running_service

CONTRACTS = {
    "signals": ["foundation.signals.v1.SignalService"],
    "limiter": ["foundation.limiter.v1.LimiterService", "envoy.service.ratelimit.v3.RateLimitService"],
    "cache": ["foundation.cache.v1.CacheService"],
    "pool": ["foundation.pool.v1.PoolService"],
    "gateway": [],
}
RUNTIME_SERVICES = ["grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"]
STREAM_WAIT_S = 2.0
"""How long an implemented streaming RPC may stay silent on an empty request (a live stream) before we stop."""


@pytest.mark.parametrize("service", list(CONTRACTS))
async def test_reflection_lists_the_contract_and_health_serves_it(service: str, db_url: str) -> None:
    async with running_service(service, db_url) as svc:
        listed = await reflected_services(svc.channel)
        assert listed == sorted(CONTRACTS[service] + RUNTIME_SERVICES)
        assert await health_of(svc.channel, "") == health_pb2.HealthCheckResponse.SERVING
        for name in CONTRACTS[service]:
            assert await health_of(svc.channel, name) == health_pb2.HealthCheckResponse.SERVING
            await _assert_reflection_describes(svc.channel, name)


async def _assert_reflection_describes(channel: grpc.aio.Channel, name: str) -> None:
    """`grpcurl describe` works: reflection returns the file that defines the service."""
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    call = stub.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(file_containing_symbol=name)])
    )
    async for response in call:
        assert response.HasField("file_descriptor_response"), response
        assert response.file_descriptor_response.file_descriptor_proto
        return
    raise AssertionError(f"no reflection answer for {name}")


@pytest.mark.parametrize("service", [s for s in CONTRACTS if CONTRACTS[s]])
async def test_every_rpc_answers_with_a_status_never_unknown(service: str, db_url: str) -> None:
    async with running_service(service, db_url) as svc:
        pool = descriptor_pool.Default()
        for name in CONTRACTS[service]:
            descriptor = pool.FindServiceByName(name)
            for method in descriptor.methods:
                outcome = await _call_with_empty_request(svc.channel, descriptor, method)
                _check_outcome(service, f"{name}/{method.name}", outcome)


async def _call_with_empty_request(
    channel: grpc.aio.Channel, service: ServiceDescriptor, method: MethodDescriptor
) -> grpc.aio.AioRpcError | str:
    """Calls `method` with an empty request (or an empty request stream); the error, or "ok"/"streaming"."""
    path = f"/{service.full_name}/{method.name}"
    request_type = GetMessageClass(method.input_type)
    response_type = GetMessageClass(method.output_type)
    serde: dict[str, Any] = {
        "request_serializer": request_type.SerializeToString,
        "response_deserializer": response_type.FromString,
    }
    request: Any = iter([]) if method.client_streaming else request_type()
    try:
        if method.client_streaming and method.server_streaming:
            call: Any = channel.stream_stream(path, **serde)(request)
        elif method.client_streaming:
            await channel.stream_unary(path, **serde)(request, timeout=10)
            return "ok"
        elif method.server_streaming:
            call = channel.unary_stream(path, **serde)(request)
        else:
            await channel.unary_unary(path, **serde)(request, timeout=10)
            return "ok"
        try:
            async with asyncio.timeout(STREAM_WAIT_S):
                async for _ in call:
                    return "ok"
            return "ok"
        except TimeoutError:
            call.cancel()
            return "streaming"
    except grpc.aio.AioRpcError as error:
        return error


def _check_outcome(service: str, rpc: str, outcome: grpc.aio.AioRpcError | str) -> None:
    if isinstance(outcome, str):
        return  # implemented: a result, or a live stream
    status = rich_status(outcome)
    assert status.code != grpc.StatusCode.UNKNOWN, f"{rpc}: UNKNOWN leaked: {status.message}"
    assert status.error_info is not None, f"{rpc}: {status.code.name} without ErrorInfo"
    assert status.error_info.domain == f"{service}.foundation", rpc
    if status.code == grpc.StatusCode.UNIMPLEMENTED:
        assert status.error_info.reason == "UNIMPLEMENTED", rpc
        assert rpc.rsplit("/", 1)[-1] in status.message, rpc
        return
    # An implemented RPC given an empty request: a result, or a precise complaint about the request.
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT, f"{rpc}: {status.code.name} {status.message}"
    assert "BadRequest" in status.details, rpc
