"""`grpc.health.v1` for one process: `""` (the whole process) and each service name it serves.

A name is SERVING only when both hold: the app declared it serving (`set_serving`) and the store answers.
A supervised probe (`probe_store`, run by the server every few seconds) pings the store and flips every
name to NOT_SERVING while it is down (two failed pings in a row), and back when it returns, so load balancers and the launcher route
around a replica that cannot do its work. Once graceful shutdown begins nothing flips back.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import grpc
import structlog
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

if TYPE_CHECKING:
    from services.runtime.store import Store

DOWN_AFTER = 2
"""Consecutive failed store pings before the process reports NOT_SERVING."""

SERVING: int = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING: int = health_pb2.HealthCheckResponse.NOT_SERVING
OVERALL = health.OVERALL_HEALTH
SERVICE_NAME: str = health.SERVICE_NAME


_AioHealthServicer: Any = health.aio.HealthServicer  # type: ignore[attr-defined]  # grpc-stubs lacks aio


class HealthReporter:
    """Owns the aio health servicer of one server and decides each name's status."""

    def __init__(self, log: structlog.stdlib.BoundLogger) -> None:
        self.servicer = _AioHealthServicer()
        self._log = log
        self._declared: dict[str, bool] = {OVERALL: False}
        self._store_ok = True
        self._failed_pings = 0
        self._shutting_down = False

    @property
    def store_ok(self) -> bool:
        """The store's state as last probed (True until a probe says otherwise)."""
        return self._store_ok

    def add_to_server(self, server: grpc.aio.Server) -> None:
        """Registers the health service on `server`."""
        health_pb2_grpc.add_HealthServicer_to_server(self.servicer, server)

    async def add_services(self, names: Iterable[str]) -> None:
        """Declares the service names this process serves (NOT_SERVING until `set_serving(True)`)."""
        for name in names:
            self._declared.setdefault(name, False)
        await self._publish()

    async def set_serving(self, serving: bool, name: str | None = None) -> None:
        """Declares one name (or, with None, every name and `""`) serving or not."""
        names = list(self._declared) if name is None else [name]
        for each in names:
            self._declared[each] = serving
        await self._publish()

    async def probe_store(self, store: Store, timeout: float = 1.0) -> bool:  # noqa: ASYNC109
        """Pings the store once and updates every name if its state changed; returns the state."""
        try:
            ok = bool(await store.ping(timeout=timeout))
        except Exception as exc:  # noqa: BLE001 - a failing ping is what the probe is for
            self._log.debug("store ping raised", error=repr(exc))
            ok = False
        # One failed ping on a loaded machine is not an outage: down only after DOWN_AFTER in a row, up at once.
        self._failed_pings = 0 if ok else self._failed_pings + 1
        if not ok and self._failed_pings < DOWN_AFTER:
            return self._store_ok
        if ok != self._store_ok:
            self._store_ok = ok
            if ok:
                self._log.info("store reachable again; serving")
            else:
                self._log.warning("store unreachable; reporting NOT_SERVING")
            await self._publish()
        return ok

    async def enter_graceful_shutdown(self) -> None:
        """Every name NOT_SERVING for good (watchers are told at once)."""
        self._shutting_down = True
        await self.servicer.enter_graceful_shutdown()

    def status(self, name: str = OVERALL) -> int:
        """The status currently reported for `name` (a HealthCheckResponse.ServingStatus value)."""
        if self._shutting_down:
            return NOT_SERVING
        return SERVING if self._declared.get(name, False) and self._store_ok else NOT_SERVING

    async def _publish(self) -> None:
        if self._shutting_down:
            return
        for name in self._declared:
            await self.servicer.set(name, self.status(name))
