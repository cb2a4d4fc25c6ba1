"""A bare grpc.aio server with nothing but `grpc.health.v1` (no interceptors, no store, no metrics).

It is the reference a plain grpc.aio user gets: the ceiling scenario compares the runtime's health Check with
it, which prices the runtime's interceptors. Run as `python -m bench.bare_server`; it prints
`READY bare <host>:<port> metrics=off` once serving and stops on SIGTERM/SIGINT.
"""

from __future__ import annotations

import asyncio
import signal
import sys

import grpc
from grpc_health.v1 import health, health_pb2_grpc


async def serve(host: str = "127.0.0.1") -> None:
    """Serves health on an ephemeral port until SIGTERM or SIGINT."""
    server = grpc.aio.server()
    servicer = health.aio.HealthServicer()  # type: ignore[attr-defined]  # grpc-stubs lacks aio
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port(f"{host}:0")
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    print(f"READY bare {host}:{port} metrics=off", flush=True)
    await stop.wait()
    await server.stop(grace=1.0)


if __name__ == "__main__":
    asyncio.run(serve(*sys.argv[1:2]))
