"""Real services in-process for tests: `async with running_service("limiter", db_url) as svc: ...`.

The service binds 127.0.0.1 port 0 (and metrics port 0), on the database the test gives it; `svc.channel`
is a grpc.aio channel to it. Everything is stopped and closed on exit, even when the test fails.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, cast

import grpc
from google.protobuf.message import Message
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_status import rpc_status

from services.runtime.config import Settings, load_settings
from services.runtime.server import ServiceApp
from services.runtime.service import ServiceParts

EOF: Any = grpc.aio.EOF  # type: ignore[attr-defined]  # grpc-stubs lacks it
"""What `read()` returns at the end of a stream."""


async def read_all(stream: Any) -> tuple[list[Any], grpc.aio.AioRpcError | None]:
    """Reads a response stream to its end: the messages, and the error it ended with (None if OK)."""
    messages: list[Any] = []
    try:
        while (message := await stream.read()) is not EOF:
            messages.append(message)
    except grpc.aio.AioRpcError as error:
        return messages, error
    return messages, None


@dataclass
class RunningService:
    """A started ServiceApp and a channel to it."""

    app: ServiceApp
    address: str
    channel: grpc.aio.Channel
    settings: Settings

    @property
    def metrics_url(self) -> str:
        """The Prometheus endpoint of the service."""
        return f"http://127.0.0.1:{self.app.metrics_port}/metrics"


def service_settings(service: str, db_url: str, **overrides: Any) -> Settings:
    """Settings for a test process: port 0, metrics port 0, the given database (already migrated)."""
    values: dict[str, Any] = dict(overrides)
    values[service] = {"port": 0, "metrics_port": 0, **overrides.get(service, {})}
    values["store"] = {"migrate_on_start": False, **overrides.get("store", {})}
    values["database_url"] = db_url
    return load_settings(**values)


@asynccontextmanager
async def running_service(
    service: str,
    db_url: str,
    *,
    extra_parts: ServiceParts | None = None,
    health_probe_interval_s: float | None = None,
    **overrides: Any,
) -> AsyncIterator[RunningService]:
    """Starts `service` on `db_url` with settings `overrides`; stops it (gracefully) on exit."""
    settings = service_settings(service, db_url, **overrides)
    options: dict[str, Any] = {"extra_parts": extra_parts}
    if health_probe_interval_s is not None:
        options["health_probe_interval_s"] = health_probe_interval_s
    app = ServiceApp(service, settings, **options)
    await app.start()
    channel = grpc.aio.insecure_channel(app.address)
    try:
        yield RunningService(app=app, address=app.address, channel=channel, settings=settings)
    finally:
        await channel.close(None)
        await app.stop()


async def eventually(predicate: Callable[[], object], within: float = 5.0, interval: float = 0.01) -> None:
    """Polls `predicate()` (sync or async) until it is truthy; fails at the deadline (never a bare sleep)."""
    deadline = time.monotonic() + within
    while True:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within} s")
        await asyncio.sleep(interval)


_DETAIL_TYPES: dict[str, type[Message]] = {
    cls.DESCRIPTOR.full_name: cls
    for cls in (
        error_details_pb2.ErrorInfo,
        error_details_pb2.RetryInfo,
        error_details_pb2.QuotaFailure,
        error_details_pb2.BadRequest,
        error_details_pb2.ResourceInfo,
        error_details_pb2.PreconditionFailure,
    )
}


@dataclass
class RichStatus:
    """A failed call's google.rpc.Status, unpacked: code, message and details by type name."""

    code: grpc.StatusCode
    message: str
    details: dict[str, Any]

    @property
    def error_info(self) -> error_details_pb2.ErrorInfo | None:
        """The ErrorInfo (every error of ours carries exactly one)."""
        info: error_details_pb2.ErrorInfo | None = self.details.get("ErrorInfo")
        return info

    def retry_after(self) -> float | None:
        """RetryInfo's delay in seconds, if present."""
        info = self.details.get("RetryInfo")
        if info is None:
            return None
        return float(info.retry_delay.seconds + info.retry_delay.nanos / 1e9)


def rich_status(error: grpc.aio.AioRpcError) -> RichStatus:
    """Reads the google.rpc.Status from a failed call's trailers (`grpc_status.rpc_status.from_call`)."""
    status = rpc_status.from_call(cast(grpc.Call, error))
    details: dict[str, Any] = {}
    if status is not None:
        for packed in status.details:
            name = packed.TypeName()
            cls = _DETAIL_TYPES.get(name)
            if cls is not None:
                message = cls()
                packed.Unpack(message)
                details[name.rsplit(".", 1)[-1]] = message
    return RichStatus(code=error.code(), message=error.details() or "", details=details)


async def health_of(channel: grpc.aio.Channel, service: str = "") -> int:
    """`grpc.health.v1.Health/Check` status of `service` (a HealthCheckResponse.ServingStatus value)."""
    response = await health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service=service), timeout=5
    )
    return int(response.status)


async def reflected_services(channel: grpc.aio.Channel) -> list[str]:
    """The service names a server lists through gRPC server reflection."""
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    call = stub.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5
    )
    async for response in call:
        return sorted(service.name for service in response.list_services_response.service)
    raise AssertionError("no reflection response")
