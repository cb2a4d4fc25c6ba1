"""The caller's deadline, available anywhere inside a handler (DESIGN.md §4, deadlines).

The interceptor records each call's deadline (from `context.time_remaining()`) in a context variable when
the handler starts, so code deep inside a handler can bound its waits without passing the context around:

    await store.write(handler, op, timeout=deadlines.bounded(settings.store_timeout_ms / 1000))
    await other_stub.Method(request, timeout=deadlines.remaining())   # pass the remainder on

Outside a call (background tasks) there is no deadline: `remaining()` is None and `bounded(t)` is `t`.
"""

from __future__ import annotations

import contextvars
import time

import grpc

from services.runtime.errors import DeadlineExceeded

_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar("foundation_deadline", default=None)
"""Absolute `time.monotonic()` value by which the current call must be answered, or None."""


def start_call(context: grpc.aio.ServicerContext[object, object]) -> None:
    """Records the deadline of the call being handled in the current task (the interceptor calls this)."""
    left = context.time_remaining()
    _deadline.set(None if left is None else time.monotonic() + left)


def set_deadline(seconds_from_now: float | None) -> contextvars.Token[float | None]:
    """Sets the current deadline explicitly (for tests and for work that is not a gRPC call)."""
    return _deadline.set(None if seconds_from_now is None else time.monotonic() + seconds_from_now)


def remaining() -> float | None:
    """Seconds left before the current call's deadline (never negative), or None without a deadline."""
    deadline = _deadline.get()
    if deadline is None:
        return None
    return max(0.0, deadline - time.monotonic())


def bounded(timeout: float | None) -> float | None:
    """The shorter of `timeout` and the time left; None only when both are unbounded."""
    left = remaining()
    if left is None:
        return timeout
    if timeout is None:
        return left
    return min(timeout, left)


def expired() -> bool:
    """True when the current call has a deadline and it has passed."""
    left = remaining()
    return left is not None and left <= 0.0


def check(what: str = "the call") -> None:
    """Raises DeadlineExceeded when the deadline has passed (before starting work the caller gave up on)."""
    if expired():
        raise DeadlineExceeded(f"deadline exceeded before {what} could finish")
