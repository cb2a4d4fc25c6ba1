"""The suite's processes and their start order (DESIGN.md §2): an acyclic graph, started level by level."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from services.runtime.service import ServiceContext, ServiceParts

MODULES: dict[str, str] = {
    "signals": "services.signals.server",
    "limiter": "services.limiter.server",
    "cache": "services.cache.server",
    "pool": "services.pool.server",
    "gateway": "gateway.server",
}
"""Service name → module exposing `build(ctx) -> ServiceParts`."""

START_ORDER: tuple[tuple[str, ...], ...] = (("signals",), ("limiter", "cache", "pool"), ("gateway",))
"""Each level starts only after every service of the previous levels reports SERVING."""

STATELESS: frozenset[str] = frozenset({"gateway"})
"""Processes that open no store."""


def builder(service: str) -> Callable[[ServiceContext], ServiceParts]:
    """The `build` function of a service by name."""
    try:
        module = importlib.import_module(MODULES[service])
    except KeyError:
        raise KeyError(f"unknown service {service!r}; known: {', '.join(MODULES)}") from None
    build: Callable[[ServiceContext], ServiceParts] = module.build
    return build
