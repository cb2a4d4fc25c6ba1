"""SIGTERM to `foundation serve <svc>`: open streams end UNAVAILABLE and the process exits 0 within its grace.

Each of the five processes runs as a real subprocess on port 0 (its port read from the READY line), on both
backends for the services that keep state.
"""

from __future__ import annotations

import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.runtime.child_output import ReadyLine
from tests.e2e.processes import READY_TIMEOUT, Proc, clean_environment, start

GRACE_S = 2.0
EXIT_BOUND = GRACE_S + 8.0
"""Grace + margin for closing the store, plus slack for a shared 2-core machine."""

STATEFUL = ("signals", "limiter", "cache", "pool")


async def _serve_until_sigterm(service: str, database_url: str, tmp_path: Path) -> None:
    env = clean_environment(
        FOUNDATION_DATABASE_URL=database_url,
        FOUNDATION_SHUTDOWN_GRACE_S=str(GRACE_S),
        FOUNDATION_GATEWAY__HTTP_PORT="0",
    )
    proc = start(["serve", service, "--port", "0"], tmp_path, env, name=service)
    try:
        out = await proc.wait_for_stdout("\n", within=READY_TIMEOUT)
        ready = ReadyLine.parse(out.splitlines()[0])
        assert ready is not None, proc.describe()
        assert ready.service == service
        await _watch_through_sigterm(proc, ready.address)
        started = time.monotonic()
        assert await proc.wait_exit(EXIT_BOUND) == 0, proc.describe()
        assert time.monotonic() - started < EXIT_BOUND
        assert "Traceback" not in proc.stderr(), proc.describe()
    finally:
        proc.kill()


async def _watch_through_sigterm(proc: Proc, address: str) -> None:
    async with grpc.aio.insecure_channel(address) as channel:
        stream = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=""))
        messages = aiter(stream)
        first = await anext(messages)
        assert first.status == health_pb2.HealthCheckResponse.SERVING
        proc.signal(signal.SIGTERM)
        seen: list[int] = []
        with pytest.raises(grpc.aio.AioRpcError) as ended:
            await _read_until_end(messages, seen)
        assert ended.value.code() == grpc.StatusCode.UNAVAILABLE, (ended.value, proc.describe())
        # Health may announce NOT_SERVING before the stream ends, never SERVING again.
        assert all(status == health_pb2.HealthCheckResponse.NOT_SERVING for status in seen), seen


async def _read_until_end(messages: AsyncIterator[Any], seen: list[int]) -> None:
    async for message in messages:
        seen.append(message.status)
    raise AssertionError(f"stream ended OK after statuses {seen}")


@pytest.mark.parametrize("service", STATEFUL)
async def test_sigterm_ends_streams_unavailable_and_exits_zero(
    service: str, db_url: str, tmp_path: Path
) -> None:
    await _serve_until_sigterm(service, db_url, tmp_path)


async def test_sigterm_stops_the_gateway_cleanly(tmp_path: Path) -> None:
    await _serve_until_sigterm("gateway", f"sqlite:///{tmp_path / 'unused.db'}", tmp_path)
