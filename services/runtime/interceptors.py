"""The server interceptor: errors → statuses, admission, open-stream tracking, deadlines and metrics.

One interceptor does all five jobs in one wrapper per method, built once and cached: every layer of a
grpc.aio interceptor chain costs a coroutine frame and a handler lookup on every call, and the no-op call
is the ceiling every service is measured against.

Error mapping (DESIGN.md §4, errors): a `ServiceError` becomes its `google.rpc.Status`; `context.abort`
(AbortError) passes; a client's cancellation passes; the shutdown's own cancellation of a stream becomes
UNAVAILABLE (`SHUTTING_DOWN`); anything else becomes INTERNAL with an error id that is logged with the stack
and carried in ErrorInfo metadata. UNKNOWN never reaches a client: requests that cannot be decoded become
INVALID_ARGUMENT and responses are serialized inside the wrapper, because grpc would answer both failures
with UNKNOWN on its own.

All four kinds of handlers are wrapped, and both styles of streaming handlers (async generators and
`context.write` coroutines, like health `Watch`): a generator's messages are written by the wrapper itself,
so the whole call runs inside it and a cancellation always lands where it can be turned into a status.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, NoReturn

import grpc
import structlog

from services.runtime import deadlines
from services.runtime.admission import Admission, Gate
from services.runtime.errors import InvalidArgument, ServiceError, build_status
from services.runtime.metrics import MethodMetrics, RpcMetrics
from services.runtime.streams import StreamEntry, StreamRegistry

if TYPE_CHECKING:
    _ServerInterceptor = grpc.aio.ServerInterceptor[Any, Any]
    _Handler = grpc.RpcMethodHandler[Any, Any]
else:
    _ServerInterceptor = grpc.aio.ServerInterceptor
    _Handler = grpc.RpcMethodHandler

Context = Any
"""grpc.aio's servicer context (typed loosely: grpc-stubs lacks parts of its aio API)."""
Serializer = Callable[[Any], bytes]
Deserializer = Callable[[bytes], Any]

_CODE_BY_VALUE: dict[int, grpc.StatusCode] = {code.value[0]: code for code in grpc.StatusCode}
_KINDS = {
    (False, False): "unary",
    (False, True): "server_stream",
    (True, False): "client_stream",
    (True, True): "bidi_stream",
}


def _identity(message: Any) -> Any:
    return message


class _Undecodable:
    """Stands in for a unary request whose bytes did not parse; the wrapper answers INVALID_ARGUMENT."""

    __slots__ = ("error",)

    def __init__(self, error: InvalidArgument) -> None:
        self.error = error


def _decode_error(exc: Exception) -> InvalidArgument:
    return InvalidArgument.of("request", f"not a valid message: {exc}")


def _unary_request_decoder(deserialize: Deserializer) -> Deserializer:
    """grpc decodes a unary request before the handler runs; a failure there would be UNKNOWN."""

    def decode(data: bytes) -> Any:
        try:
            return deserialize(data)
        except Exception as exc:  # noqa: BLE001 - any parse failure is the client's bad input
            return _Undecodable(_decode_error(exc))

    return decode


def _stream_request_decoder(deserialize: Deserializer) -> Deserializer:
    """Streamed requests are decoded inside the handler (by `read()`), where a ServiceError is mapped."""

    def decode(data: bytes) -> Any:
        try:
            return deserialize(data)
        except Exception as exc:
            raise _decode_error(exc) from exc

    return decode


class _RecordingContext:
    """The servicer context as handlers see it.

    Records the code of an `abort` for the metrics (grpc.aio's own context reports OK after an abort and
    cannot be extended) and serializes what `write` is given (the wrapper owns serialization).
    """

    __slots__ = ("_context", "_serialize", "abort_code", "stream")

    def __init__(self, context: Context, serialize: Serializer) -> None:
        self._context = context
        self._serialize = serialize
        self.abort_code: grpc.StatusCode | None = None
        self.stream: StreamEntry | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)

    async def write(self, message: Any) -> None:
        await self._context.write(self._serialize(message))
        if self.stream is not None:
            self.stream.writes += 1

    async def abort(self, code: grpc.StatusCode, details: str = "", trailing_metadata: Any = ()) -> NoReturn:
        self.abort_code = code
        await self._context.abort(code, details, tuple(trailing_metadata))
        raise AssertionError("abort returned")  # pragma: no cover - grpc always raises AbortError

    async def abort_with_status(self, status: grpc.Status) -> NoReturn:
        await self.abort(status.code, status.details, status.trailing_metadata)


class _Call:
    """The state of one wrapped call: its context as the handler sees it, its code, its start time."""

    __slots__ = ("code", "context", "recording", "started")

    def __init__(self, context: Context, serialize: Serializer) -> None:
        self.context = context
        self.recording = _RecordingContext(context, serialize)
        self.code = grpc.StatusCode.OK
        self.started = time.perf_counter()

    def final_code(self) -> grpc.StatusCode:
        """The code the call ended with (a handler may also `set_code` and return normally)."""
        if self.code is grpc.StatusCode.OK:
            raw = self.context.code()
            code = raw if isinstance(raw, grpc.StatusCode) else _CODE_BY_VALUE.get(int(raw or 0))
            if code is not None:
                return code
        return self.code


class RuntimeInterceptor(_ServerInterceptor):
    """Wraps every method handler of one server."""

    def __init__(
        self,
        *,
        domain: str,
        log: structlog.stdlib.BoundLogger,
        admission: Admission,
        streams: StreamRegistry,
        rpc_metrics: RpcMetrics,
    ) -> None:
        self._domain = domain
        self._log = log
        self._admission = admission
        self._streams = streams
        self._metrics = rpc_metrics
        self._wrapped: dict[str, _Handler] = {}

    async def intercept_service(  # type: ignore[override]  # grpc-stubs forgets None: "no such method"
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[_Handler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> _Handler | None:
        """The wrapped handler of the called method (wrapped once, then cached), or None if unknown."""
        method = handler_call_details.method
        wrapped = self._wrapped.get(method)
        if wrapped is not None:
            return wrapped
        handler = await continuation(handler_call_details)
        if handler is None:  # unknown method: grpc answers UNIMPLEMENTED; not cached (clients pick names)
            return None
        wrapped = self._wrap(method, handler)
        self._wrapped[method] = wrapped
        return wrapped

    def _wrap(self, method: str, handler: _Handler) -> _Handler:
        request_streaming = bool(handler.request_streaming)
        response_streaming = bool(handler.response_streaming)
        streaming = request_streaming or response_streaming
        gate = self._admission.gate(method, streaming=streaming)
        metrics = self._metrics.method(method, _KINDS[(request_streaming, response_streaming)])
        serialize: Serializer = handler.response_serializer or _identity
        deserialize: Deserializer = handler.request_deserializer or _identity
        decoder = _stream_request_decoder if request_streaming else _unary_request_decoder
        serde = {"request_deserializer": decoder(deserialize), "response_serializer": None}
        if not response_streaming:
            inner = handler.stream_unary if request_streaming else handler.unary_unary
            unary = self._unary_response(method, inner, gate, metrics, serialize, streaming=streaming)
            factory = (
                grpc.stream_unary_rpc_method_handler
                if request_streaming
                else grpc.unary_unary_rpc_method_handler
            )
            return factory(unary, **serde)
        inner = handler.stream_stream if request_streaming else handler.unary_stream
        stream = self._stream_response(method, inner, gate, metrics, serialize)
        factory = (
            grpc.stream_stream_rpc_method_handler
            if request_streaming
            else grpc.unary_stream_rpc_method_handler
        )
        return factory(stream, **serde)

    def _unary_response(
        self,
        method: str,
        inner: Any,
        gate: Gate | None,
        metrics: MethodMetrics,
        serialize: Serializer,
        *,
        streaming: bool,
    ) -> Callable[[Any, Context], Awaitable[bytes]]:
        streams = self._streams
        if not inspect.iscoroutinefunction(inner):
            inner = self._unsupported(method)

        async def handle(request: Any, context: Context) -> bytes:
            call = _Call(context, serialize)
            if gate is not None and not gate.try_enter():
                await self._refuse(call, gate.refusal, metrics)
            entry = streams.open(method) if streaming else None
            try:
                deadlines.start_call(context)
                if entry is not None and streams.closing:
                    await self._abort(call, streams.shutdown_status)
                if type(request) is _Undecodable:
                    raise request.error
                response = await inner(request, call.recording)
                if response is None and call.final_code() is not grpc.StatusCode.OK:
                    return b""  # the handler set an error code itself; grpc sends no message then
                return serialize(response)
            except BaseException as exc:  # noqa: BLE001 - _fail re-raises or turns it into a status
                await self._fail(call, exc, method, entry is not None and entry.ending)
            finally:
                if entry is not None:
                    streams.close(entry)
                if gate is not None:
                    gate.leave()
                metrics.record(call.final_code(), time.perf_counter() - call.started)

        return handle

    def _stream_response(
        self, method: str, inner: Any, gate: Gate | None, metrics: MethodMetrics, serialize: Serializer
    ) -> Callable[[Any, Context], Awaitable[None]]:
        streams = self._streams
        run = self._stream_runner(method, inner, serialize)

        async def handle(request: Any, context: Context) -> None:
            call = _Call(context, serialize)
            if gate is not None and not gate.try_enter():
                await self._refuse(call, gate.refusal, metrics)
            entry = call.recording.stream = streams.open(method)
            try:
                deadlines.start_call(context)
                if streams.closing:
                    await self._abort(call, streams.shutdown_status)
                if type(request) is _Undecodable:
                    raise request.error
                await run(request, call)
            except BaseException as exc:  # noqa: BLE001 - _fail re-raises or turns it into a status
                await self._fail(call, exc, method, entry.ending)
            finally:
                streams.close(entry)
                if gate is not None:
                    gate.leave()
                metrics.record(call.final_code(), time.perf_counter() - call.started)

        return handle

    def _stream_runner(
        self, method: str, inner: Any, serialize: Serializer
    ) -> Callable[[Any, _Call], Awaitable[None]]:
        """Runs a streaming handler of either style inside the wrapper."""
        if inspect.isasyncgenfunction(inner):
            generator = inner

            async def run_generator(request: Any, call: _Call) -> None:
                messages: AsyncIterator[Any] = generator(request, call.recording)
                async with contextlib.aclosing(messages):  # type: ignore[type-var]
                    async for message in messages:
                        await call.recording.write(message)

            return run_generator
        writer = inner if inspect.iscoroutinefunction(inner) else self._unsupported(method)

        async def run_writer(request: Any, call: _Call) -> None:
            await writer(request, call.recording)

        return run_writer

    async def _refuse(self, call: _Call, status: grpc.Status, metrics: MethodMetrics) -> NoReturn:
        try:
            await self._abort(call, status)
        finally:
            metrics.record(call.final_code(), time.perf_counter() - call.started)

    async def _abort(self, call: _Call, status: grpc.Status) -> NoReturn:
        call.code = status.code
        await call.context.abort(status.code, status.details, tuple(status.trailing_metadata))
        raise AssertionError("abort returned")  # pragma: no cover - grpc always raises AbortError

    async def _fail(self, call: _Call, exc: BaseException, method: str, ending: bool) -> NoReturn:
        """Turns whatever ended a handler into the call's status, or lets it pass when it already is one."""
        if isinstance(exc, grpc.aio.AbortError):
            call.code = call.recording.abort_code or call.code
            raise exc
        if isinstance(exc, asyncio.CancelledError):
            if ending:  # our shutdown ended this stream: the client should reconnect, not see CANCELLED
                task = asyncio.current_task()
                if task is not None:
                    task.uncancel()
                await self._abort(call, self._streams.shutdown_status)
            call.code = (
                grpc.StatusCode.DEADLINE_EXCEEDED if deadlines.expired() else grpc.StatusCode.CANCELLED
            )
            raise exc
        if isinstance(exc, ServiceError):
            await self._abort(call, exc.to_status(self._domain))
        if not isinstance(exc, Exception):  # KeyboardInterrupt, SystemExit, GeneratorExit
            raise exc
        error_id = uuid.uuid4().hex
        self._log.error("unhandled exception in handler", method=method, error_id=error_id, exc_info=exc)
        status = build_status(
            grpc.StatusCode.INTERNAL,
            f"internal error {error_id}",
            reason="INTERNAL",
            domain=self._domain,
            metadata={"error_id": error_id},
        )
        await self._abort(call, status)

    def _unsupported(self, method: str) -> Callable[[Any, Context], Awaitable[Any]]:
        async def handler(request: Any, context: Context) -> Any:
            raise TypeError(
                f"the handler of {method} is not async; grpc.aio servers here need async handlers"
            )

        return handler
