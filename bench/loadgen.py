"""The closed-loop load generator and its statistics.

`generate_load` keeps `concurrency` requests in flight for a fixed time: each of that many workers sends a
request, waits for the answer, and sends the next. A call counts when it completes inside the measured window
(after the warm-up, before the end); its latency is taken with `perf_counter_ns` around the await. Failed calls
are counted by status code and left out of the latency figures.
"""

from __future__ import annotations

import asyncio
import math
import statistics
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import grpc

RequestFn = Callable[[int], Awaitable[object]]
"""Sends one request; the argument is the worker's index (0 … concurrency-1), e.g. to pick a key."""


@dataclass(frozen=True)
class RunStats:
    """What one measured run of one load gave."""

    label: str
    duration_s: float
    calls: int
    """Successful calls completed inside the window."""
    throughput: float
    """Successful calls per second."""
    p50_ms: float
    p99_ms: float
    mean_ms: float
    errors: dict[str, int] = field(default_factory=dict)
    """Failed calls inside the window, by gRPC status code name (or exception type)."""
    server_cpu: float = math.nan
    """Cores the server process kept busy during the run (CPU seconds / wall seconds, all its threads)."""
    client_cpu: float = math.nan
    """Cores the load generator's process kept busy during the run."""
    server_cpu_us_per_call: float = math.nan
    """Server CPU time per successful call: a figure much less disturbed by a busy machine than throughput."""

    def with_cpu(self, server_cpu_s: float, client_cpu_s: float) -> RunStats:
        """These stats plus the CPU seconds the server and the client used over the run."""
        return replace(
            self,
            server_cpu=server_cpu_s / self.duration_s,
            client_cpu=client_cpu_s / self.duration_s,
            server_cpu_us_per_call=server_cpu_s * 1e6 / self.calls if self.calls else math.nan,
        )

    def to_json(self) -> dict[str, Any]:
        """A plain dict for the results file."""
        return asdict(self)


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """The p-th percentile (0–100) of ascending values, interpolating linearly between ranks.

    The same definition as numpy's default: rank `(n - 1) * p / 100`. NaN for no values.
    """
    if not 0 <= p <= 100:
        raise ValueError(f"percentile must be within 0..100, got {p}")
    if not sorted_values:
        return math.nan
    rank = (len(sorted_values) - 1) * p / 100
    low = math.floor(rank)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (rank - low)


def summarise(label: str, latencies_ns: Sequence[int], duration_s: float, errors: Counter[str]) -> RunStats:
    """RunStats from the latencies of the successful calls of a window lasting `duration_s`."""
    ordered = sorted(latencies_ns)
    to_ms = 1e-6
    return RunStats(
        label=label,
        duration_s=duration_s,
        calls=len(ordered),
        throughput=len(ordered) / duration_s if duration_s > 0 else math.nan,
        p50_ms=percentile(ordered, 50) * to_ms,
        p99_ms=percentile(ordered, 99) * to_ms,
        mean_ms=statistics.fmean(ordered) * to_ms if ordered else math.nan,
        errors=dict(sorted(errors.items())),
    )


async def generate_load(
    request: RequestFn, *, label: str, concurrency: int, duration_s: float, warmup_s: float = 0.0
) -> RunStats:
    """Keeps `concurrency` calls of `request` in flight for `warmup_s` + `duration_s`; measures the latter."""
    if concurrency < 1 or duration_s <= 0:
        raise ValueError("concurrency must be ≥ 1 and duration positive")
    window_start = time.perf_counter_ns() + int(warmup_s * 1e9)
    window_end = window_start + int(duration_s * 1e9)
    latencies: list[int] = []
    errors: Counter[str] = Counter()

    async def worker(index: int) -> None:
        while True:
            started = time.perf_counter_ns()
            if started >= window_end:
                return
            failure: str | None = None
            try:
                await request(index)
            except grpc.aio.AioRpcError as exc:
                failure = exc.code().name
            except Exception as exc:
                failure = type(exc).__name__
            finished = time.perf_counter_ns()
            if window_start <= finished <= window_end:
                if failure is None:
                    latencies.append(finished - started)
                else:
                    errors[failure] += 1

    await asyncio.gather(*(worker(index) for index in range(concurrency)))
    return summarise(label, latencies, duration_s, errors)
