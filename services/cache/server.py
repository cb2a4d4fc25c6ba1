"""The cache process (stub): its contract is served, every method answers UNIMPLEMENTED for now."""

from __future__ import annotations

from foundation.cache.v1 import cache_pb2
from services.runtime.service import ServiceContext, ServiceParts
from services.runtime.unimplemented import unimplemented_parts


def build(ctx: ServiceContext) -> ServiceParts:
    """foundation.cache.v1.CacheService with every method UNIMPLEMENTED."""
    return unimplemented_parts(cache_pb2.DESCRIPTOR.services_by_name["CacheService"])
