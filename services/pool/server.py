"""The pool process (stub): its contract is served, every method answers UNIMPLEMENTED for now."""

from __future__ import annotations

from foundation.pool.v1 import pool_pb2
from services.runtime.service import ServiceContext, ServiceParts
from services.runtime.unimplemented import unimplemented_parts


def build(ctx: ServiceContext) -> ServiceParts:
    """foundation.pool.v1.PoolService with every method UNIMPLEMENTED."""
    return unimplemented_parts(pool_pb2.DESCRIPTOR.services_by_name["PoolService"])
