"""Small gRPC client helpers for the CLI, the launcher and tests: health checks and reflection listings."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

UNREACHABLE = "UNREACHABLE"
"""Status reported when no server answered at all (connection refused, name not resolved, timed out)."""


@dataclass(frozen=True)
class HealthResult:
    """The answer of `grpc.health.v1.Health/Check` at one address, or why there was none."""

    address: str
    status: str
    """`SERVING`, `NOT_SERVING`, `SERVICE_UNKNOWN`, `UNKNOWN` (the health protocol's values) or `UNREACHABLE`."""
    detail: str = ""
    """Why the check failed, when it did (the gRPC status code and message)."""

    @property
    def serving(self) -> bool:
        """True when the server answered SERVING."""
        return self.status == "SERVING"


def dial_address(address: str) -> str:
    """The address to connect to for a listening address: a wildcard host is reached on loopback."""
    host, sep, port = address.rpartition(":")
    if sep and host in ("0.0.0.0", "[::]", "::", ""):
        return f"127.0.0.1:{port}"
    return address


async def check_health(address: str, *, service: str = "", rpc_timeout_s: float = 2.0) -> HealthResult:
    """One health check of `service` (`""`: the whole server) at `address`; never raises for RPC failures."""
    async with grpc.aio.insecure_channel(dial_address(address)) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            response = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=rpc_timeout_s)
        except grpc.aio.AioRpcError as exc:
            return _failed_check(address, exc, rpc_timeout_s)
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
    return HealthResult(address, status)


def _failed_check(address: str, exc: grpc.aio.AioRpcError, timeout: float) -> HealthResult:
    code = exc.code()
    if code == grpc.StatusCode.NOT_FOUND:
        return HealthResult(address, "SERVICE_UNKNOWN", exc.details() or "")
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return HealthResult(address, UNREACHABLE, f"no answer within {timeout:g}s")
    # gRPC's connection errors nest causes ("failed to connect …; last error: …: Connection refused");
    # the innermost one is what a person needs.
    reason = (exc.details() or "").rsplit(": ", 1)[-1]
    return HealthResult(address, UNREACHABLE, f"{code.name}: {reason}" if reason else code.name)


async def wait_serving(
    address: str, *, within_s: float, service: str = "", interval: float = 0.1
) -> HealthResult:
    """Polls the health of `address` until SERVING or until `within_s` seconds pass; returns the last answer."""
    deadline = time.monotonic() + within_s
    while True:
        remaining = deadline - time.monotonic()
        result = await check_health(address, service=service, rpc_timeout_s=max(0.05, min(1.0, remaining)))
        if result.serving or time.monotonic() + interval >= deadline:
            return result
        await asyncio.sleep(interval)


async def list_services(address: str, *, rpc_timeout_s: float = 5.0) -> list[str]:
    """The full names of the services a server offers, read through gRPC server reflection."""
    async with grpc.aio.insecure_channel(dial_address(address)) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        call = stub.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=rpc_timeout_s
        )
        async for response in call:
            return sorted(service.name for service in response.list_services_response.service)
    return []
