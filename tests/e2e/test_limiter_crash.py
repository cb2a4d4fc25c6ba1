"""kill -9 of a limiter replica under load, then restart: no acknowledged decision is lost.

A decision a client received as `allowed` was committed before the response left (the writer commits a batch
before resolving its futures), so after a crash the key has consumed at least every acknowledged unit, and at
most those plus the checks that were in flight when the process died.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path

import grpc
from google.protobuf import duration_pb2

from foundation.limiter.v1 import limiter_pb2 as pb
from foundation.limiter.v1 import limiter_pb2_grpc as rpc
from services.runtime.child_output import ReadyLine
from tests.e2e.processes import READY_TIMEOUT, Proc, clean_environment, start

LIMIT = 100_000
CLIENTS = 16


async def serve(db_url: str, tmp_path: Path, name: str) -> tuple[Proc, str]:
    env = clean_environment(FOUNDATION_DATABASE_URL=db_url)
    proc = start(["serve", "limiter", "--port", "0"], tmp_path, env, name=name)
    out = await proc.wait_for_stdout("\n", within=READY_TIMEOUT)
    ready = ReadyLine.parse(out.splitlines()[0])
    assert ready is not None, proc.describe()
    return proc, ready.address


async def test_kill_9_under_load_loses_no_acknowledged_decision(db_url: str, tmp_path: Path) -> None:
    proc, address = await serve(db_url, tmp_path, "first")
    acknowledged = 0
    enough = asyncio.Event()
    try:
        async with grpc.aio.insecure_channel(address) as channel:
            stub = rpc.LimiterServiceStub(channel)
            await stub.CreateLimiter(
                pb.CreateLimiterRequest(
                    limiter_id="crash",
                    limiter=pb.Limiter(
                        algorithm=pb.Limiter.ALGORITHM_FIXED_WINDOW,
                        limit=LIMIT,
                        period=duration_pb2.Duration(seconds=366 * 86_400),
                    ),
                )
            )
            request = pb.CheckRequest(items=[pb.CheckItem(limiter="limiters/crash", key="k")])

            async def client() -> None:
                nonlocal acknowledged
                while True:
                    try:
                        response = await stub.Check(request)
                    except grpc.aio.AioRpcError:
                        return  # the process died under this call
                    assert response.allowed
                    acknowledged += 1
                    if acknowledged >= 500:
                        enough.set()

            clients = [asyncio.ensure_future(client()) for _ in range(CLIENTS)]
            await asyncio.wait_for(enough.wait(), timeout=60)
            proc.signal(signal.SIGKILL)
            unanswered = CLIENTS  # at most one call per client was in flight when the process died
            await asyncio.wait_for(asyncio.gather(*clients), timeout=30)
    finally:
        proc.kill()
    assert await proc.wait_exit(10) == -signal.SIGKILL

    restarted, address = await serve(db_url, tmp_path, "second")
    try:
        async with grpc.aio.insecure_channel(address) as channel:
            status = await rpc.LimiterServiceStub(channel).GetStatus(
                pb.GetStatusRequest(limiter="limiters/crash", key="k")
            )
    finally:
        with contextlib.suppress(ProcessLookupError):
            restarted.signal(signal.SIGTERM)
        await restarted.wait_exit(30)
    consumed = LIMIT - status.remaining
    assert acknowledged <= consumed <= acknowledged + unanswered, (acknowledged, consumed)
