"""Admission: a per-method bound on calls in flight (DESIGN.md §4).

Beyond the bound a call is refused at once with RESOURCE_EXHAUSTED, QuotaFailure, RetryInfo and ErrorInfo
reason `OVERLOADED`, instead of queueing behind the others. Unary calls count against `max_in_flight`;
any streaming call against `max_streams`. gRPC's own `maximum_concurrent_rpcs` is not used: it is global,
counts long streams like short calls, and makes callers wait without a retry hint. Health and reflection
are exempt, so probes and tooling still answer when a service is saturated.
"""

from __future__ import annotations

from collections.abc import Iterable

import grpc

from services.runtime.errors import ResourceExhausted

EXEMPT_PREFIXES = ("/grpc.health.v1.", "/grpc.reflection.")
UNARY_RETRY_AFTER_S = 0.05
"""A refused unary call may retry soon: the calls ahead of it finish in milliseconds."""
STREAM_RETRY_AFTER_S = 1.0
"""Streams are long-lived; a slot frees up far less often."""


class Gate:
    """The in-flight count of one method. Not thread-safe: used only on the event loop."""

    __slots__ = ("_refusal", "in_flight", "limit", "method", "rejected")

    def __init__(self, method: str, limit: int, retry_after: float, domain: str) -> None:
        self.method = method
        self.limit = limit
        self.in_flight = 0
        self.rejected = 0
        self._refusal = ResourceExhausted(
            f"{method}: {limit} calls in flight, the most this method takes; retry later",
            retry_after=retry_after,
            subject=method,
            reason="OVERLOADED",
        ).to_status(domain)

    def try_enter(self) -> bool:
        """Takes a slot; False (and counted) when the method is at its bound."""
        if self.in_flight >= self.limit:
            self.rejected += 1
            return False
        self.in_flight += 1
        return True

    def leave(self) -> None:
        """Gives the slot back."""
        self.in_flight -= 1

    @property
    def refusal(self) -> grpc.Status:
        """The status a refused call ends with (built once: refusing must be cheap under overload)."""
        return self._refusal


class Admission:
    """Gates by method for one server."""

    def __init__(self, *, max_in_flight: int, max_streams: int, domain: str) -> None:
        self.max_in_flight = max_in_flight
        self.max_streams = max_streams
        self.domain = domain
        self._gates: dict[str, Gate] = {}

    def gate(self, method: str, *, streaming: bool) -> Gate | None:
        """The gate of `method` (created on first use), or None for exempt methods."""
        if method.startswith(EXEMPT_PREFIXES):
            return None
        gate = self._gates.get(method)
        if gate is None:
            if streaming:
                gate = Gate(method, self.max_streams, STREAM_RETRY_AFTER_S, self.domain)
            else:
                gate = Gate(method, self.max_in_flight, UNARY_RETRY_AFTER_S, self.domain)
            self._gates[method] = gate
        return gate

    def gates(self) -> Iterable[Gate]:
        """Every gate created so far (for metrics)."""
        return list(self._gates.values())
