"""The no-op ceiling itself: `grpc.health.v1.Health/Check` with 64 calls in flight.

Every other scenario is reported as a ratio to this figure, measured again on its own server in its own run.
Here the scenario request *is* the ceiling request, so its ratio shows the method's noise (ideally 1.00×),
and the peer is a bare grpc.aio server (health only, no interceptors): the peer ratio is what the runtime's
interceptors, admission control and metrics cost on the cheapest possible call.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractContextManager, asynccontextmanager

import grpc

from bench.harness import Case, Peer, Scenario, health_check
from bench.loadgen import RequestFn
from bench.servers import ServerProcess, foundation_command, server_process, service_process


def bare_server() -> AbstractContextManager[ServerProcess]:
    """A bare grpc.aio health server in its own process."""
    return server_process("bare", foundation_command("bench.bare_server"))


@asynccontextmanager
async def health_client(address: str) -> AsyncIterator[RequestFn]:
    """A channel to `address` and the health Check request over it."""
    async with grpc.aio.insecure_channel(address) as channel:
        yield health_check(channel)


def _cases() -> list[Case]:
    return [
        Case(
            name="health Check, foundation serve limiter",
            backend="-",
            server=lambda: service_process("limiter", "sqlite"),
            request=health_check,
            peer=Peer(name="bare grpc.aio", server=bare_server, client=health_client),
        )
    ]


SCENARIO = Scenario(
    name="ceiling",
    description="grpc.health.v1 Check on a Foundation process, 64 in flight; peer: a bare grpc.aio server",
    cases=_cases,
)
