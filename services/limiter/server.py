"""The limiter process (stub): its contracts are served, every method answers UNIMPLEMENTED for now."""

from __future__ import annotations

from envoy.service.ratelimit.v3 import rls_pb2

from foundation.limiter.v1 import limiter_pb2
from services.runtime.service import ServiceContext, ServiceParts
from services.runtime.unimplemented import unimplemented_parts


def build(ctx: ServiceContext) -> ServiceParts:
    """LimiterService and Envoy's RateLimitService on one port, both UNIMPLEMENTED."""
    return unimplemented_parts(
        limiter_pb2.DESCRIPTOR.services_by_name["LimiterService"],
        rls_pb2.DESCRIPTOR.services_by_name["RateLimitService"],
    )
