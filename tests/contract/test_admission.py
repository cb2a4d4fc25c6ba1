"""Admission: beyond a method's in-flight bound a call is refused at once with RESOURCE_EXHAUSTED, RetryInfo,
QuotaFailure and ErrorInfo OVERLOADED; other methods, health and reflection are unaffected."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import grpc
import pytest
from google.protobuf.wrappers_pb2 import StringValue
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.contract.probe import SERVICE, Probe, ProbeClient
from tests.harness import eventually, health_of, reflected_services, rich_status, running_service

PROCESSES = ["signals", "limiter", "cache", "pool", "gateway"]


@pytest.mark.parametrize("service", PROCESSES)
async def test_unary_calls_beyond_the_bound_are_refused_at_once(service: str, db_url: str) -> None:
    probe = Probe()
    bounds: dict[str, Any] = {service: {"max_in_flight": 2, "max_streams": 1}}
    async with running_service(service, db_url, extra_parts=probe.parts(), **bounds) as svc:
        client = ProbeClient(svc.channel)
        block = client.unary("Block")
        held = [asyncio.ensure_future(block(StringValue(), timeout=10)) for _ in range(2)]
        await eventually(lambda: probe.entered == 2)

        began = time.monotonic()
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await block(StringValue(), timeout=10)
        assert time.monotonic() - began < 1.0, "refused at once, not queued"
        status = rich_status(refused.value)
        assert status.code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert status.error_info is not None
        assert (status.error_info.reason, status.error_info.domain) == ("OVERLOADED", f"{service}.foundation")
        retry_after = status.retry_after()
        assert retry_after is not None
        assert retry_after > 0
        assert status.details["QuotaFailure"].violations[0].subject == f"/{SERVICE}/Block"
        assert probe.entered == 2, "the refused call never reached the handler"

        # The bound is per method; health and reflection are exempt.
        assert (await client.unary("Echo")(StringValue(value="still here"))).value == "still here"
        assert await health_of(svc.channel) == health_pb2.HealthCheckResponse.SERVING
        assert SERVICE in await reflected_services(svc.channel)

        probe.release.set()
        assert [r.value for r in await asyncio.gather(*held)] == ["released", "released"]
        assert (await block(StringValue(), timeout=10)).value == "released", "slots were given back"


async def test_streams_have_their_own_bound_and_health_watch_is_exempt(db_url: str) -> None:
    probe = Probe()
    async with running_service(
        "signals", db_url, extra_parts=probe.parts(), signals={"max_streams": 1}
    ) as svc:
        ticks = ProbeClient(svc.channel).server_stream("Ticks")
        first = ticks(StringValue())
        assert (await first.read()).value == "0"

        second = ticks(StringValue())
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await second.read()
        status = rich_status(refused.value)
        assert status.code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert status.error_info is not None
        assert status.error_info.reason == "OVERLOADED"

        watchers = [
            health_pb2_grpc.HealthStub(svc.channel).Watch(health_pb2.HealthCheckRequest(service=""))
            for _ in range(3)
        ]
        for watch in watchers:
            assert (await watch.read()).status == health_pb2.HealthCheckResponse.SERVING
            watch.cancel()

        first.cancel()
        await eventually(probe.stream_cancelled.is_set)
        third = ticks(StringValue())
        assert (await third.read()).value == "0", "the stream slot was given back"
        third.cancel()


async def test_the_bound_is_exact_under_a_burst_of_concurrent_calls(sqlite_url: str) -> None:
    probe = Probe()
    async with running_service(
        "limiter", sqlite_url, extra_parts=probe.parts(), limiter={"max_in_flight": 5}
    ) as svc:
        block = ProbeClient(svc.channel).unary("Block")
        calls = [asyncio.ensure_future(block(StringValue(), timeout=20)) for _ in range(60)]
        await eventually(lambda: sum(c.done() for c in calls) == 55 and probe.entered == 5, within=10)
        for refused in [c for c in calls if c.done()]:
            error = refused.exception()
            assert isinstance(error, grpc.aio.AioRpcError)
            info = rich_status(error).error_info
            assert info is not None
            assert info.reason == "OVERLOADED"
        probe.release.set()
        results = await asyncio.gather(*calls, return_exceptions=True)
        assert sum(isinstance(r, StringValue) for r in results) == 5
        assert probe.entered == probe.finished == 5
