"""The limiter's peer: the `limits` library (asyncio API, redis-py) on a Redis server of its own.

This is what a Python user would pick instead of the limiter service: `MovingWindowRateLimiter.hit()` on
`async+redis://`. The moving window is the library's exact strategy (a log of timestamps per key, checked and
appended in one Lua script), the nearest to the limiter's exact GCRA; its fixed-window and sliding-window-counter
strategies measured within a few percent of it on this machine, because the client's Python dominates all three.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractContextManager, asynccontextmanager

from limits import RateLimitItem, RateLimitItemPerDay, RateLimitItemPerSecond, storage
from limits.aio.strategies import MovingWindowRateLimiter

from bench.harness import Peer
from bench.loadgen import RequestFn
from bench.servers import ServerProcess, free_port, server_process

NAME = "limits MovingWindow on Redis"

Picker = Callable[[int], tuple[bool, str]]
"""Given a worker index, whether its next check goes to the closed limit, and on which key."""


def redis_server() -> AbstractContextManager[ServerProcess]:
    """A Redis of the peer's own (nothing on disk), on a free port."""
    port = free_port()
    argv = ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"]
    return server_process("redis", argv, address=f"127.0.0.1:{port}")


def limits_peer(
    make_picker: Callable[[], Picker], *, open_per_second: int, strict: bool, closed_per_day: int = 1
) -> Peer:
    """One `hit()` per request on the keys `make_picker()` chooses, with the scenario's two limits.

    `strict`: every hit is expected to be allowed (a denial then fails the call, as it does for the limiter).
    """

    @asynccontextmanager
    async def client(address: str) -> AsyncIterator[RequestFn]:
        backend = storage.storage_from_string(f"async+redis://{address}", implementation="redispy")
        limiter = MovingWindowRateLimiter(backend)
        open_item: RateLimitItem = RateLimitItemPerSecond(open_per_second)
        closed_item: RateLimitItem = RateLimitItemPerDay(closed_per_day)
        pick = make_picker()

        async def hit(worker: int) -> object:
            closed, key = pick(worker)
            allowed = await limiter.hit(closed_item if closed else open_item, "bench", key)
            if strict and not allowed:
                raise RuntimeError("the peer denied a hit: the limit is meant to be out of reach")
            return allowed

        yield hit

    return Peer(name=NAME, server=redis_server, client=client)
