"""The limiter process: LimiterService and Envoy's RateLimitService on one port, over the store."""

from __future__ import annotations

from pathlib import Path

import grpc
from envoy.service.ratelimit.v3 import rls_pb2, rls_pb2_grpc

from foundation.limiter.v1 import limiter_pb2, limiter_pb2_grpc
from services.limiter import envoy_config
from services.limiter.envoy import EnvoyRateLimitServicer
from services.limiter.service import KEYS_RESOURCE, Limiters
from services.limiter.servicer import LimiterServicer
from services.limiter.statements import SqlClock
from services.runtime.server import StartupError
from services.runtime.service import ServiceContext, ServiceParts

STATS_FLUSH_S = 1.0
"""How often decision counters are added to the shared stats table (GetStats lags other replicas by this)."""


def build(ctx: ServiceContext, *, clock: SqlClock | None = None) -> ServiceParts:
    """Wires the limiter: servicers, the key bound, the sweeper and the stats flush (both supervised)."""
    limiters = Limiters(ctx, clock)
    settings = ctx.settings.limiter
    servicer = LimiterServicer(limiters)
    envoy = EnvoyRateLimitServicer(limiters, _envoy_config(settings.envoy_config))

    def register(server: grpc.aio.Server) -> None:
        limiter_pb2_grpc.add_LimiterServiceServicer_to_server(servicer, server)
        rls_pb2_grpc.add_RateLimitServiceServicer_to_server(envoy, server)

    async def start() -> None:
        limiters.start()
        await envoy.sync()
        ctx.resources.register(KEYS_RESOURCE, settings.max_keys, limiters.count_keys)
        ctx.supervisor.every("limiter.sweep", settings.sweep_interval_s, limiters.sweep)
        ctx.supervisor.every("limiter.stats_flush", STATS_FLUSH_S, limiters.stats.flush)

    async def stop() -> None:
        await limiters.stats.flush()

    return ServiceParts(
        register=[register],
        service_names=[
            limiter_pb2.DESCRIPTOR.services_by_name["LimiterService"].full_name,
            rls_pb2.DESCRIPTOR.services_by_name["RateLimitService"].full_name,
        ],
        on_start=[start],
        on_stop=[stop],
    )


def _envoy_config(path: Path | None) -> envoy_config.EnvoyConfig:
    """The Envoy ratelimit configuration, if any; a bad file stops the start with one line."""
    if path is None:
        return envoy_config.EnvoyConfig()
    try:
        return envoy_config.load(path)
    except envoy_config.EnvoyConfigError as exc:
        raise StartupError(f"limiter.envoy_config: {exc}") from None
