"""Graceful stop in-process: health goes NOT_SERVING, open streams end UNAVAILABLE (SHUTTING_DOWN, RetryInfo),
unary calls in flight finish, and stop() returns within the grace period; a second request hurries it."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import grpc
import pytest
from google.protobuf.wrappers_pb2 import StringValue
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.contract.probe import Probe, ProbeClient
from tests.harness import eventually, read_all, rich_status, running_service

PROCESSES = ["signals", "limiter", "cache", "pool", "gateway"]
GRACE_S = 3.0


async def _ends_unavailable(stream, service: str) -> list[Any]:
    """Reads `stream` to its end; asserts it ended UNAVAILABLE with SHUTTING_DOWN; returns the messages."""
    received, error = await read_all(stream)
    assert error is not None, "the stream ended OK"
    status = rich_status(error)
    assert status.code == grpc.StatusCode.UNAVAILABLE, status
    assert status.error_info is not None
    assert (status.error_info.reason, status.error_info.domain) == ("SHUTTING_DOWN", f"{service}.foundation")
    retry_after = status.retry_after()
    assert retry_after is not None
    assert retry_after > 0
    return received


@pytest.mark.parametrize("service", PROCESSES)
async def test_stop_ends_streams_unavailable_and_lets_unary_calls_finish(service: str, db_url: str) -> None:
    probe = Probe()
    async with running_service(service, db_url, extra_parts=probe.parts(), shutdown_grace_s=GRACE_S) as svc:
        client = ProbeClient(svc.channel)
        watch = health_pb2_grpc.HealthStub(svc.channel).Watch(health_pb2.HealthCheckRequest(service=""))
        assert (await watch.read()).status == health_pb2.HealthCheckResponse.SERVING
        ticks = client.server_stream("Ticks")(StringValue())
        assert (await ticks.read()).value == "0"
        in_flight = asyncio.ensure_future(client.unary("Block")(StringValue(), timeout=10))
        await eventually(lambda: probe.entered == 1)

        began = time.monotonic()
        stopping = asyncio.create_task(svc.app.stop())
        statuses = [m.status for m in await _ends_unavailable(watch, service)]
        assert statuses == [health_pb2.HealthCheckResponse.NOT_SERVING]
        await _ends_unavailable(ticks, service)
        assert svc.app.context.shutting_down.is_set()
        assert not stopping.done(), "stop waits for the unary call in flight"

        probe.release.set()
        assert (await in_flight).value == "released"
        await asyncio.wait_for(stopping, GRACE_S + 2)
        assert time.monotonic() - began < GRACE_S
        assert svc.app.state == "stopped"


async def test_a_second_stop_request_hurries_the_shutdown(sqlite_url: str) -> None:
    probe = Probe()
    async with running_service("signals", sqlite_url, extra_parts=probe.parts(), shutdown_grace_s=30) as svc:
        stuck = asyncio.ensure_future(ProbeClient(svc.channel).unary("Block")(StringValue(), timeout=60))
        await eventually(lambda: probe.entered == 1)
        began = time.monotonic()
        svc.app.request_stop()
        await asyncio.sleep(0)  # let the stop begin, as a second signal would arrive later
        assert svc.app.state == "stopping"
        svc.app.request_stop()
        await asyncio.wait_for(svc.app.wait_stopped(), 10)
        assert time.monotonic() - began < 5, "did not wait out the 30 s grace"
        with pytest.raises(grpc.aio.AioRpcError) as ended:
            await stuck
        assert ended.value.code() in (grpc.StatusCode.CANCELLED, grpc.StatusCode.UNAVAILABLE)
        assert probe.finished == 0
