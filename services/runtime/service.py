"""What a service module receives from the runtime and what it gives back.

Each `services/<svc>/server.py` (and `gateway/server.py`) exposes `build(ctx: ServiceContext) -> ServiceParts`.
The runtime's server (services.runtime.server.ServiceApp) opens the store, creates the supervisor, resource
manager, metrics and event publisher, calls `build`, registers the returned servicers, serves health and
reflection for `service_names`, runs `on_start` hooks, and at shutdown runs `on_stop` hooks in reverse order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import grpc
import structlog

from services.runtime.config import ServiceSettings, Settings

if TYPE_CHECKING:
    from services.runtime.events import EventPublisher
    from services.runtime.health import HealthReporter
    from services.runtime.metrics import Metrics
    from services.runtime.resources import ResourceManager
    from services.runtime.store import Store
    from services.runtime.supervisor import Supervisor


@dataclass
class ServiceContext:
    """Everything a service gets from the runtime. One per process (per ServiceApp)."""

    name: str
    """Short name: `limiter`, `cache`, `pool`, `signals`, `gateway`."""
    settings: Settings
    store: Store | None
    """Open store (None only for processes that keep no state, e.g. the gateway)."""
    supervisor: Supervisor
    resources: ResourceManager
    metrics: Metrics
    events: EventPublisher
    health: HealthReporter
    shutting_down: asyncio.Event
    """Set when graceful shutdown begins; long-running handlers stop on it."""
    log: structlog.stdlib.BoundLogger

    @property
    def service_settings(self) -> ServiceSettings:
        """This service's own section of the settings (`settings.limiter`, …)."""
        return self.settings.service(self.name)

    @property
    def domain(self) -> str:
        """ErrorInfo domain of this service, e.g. `limiter.foundation`."""
        return f"{self.name}.foundation"


Hook = Callable[[], Awaitable[None]]


@dataclass
class ServiceParts:
    """What `build(ctx)` returns."""

    register: list[Callable[[grpc.aio.Server], None]]
    """Callables adding servicers to the server, e.g. `lambda s: add_LimiterServiceServicer_to_server(x, s)`."""
    service_names: list[str]
    """Full names served (for health and reflection), e.g. `foundation.limiter.v1.LimiterService`."""
    on_start: list[Hook] = field(default_factory=list)
    """Run after the store is open and before the port reports SERVING."""
    on_stop: list[Hook] = field(default_factory=list)
    """Run at shutdown after the server stopped taking calls, in reverse order, before the store closes."""
