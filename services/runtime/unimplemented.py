"""Serving a contract before its implementation: every method answers UNIMPLEMENTED with ErrorInfo.

Built from the service descriptor alone (no servicer class), so a stub server lists the real service in
reflection, decodes real requests and answers every method with a proper status. A service replaces its
stub method by method as it is implemented (`implemented=` leaves those to its own servicer).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

import grpc
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from google.protobuf.message_factory import GetMessageClass

from services.runtime.errors import Unimplemented
from services.runtime.service import ServiceParts


def _method_handler(service: ServiceDescriptor, method: MethodDescriptor) -> grpc.RpcMethodHandler[Any, Any]:
    full = f"/{service.full_name}/{method.name}"
    request_type = GetMessageClass(method.input_type)
    response_type = GetMessageClass(method.output_type)

    async def unimplemented(request: Any, context: Any) -> Any:
        raise Unimplemented(f"{full} is in the contract but not implemented yet")

    serde: dict[str, Any] = {
        "request_deserializer": request_type.FromString,
        "response_serializer": response_type.SerializeToString,
    }
    factory: Callable[..., grpc.RpcMethodHandler[Any, Any]] = {
        (False, False): grpc.unary_unary_rpc_method_handler,
        (False, True): grpc.unary_stream_rpc_method_handler,
        (True, False): grpc.stream_unary_rpc_method_handler,
        (True, True): grpc.stream_stream_rpc_method_handler,
    }[(method.client_streaming, method.server_streaming)]
    return factory(unimplemented, **serde)


def unimplemented_handler(
    service: ServiceDescriptor, *, implemented: Collection[str] = ()
) -> grpc.GenericRpcHandler[Any, Any]:
    """A generic handler answering every method of `service` (except `implemented`) with UNIMPLEMENTED."""
    handlers = {
        method.name: _method_handler(service, method)
        for method in service.methods
        if method.name not in implemented
    }
    return grpc.method_handlers_generic_handler(service.full_name, handlers)


def unimplemented_parts(*services: ServiceDescriptor) -> ServiceParts:
    """ServiceParts serving each of `services` with every method UNIMPLEMENTED."""
    handlers = [unimplemented_handler(service) for service in services]

    def register(server: grpc.aio.Server) -> None:
        server.add_generic_rpc_handlers(handlers)

    return ServiceParts(register=[register], service_names=[service.full_name for service in services])
