"""A test-only gRPC service (added to a real server with `extra_parts`) whose handlers misbehave on purpose.

Messages are `google.protobuf.StringValue`, so no generated code is needed; `ProbeClient` calls it over a
real channel. Every handler style the runtime must wrap is here: unary, async-generator and
`context.write` server streams, client streams and bidirectional streams.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
from google.protobuf.wrappers_pb2 import StringValue

from services.runtime import deadlines
from services.runtime.errors import InvalidArgument, NotFound, ResourceExhausted
from services.runtime.service import ServiceParts

SERVICE = "foundation.test.v1.Probe"


class Probe:
    """Handlers and the levers a test pulls (events to block on, counters)."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.entered = 0
        self.finished = 0
        self.stream_cancelled = asyncio.Event()

    async def echo(self, request: StringValue, context: Any) -> StringValue:
        """Answers with the request's value."""
        return StringValue(value=request.value)

    async def crash(self, request: StringValue, context: Any) -> StringValue:
        """Raises an unexpected exception (→ INTERNAL with an error id)."""
        raise RuntimeError(f"deliberate failure: {request.value}")

    async def refuse(self, request: StringValue, context: Any) -> StringValue:
        """Raises the ServiceError the request names."""
        if request.value == "not_found":
            raise NotFound("probes", "probes/x")
        if request.value == "exhausted":
            raise ResourceExhausted("no more", retry_after=2.5, subject="probes/x")
        raise InvalidArgument.of("value", "must be not_found or exhausted")

    async def wrong_type(self, request: StringValue, context: Any) -> Any:
        """Returns something that is not the response message (serialization fails)."""
        return {"not": "a message"}

    async def block(self, request: StringValue, context: Any) -> StringValue:
        """Waits until the test sets `release` (counts entries and exits)."""
        self.entered += 1
        await self.release.wait()
        self.finished += 1
        return StringValue(value="released")

    async def remaining(self, request: StringValue, context: Any) -> StringValue:
        """Reports the deadline left as the handler sees it (`deadlines.remaining()`)."""
        left = deadlines.remaining()
        return StringValue(value="none" if left is None else f"{left:.3f}")

    async def crash_generator(self, request: StringValue, context: Any) -> AsyncIterator[StringValue]:
        """An async-generator stream that fails after one message."""
        yield StringValue(value="first")
        raise RuntimeError("generator failure after one message")

    async def crash_writer(self, request: StringValue, context: Any) -> None:
        """A `context.write` stream that fails after one message."""
        await context.write(StringValue(value="first"))
        raise RuntimeError("writer failure after one message")

    async def ticks(self, request: StringValue, context: Any) -> AsyncIterator[StringValue]:
        """An endless stream, like a subscription: only shutdown or the client ends it."""
        n = 0
        try:
            while True:
                yield StringValue(value=str(n))
                n += 1
                await asyncio.sleep(0.01)
        except (asyncio.CancelledError, GeneratorExit):
            # Cancelled while sleeping, or closed at its `yield` by the runtime (cancelled while writing).
            self.stream_cancelled.set()
            raise

    async def collect(self, requests: AsyncIterator[StringValue], context: Any) -> StringValue:
        """A client stream joined into one answer; fails on `boom`."""
        values = []
        async for message in requests:
            if message.value == "boom":
                raise RuntimeError("client stream failure")
            values.append(message.value)
        return StringValue(value=",".join(values))

    async def chat(self, requests: AsyncIterator[StringValue], context: Any) -> AsyncIterator[StringValue]:
        """A bidirectional stream echoing upper-case; fails on `boom`."""
        async for message in requests:
            if message.value == "boom":
                raise RuntimeError("bidi stream failure")
            yield StringValue(value=message.value.upper())

    def parts(self) -> ServiceParts:
        """ServiceParts adding this service to a server."""
        kinds: dict[str, tuple[Callable[..., Any], Callable[..., Any]]] = {
            "Echo": (grpc.unary_unary_rpc_method_handler, self.echo),
            "Crash": (grpc.unary_unary_rpc_method_handler, self.crash),
            "Refuse": (grpc.unary_unary_rpc_method_handler, self.refuse),
            "WrongType": (grpc.unary_unary_rpc_method_handler, self.wrong_type),
            "Block": (grpc.unary_unary_rpc_method_handler, self.block),
            "Remaining": (grpc.unary_unary_rpc_method_handler, self.remaining),
            "CrashGenerator": (grpc.unary_stream_rpc_method_handler, self.crash_generator),
            "CrashWriter": (grpc.unary_stream_rpc_method_handler, self.crash_writer),
            "Ticks": (grpc.unary_stream_rpc_method_handler, self.ticks),
            "Collect": (grpc.stream_unary_rpc_method_handler, self.collect),
            "Chat": (grpc.stream_stream_rpc_method_handler, self.chat),
        }
        handlers = {
            name: factory(
                fn,
                request_deserializer=StringValue.FromString,
                response_serializer=StringValue.SerializeToString,
            )
            for name, (factory, fn) in kinds.items()
        }
        generic = grpc.method_handlers_generic_handler(SERVICE, handlers)

        def register(server: grpc.aio.Server) -> None:
            server.add_generic_rpc_handlers((generic,))

        return ServiceParts(register=[register], service_names=[SERVICE])


class ProbeClient:
    """Typed calls to the probe service over a real channel."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._channel = channel

    def _path(self, method: str) -> str:
        return f"/{SERVICE}/{method}"

    def unary(self, method: str) -> Any:
        """A unary multi-callable for `method`."""
        return self._channel.unary_unary(
            self._path(method),
            request_serializer=StringValue.SerializeToString,
            response_deserializer=StringValue.FromString,
        )

    def server_stream(self, method: str) -> Any:
        """A server-streaming multi-callable for `method`."""
        return self._channel.unary_stream(
            self._path(method),
            request_serializer=StringValue.SerializeToString,
            response_deserializer=StringValue.FromString,
        )

    def client_stream(self, method: str) -> Any:
        """A client-streaming multi-callable for `method`."""
        return self._channel.stream_unary(
            self._path(method),
            request_serializer=StringValue.SerializeToString,
            response_deserializer=StringValue.FromString,
        )

    def bidi(self, method: str) -> Any:
        """A bidirectional multi-callable for `method`."""
        return self._channel.stream_stream(
            self._path(method),
            request_serializer=StringValue.SerializeToString,
            response_deserializer=StringValue.FromString,
        )
