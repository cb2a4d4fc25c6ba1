"""The signals process (stub): its contract is served, every method answers UNIMPLEMENTED for now."""

from __future__ import annotations

from foundation.signals.v1 import signals_pb2
from services.runtime.service import ServiceContext, ServiceParts
from services.runtime.unimplemented import unimplemented_parts


def build(ctx: ServiceContext) -> ServiceParts:
    """foundation.signals.v1.SignalService with every method UNIMPLEMENTED."""
    return unimplemented_parts(signals_pb2.DESCRIPTOR.services_by_name["SignalService"])
