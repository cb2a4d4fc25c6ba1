"""Open streaming calls, so that shutdown can end them with UNAVAILABLE instead of letting them hang.

A server stream (a subscription, a health Watch) may never end on its own; `server.stop(grace)` would
then cancel it at the end of the grace period with a bare CANCELLED. Instead, when shutdown begins, every
open stream's task is cancelled by this registry; the interceptor sees that this cancellation is ours
(`StreamEntry.ending`) and ends the call with UNAVAILABLE, ErrorInfo `SHUTTING_DOWN` and a RetryInfo, so
clients reconnect elsewhere. A client's own cancellation still passes through as cancellation.
"""

from __future__ import annotations

import asyncio
import time

import grpc

from services.runtime.errors import Unavailable

RECONNECT_AFTER_S = 1.0
NOTICE_S = 0.25
"""Longest shutdown lets open streams deliver what they were about to send (health Watch's NOT_SERVING)."""


class StreamEntry:
    """One open streaming call."""

    __slots__ = ("ending", "method", "task", "writes")

    def __init__(self, method: str, task: asyncio.Task[object] | None) -> None:
        self.method = method
        self.task = task
        self.writes = 0
        """Messages sent so far (the interceptor counts them)."""
        self.ending = False
        """True once shutdown asked this stream to end: its CancelledError means UNAVAILABLE."""


class StreamRegistry:
    """The streaming calls open on one server."""

    def __init__(self, domain: str) -> None:
        self._open: set[StreamEntry] = set()
        self._closing = False
        self._empty = asyncio.Event()
        self._empty.set()
        self.shutdown_status: grpc.Status = Unavailable(
            "the server is shutting down; reconnect", retry_after=RECONNECT_AFTER_S, reason="SHUTTING_DOWN"
        ).to_status(domain)

    @property
    def closing(self) -> bool:
        """True once shutdown began: new streams are refused with `shutdown_status`."""
        return self._closing

    def open(self, method: str) -> StreamEntry:
        """Registers the current task as an open stream."""
        entry = StreamEntry(method, asyncio.current_task())
        self._open.add(entry)
        self._empty.clear()
        return entry

    def close(self, entry: StreamEntry) -> None:
        """Forgets a stream that ended (in any way)."""
        self._open.discard(entry)
        if not self._open:
            self._empty.set()

    def __len__(self) -> int:
        return len(self._open)

    async def end_all(self, timeout: float, notice: float = NOTICE_S) -> int:  # noqa: ASYNC109
        """Refuses new streams, cancels every open one, waits up to `timeout` for them to end.

        First, for up to `notice` seconds, streams may send one more message (health watchers are told
        NOT_SERVING just before this); a stream that sends nothing only delays the others by `notice`.
        Returns how many were still open when the wait ended.
        """
        self._closing = True
        sent = {entry: entry.writes for entry in self._open}
        notice_ends = time.monotonic() + notice
        while any(entry.writes == sent[entry] for entry in self._open if entry in sent):
            if time.monotonic() >= notice_ends:
                break
            await asyncio.sleep(0.005)
        for entry in list(self._open):
            entry.ending = True
            if entry.task is not None and not entry.task.done():
                entry.task.cancel()
        deadline = time.monotonic() + timeout
        while self._open and time.monotonic() < deadline:
            try:
                await asyncio.wait_for(self._empty.wait(), timeout=max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                break
        return len(self._open)
