"""EventPublisher: never blocks, bounded, every event either published or counted as dropped with a reason."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from services.runtime.events import CloudEvent, EventPublisher
from services.runtime.logs import get_logger
from services.runtime.supervisor import Supervisor
from tests.harness import eventually

LOG = get_logger("test.events")


class RecordingSink:
    """A sink that keeps what it receives; it can be held (to fill the buffer) or made to fail."""

    def __init__(self) -> None:
        self.received: list[CloudEvent] = []
        self.open = asyncio.Event()
        self.open.set()
        self.fail = False

    async def __call__(self, batch: Sequence[CloudEvent]) -> None:
        await self.open.wait()
        if self.fail:
            raise ConnectionError("signals is down")
        self.received.extend(batch)


async def test_without_a_sink_events_are_dropped_and_counted():
    events = EventPublisher("cache", log=LOG)
    for n in range(3):
        events.emit("evicted", {"n": n})
    stats = events.stats()
    assert (stats.emitted, stats.published, stats.buffered) == (3, 0, 0)
    assert stats.dropped == {"no_sink": 3}


async def test_a_supervised_drain_publishes_cloudevents_in_order():
    sink = RecordingSink()
    events = EventPublisher("limiter", log=LOG, sink=sink)
    supervisor = Supervisor(LOG)
    supervisor.spawn("events.drain", events.run, restart="always")
    try:
        for n in range(1200):  # more than one batch
            events.emit("denied", {"n": n}, subject="limiters/api")
        events.emit("foundation.limiter.limiter_configured", {"name": "limiters/api"})
        await eventually(lambda: len(sink.received) == 1201)
    finally:
        await supervisor.shutdown(timeout=1.0)
    assert [e.data["n"] for e in sink.received[:1200]] == list(range(1200))
    first = sink.received[0].to_dict()
    assert first["specversion"] == "1.0"
    assert first["type"] == "foundation.limiter.denied"
    assert first["source"] == "/foundation/limiter"
    assert first["subject"] == "limiters/api"
    assert first["time"].endswith("Z")
    assert len({e.id for e in sink.received}) == 1201
    assert sink.received[-1].type == "foundation.limiter.limiter_configured"
    assert "subject" not in sink.received[-1].to_dict()
    stats = events.stats()
    assert (stats.emitted, stats.published, stats.buffered, stats.dropped) == (1201, 1201, 0, {})


async def test_emit_never_blocks_when_the_sink_is_stuck_and_overflow_is_counted():
    sink = RecordingSink()
    sink.open.clear()
    events = EventPublisher("signals", log=LOG, sink=sink, capacity=100)
    supervisor = Supervisor(LOG)
    supervisor.spawn("events.drain", events.run, restart="always")
    try:
        await asyncio.sleep(0)  # let the drain take its first batch and get stuck in the sink
        began = time.perf_counter()
        for n in range(5000):
            events.emit("published", {"n": n})
        assert time.perf_counter() - began < 0.5, "emit must not wait for the sink"
        stats = events.stats()
        assert stats.emitted == 5000
        assert stats.buffered <= 100
        in_sink = 5000 - stats.buffered - stats.dropped["buffer_full"]
        assert 0 <= in_sink <= 100
        sink.open.set()
        await eventually(
            lambda: (
                events.stats().buffered == 0
                and events.stats().published == 5000 - events.stats().dropped["buffer_full"]
            )
        )
    finally:
        await supervisor.shutdown(timeout=1.0)
    stats = events.stats()
    assert stats.published + stats.dropped["buffer_full"] == 5000
    assert len(sink.received) == stats.published


async def test_many_concurrent_producers_lose_nothing_uncounted():
    sink = RecordingSink()
    events = EventPublisher("pool", log=LOG, sink=sink, capacity=500)
    supervisor = Supervisor(LOG)
    supervisor.spawn("events.drain", events.run, restart="always")

    async def producer(k: int) -> None:
        for n in range(300):
            events.emit("request_completed", {"producer": k, "n": n})
            if n % 50 == 0:
                await asyncio.sleep(0)

    try:
        await asyncio.gather(*(producer(k) for k in range(20)))
        await eventually(lambda: events.stats().buffered == 0)
    finally:
        await supervisor.shutdown(timeout=1.0)
    stats = events.stats()
    assert stats.emitted == 6000
    assert stats.published + sum(stats.dropped.values()) == 6000
    assert len(sink.received) == stats.published
    for k in range(20):  # each producer's events arrive in its own order
        mine = [e.data["n"] for e in sink.received if e.data["producer"] == k]
        assert mine == sorted(mine)


async def test_a_failing_sink_drops_its_batch_and_the_drain_goes_on():
    sink = RecordingSink()
    sink.fail = True
    events = EventPublisher("cache", log=LOG, sink=sink)
    supervisor = Supervisor(LOG)
    supervisor.spawn("events.drain", events.run, restart="always")
    try:
        for n in range(10):
            events.emit("evicted", {"n": n})
        await eventually(lambda: events.stats().dropped.get("sink_error") == 10)
        sink.fail = False
        events.emit("evicted", {"n": 10})
        await eventually(lambda: events.stats().published == 1)
    finally:
        await supervisor.shutdown(timeout=1.0)
    assert [e.data["n"] for e in sink.received] == [10]


async def test_close_flushes_the_buffer_then_refuses():
    sink = RecordingSink()
    events = EventPublisher("limiter", log=LOG, sink=sink)
    for n in range(700):  # no drain task: only close() delivers
        events.emit("denied", {"n": n})
    await events.close(timeout=2.0)
    assert len(sink.received) == 700
    events.emit("denied", {"n": 700})
    stats = events.stats()
    assert (stats.published, stats.dropped) == (700, {"closed": 1})


async def test_close_gives_up_at_its_timeout_and_counts_the_rest():
    sink = RecordingSink()
    sink.open.clear()
    events = EventPublisher("limiter", log=LOG, sink=sink)
    for n in range(10):
        events.emit("denied", {"n": n})
    began = time.monotonic()
    await events.close(timeout=0.1)
    assert time.monotonic() - began < 1.0
    stats = events.stats()
    assert stats.published == 0
    assert stats.buffered == 0
    assert stats.dropped == {"closed": 10}


async def test_removing_the_sink_drops_what_was_waiting_for_it():
    sink = RecordingSink()
    events = EventPublisher("limiter", log=LOG, sink=sink)
    events.emit("denied", {})
    events.set_sink(None)
    events.emit("denied", {})
    assert events.stats().dropped == {"no_sink": 2}
