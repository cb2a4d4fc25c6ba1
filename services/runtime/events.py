"""Telemetry events, published as CloudEvents (`foundation.<svc>.<event>`) without ever making a caller wait.

`emit()` puts the event in a bounded buffer (10,000 by default) and returns. A supervised drain task
hands buffered events to the sink in batches. Nothing is ever silently lost: every event that is not
handed to the sink is counted as dropped with its reason:

- `no_sink`: no sink is set (until the signals service is wired in, this is the default);
- `buffer_full`: the sink is slower than the producers;
- `sink_error`: the sink raised for the batch;
- `closed`: emitted after shutdown began, or still buffered when the shutdown flush ran out of time.
"""

from __future__ import annotations

import asyncio
import collections
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog

DEFAULT_CAPACITY = 10_000
BATCH_SIZE = 500


@dataclass(frozen=True)
class CloudEvent:
    """A CloudEvents 1.0 event (structured mode attributes)."""

    id: str
    source: str
    type: str
    time: str
    data: Mapping[str, Any]
    subject: str = ""
    specversion: str = "1.0"
    datacontenttype: str = "application/json"

    def to_dict(self) -> dict[str, Any]:
        """The JSON form of CloudEvents' structured content mode (empty `subject` left out)."""
        out: dict[str, Any] = {
            "specversion": self.specversion,
            "id": self.id,
            "source": self.source,
            "type": self.type,
            "time": self.time,
            "datacontenttype": self.datacontenttype,
            "data": dict(self.data),
        }
        if self.subject:
            out["subject"] = self.subject
        return out


EventSink = Callable[[Sequence[CloudEvent]], Awaitable[None]]
"""Receives a batch of events; raising drops the batch (counted as `sink_error`)."""


@dataclass(frozen=True)
class EventStats:
    """Counters of one publisher; `buffered` is a gauge."""

    emitted: int
    published: int
    buffered: int
    dropped: Mapping[str, int] = field(default_factory=dict)


class EventPublisher:
    """The process's event buffer and its drain to a pluggable sink."""

    def __init__(
        self,
        service: str,
        *,
        log: structlog.stdlib.BoundLogger,
        capacity: int = DEFAULT_CAPACITY,
        sink: EventSink | None = None,
        source: str | None = None,
    ) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self.service = service
        self.capacity = capacity
        self.source = source or f"/foundation/{service}"
        self._log = log
        self._sink = sink
        self._buffer: collections.deque[CloudEvent] = collections.deque()
        self._ready = asyncio.Event()
        self._closed = False
        self._emitted = 0
        self._published = 0
        self._dropped: collections.Counter[str] = collections.Counter()

    def type_name(self, event: str) -> str:
        """`evicted` → `foundation.<svc>.evicted`; a full `foundation.…` type is kept as given."""
        return event if event.startswith("foundation.") else f"foundation.{self.service}.{event}"

    def set_sink(self, sink: EventSink | None) -> None:
        """Sets (or removes) where events go; events emitted while there is none are dropped (`no_sink`)."""
        self._sink = sink
        if sink is None and self._buffer:
            self._dropped["no_sink"] += len(self._buffer)
            self._buffer.clear()
        elif self._buffer:
            self._ready.set()

    def emit(self, type: str, data: Mapping[str, Any], *, subject: str = "") -> None:
        """Queues an event for publication. Never blocks, never raises for a full buffer."""
        self._emitted += 1
        if self._closed:
            self._dropped["closed"] += 1
            return
        if self._sink is None:
            self._dropped["no_sink"] += 1
            return
        if len(self._buffer) >= self.capacity:
            self._dropped["buffer_full"] += 1
            return
        self._buffer.append(
            CloudEvent(
                id=uuid.uuid4().hex,
                source=self.source,
                type=self.type_name(type),
                time=datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z"),
                data=data,
                subject=subject,
            )
        )
        self._ready.set()

    def stats(self) -> EventStats:
        """A snapshot of the counters."""
        return EventStats(
            emitted=self._emitted,
            published=self._published,
            buffered=len(self._buffer),
            dropped=dict(self._dropped),
        )

    async def run(self) -> None:
        """The drain loop (run it under the supervisor): hands buffered events to the sink in batches."""
        while True:
            await self._ready.wait()
            await self._drain_once()

    async def _drain_once(self) -> None:
        sink = self._sink
        if sink is None or not self._buffer:
            self._ready.clear()
            return
        batch = [self._buffer.popleft() for _ in range(min(BATCH_SIZE, len(self._buffer)))]
        if not self._buffer:
            self._ready.clear()
        try:
            await sink(batch)
        except asyncio.CancelledError:
            self._dropped["closed"] += len(batch)
            raise
        except Exception as exc:  # noqa: BLE001 - any sink failure drops the batch, counted and logged
            self._dropped["sink_error"] += len(batch)
            self._log.warning("event sink failed; batch dropped", events=len(batch), error=repr(exc))
        else:
            self._published += len(batch)

    async def close(self, timeout: float) -> None:  # noqa: ASYNC109 - a bound on the flush, not a deadline
        """Stops taking events and flushes the buffer to the sink within `timeout`; the rest is dropped."""
        self._closed = True
        deadline = time.monotonic() + timeout
        try:
            async with asyncio.timeout(max(0.0, timeout)):
                while self._buffer and self._sink is not None and time.monotonic() < deadline:
                    await self._drain_once()
        except TimeoutError:
            pass
        if self._buffer:
            self._dropped["closed"] += len(self._buffer)
            self._log.warning("events dropped at shutdown", events=len(self._buffer))
            self._buffer.clear()
