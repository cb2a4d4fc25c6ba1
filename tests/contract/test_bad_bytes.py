"""Whatever bytes a client sends, the answer is a status with ErrorInfo (or a result) — never UNKNOWN.

grpc.aio decodes a request before the handler runs and would answer a decoding failure with UNKNOWN; the
runtime answers INVALID_ARGUMENT instead. Property-tested with arbitrary bytes against real RPCs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.contract.probe import SERVICE, Probe
from tests.harness import RunningService, eventually, rich_status, running_service

UNARY_PATHS = [
    f"/{SERVICE}/Echo",
    "/foundation.limiter.v1.LimiterService/Check",
    "/foundation.limiter.v1.LimiterService/CreateLimiter",
    "/envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit",
]


@pytest.fixture
async def limiter(sqlite_url: str) -> AsyncIterator[RunningService]:
    async with running_service("limiter", sqlite_url, extra_parts=Probe().parts()) as svc:
        yield svc


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(UNARY_PATHS), payload=st.binary(max_size=64))
async def test_any_request_bytes_get_a_status_never_unknown(
    limiter: RunningService, path: str, payload: bytes
) -> None:
    call = limiter.channel.unary_unary(path, None, None)
    try:
        await call(payload, timeout=10)
    except grpc.aio.AioRpcError as error:
        status = rich_status(error)
        assert status.code != grpc.StatusCode.UNKNOWN, status.message
        assert status.error_info is not None, f"{status.code.name} without ErrorInfo: {status.message}"


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(messages=st.lists(st.binary(max_size=32), max_size=4))
async def test_any_streamed_bytes_get_a_status_never_unknown(
    limiter: RunningService, messages: list[bytes]
) -> None:
    before = await collect_codes(limiter)
    call = limiter.channel.stream_unary(f"/{SERVICE}/Collect", None, None)
    try:
        await call(iter(messages), timeout=10)
    except grpc.aio.AioRpcError as error:
        status = rich_status(error)
        if not _lost_send_race(error):
            assert status.code == grpc.StatusCode.INVALID_ARGUMENT, status.message
            assert status.error_info is not None
    # What the server answered, whatever the client saw: one call more, ended OK or INVALID_ARGUMENT.
    await eventually(lambda: _one_more(limiter, before))
    after = await collect_codes(limiter)
    assert set(after) - set(before) <= {"OK", "INVALID_ARGUMENT"}
    assert all(after[code] == before.get(code, 0) for code in after if code not in ("OK", "INVALID_ARGUMENT"))


def _lost_send_race(error: grpc.aio.AioRpcError) -> bool:
    """The client's own core failed a send because the server had already answered (and closed the stream):
    grpc.aio then reports a local INTERNAL instead of the server's status."""
    return error.code() is grpc.StatusCode.INTERNAL and "SendMessageOperation" in (
        error.debug_error_string() or ""
    )


async def collect_codes(svc: RunningService) -> dict[str, float]:
    """grpc_server_handled_total of the probe's Collect, by code, from the server's metrics endpoint."""
    async with httpx.AsyncClient() as client:
        text = (await client.get(svc.metrics_url, timeout=5)).text
    codes: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("grpc_server_handled_total{") and 'grpc_method="Collect"' in line:
            code = line.split('grpc_code="', 1)[1].split('"', 1)[0]
            codes[code] = float(line.rsplit(" ", 1)[1])
    return codes


async def _one_more(svc: RunningService, before: dict[str, float]) -> bool:
    return sum((await collect_codes(svc)).values()) == sum(before.values()) + 1
