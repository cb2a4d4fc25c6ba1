"""The gateway process (stub): starts, serves health and reflection, nothing else yet.

HTTP/JSON transcoding, pass-through to the services, auth and quotas come with the gateway issue.
"""

from __future__ import annotations

from services.runtime.service import ServiceContext, ServiceParts


def build(ctx: ServiceContext) -> ServiceParts:
    """No gRPC services of its own yet: the runtime adds health and reflection."""
    return ServiceParts(register=[], service_names=[])
