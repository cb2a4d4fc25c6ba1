"""The limiter: single-item `Check` at 64 in flight, and batched `Check`s of 100 items, on SQLite and PostgreSQL.

Targets (issue 4): single-item Check ≥ 0.75× the no-op ceiling on SQLite and ≥ 0.5× on PostgreSQL, p99 ≤ 2× the
ceiling's; a batch of 100 items ≥ 50,000 decisions/s on SQLite. The limiter is GCRA with a limit far above the
load (every check is a real decision that consumes), created through the API before the first request.
*distinct keys*: each of the 64 workers cycles through its own 1,000 keys; *one hot key*: every check on the same
key (the writer merges duplicates). Peer: the `limits` library (SlidingWindowCounterRateLimiter, async redis-py)
on a Redis server of its own, from the same client process, the same keys.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractContextManager, asynccontextmanager

import grpc
from google.protobuf import duration_pb2
from limits import RateLimitItemPerSecond, storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter

from bench.harness import Case, Counters, Peer, Scenario
from bench.loadgen import RequestFn
from bench.servers import Backend, ServerProcess, free_port, server_process, service_process
from foundation.limiter.v1 import limiter_pb2 as pb
from foundation.limiter.v1 import limiter_pb2_grpc as rpc

LIMIT = 10**12
"""Per second: far above any load here, so every check is allowed and consumes."""
KEYS_PER_WORKER = 1000
BATCH = 100


def _keys(hot: bool) -> Callable[[int], str]:
    sent = [0] * 4096

    def key(worker: int) -> str:
        if hot:
            return "hot"
        sent[worker] += 1
        return f"w{worker}:{sent[worker] % KEYS_PER_WORKER}"

    return key


def _checker(channel: grpc.aio.Channel, *, hot: bool, batch: int = 1) -> RequestFn:
    stub = rpc.LimiterServiceStub(channel)
    key = _keys(hot)
    created = asyncio.Lock()
    ready = False
    mode = pb.CheckRequest.MODE_INDEPENDENT if batch > 1 else pb.CheckRequest.MODE_ALL_OR_NOTHING

    async def ensure_limiter() -> None:
        nonlocal ready
        async with created:
            if ready:
                return
            try:
                await stub.CreateLimiter(
                    pb.CreateLimiterRequest(
                        limiter_id="bench",
                        limiter=pb.Limiter(limit=LIMIT, period=duration_pb2.Duration(seconds=1)),
                    )
                )
            except grpc.aio.AioRpcError as error:
                if error.code() is not grpc.StatusCode.ALREADY_EXISTS:
                    raise
            ready = True

    async def send(worker: int) -> object:
        if not ready:
            await ensure_limiter()
        items = [pb.CheckItem(limiter="limiters/bench", key=key(worker)) for _ in range(batch)]
        response = await stub.Check(pb.CheckRequest(items=items, mode=mode))
        if not response.allowed:
            raise RuntimeError("a check was denied: the limit is meant to be out of reach")
        return response

    return send


async def decision_counters(channel: grpc.aio.Channel) -> Counters:
    """Items decided so far (GetStats, this process's unflushed counts included) and a clock."""
    stats = await rpc.LimiterServiceStub(channel).GetStats(pb.GetStatsRequest(limiter="limiters/bench"))
    return {"decisions": float(stats.total.checks), "seconds": time.monotonic()}


def decisions_per_second(increase: Counters) -> dict[str, float]:
    """Decisions per second over one run."""
    seconds = increase.get("seconds", 0.0)
    return {"decisions_per_s": increase.get("decisions", 0.0) / seconds if seconds else float("nan")}


def redis_server() -> AbstractContextManager[ServerProcess]:
    """A Redis of the peer's own (nothing on disk), on a free port."""
    port = free_port()
    argv = ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"]
    return server_process("redis", argv, address=f"127.0.0.1:{port}")


def limits_peer(hot: bool) -> Peer:
    """The `limits` library on Redis, one hit per request on the same keys."""

    @asynccontextmanager
    async def client(address: str) -> AsyncIterator[RequestFn]:
        backend = storage.storage_from_string(f"async+redis://{address}", implementation="redispy")
        limiter = SlidingWindowCounterRateLimiter(backend)
        item = RateLimitItemPerSecond(10**9)
        key = _keys(hot)

        async def hit(worker: int) -> object:
            if not await limiter.hit(item, "bench", key(worker)):
                raise RuntimeError("the peer denied a hit")
            return None

        yield hit

    return Peer(name="limits SlidingWindowCounter on Redis", server=redis_server, client=client)


def _single(backend: Backend, hot: bool) -> Case:
    return Case(
        name="single-item Check, " + ("one hot key" if hot else "distinct keys"),
        backend=backend,
        server=lambda: service_process("limiter", backend),
        request=lambda channel: _checker(channel, hot=hot),
        target=0.75 if backend == "sqlite" else 0.5,
        peer=limits_peer(hot),
        counters=decision_counters,
        derive=decisions_per_second,
    )


def _batched(backend: Backend, hot: bool = False) -> Case:
    return Case(
        name=f"Check of {BATCH} items (INDEPENDENT), " + ("one hot key" if hot else "distinct keys"),
        backend=backend,
        server=lambda: service_process("limiter", backend),
        request=lambda channel: _checker(channel, hot=hot, batch=BATCH),
        counters=decision_counters,
        derive=decisions_per_second,
    )


def _cases() -> list[Case]:
    backends: tuple[Backend, ...] = ("sqlite", "postgresql")
    single = [_single(backend, hot) for backend in backends for hot in (False, True)]
    return single + [_batched(backend) for backend in backends]


SCENARIO = Scenario(
    name="limiter",
    description="Check through the limiter (GCRA), single items and batches of 100; peer: `limits` on Redis",
    cases=_cases,
)
