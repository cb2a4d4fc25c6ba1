"""The benchmark harness: what a scenario is, how a case is measured, and the results file.

Adding a scenario is one module in `bench/scenarios/` exposing `SCENARIO = Scenario(...)` (see
`bench/scenarios/ceiling.py` for a short one). A scenario lists its cases lazily; a case says how to start its
server (a process: see `bench.servers`) and how to send one request over a gRPC channel to it. The harness does
the rest, the same way for every scenario:

1. start the case's server (and the peer's, if any) and open one gRPC channel to it;
2. warm up: the ceiling, the scenario and the peer, `warmup_s` each;
3. interleave measured runs, `duration_s` each: ceiling, scenario, [peer], ceiling, scenario, [peer], …, and
   one last ceiling. Each scenario run's ratio is its throughput over the mean of the two ceiling runs around
   it, so a machine that gets busier or quieter during the case moves both alike;
4. report the median over runs of throughput, p50/p99, ratio to ceiling and peak RSS of the server process
   (VmHWM, reset before each scenario run), plus the median of the case's own counters (e.g. batch size).

The ceiling is `grpc.health.v1.Health/Check` on the same server process, sent by the same load generator over
the same channel: whatever the client costs, it costs both sides of the ratio.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import statistics
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, AbstractContextManager, ExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.loadgen import RequestFn, RunStats, generate_load
from bench.machine import machine_info
from bench.servers import BackendUnavailable, ServerProcess

Counters = Mapping[str, float]


@dataclass(frozen=True)
class Peer:
    """What a user would pick instead of the scenario's service (Redis, NATS, direct httpx, …)."""

    name: str
    """Shown in the table, e.g. `redis-py INCR`."""
    server: Callable[[], AbstractContextManager[ServerProcess]]
    """Starts the peer's server process for the duration of the block."""
    client: Callable[[str], AbstractAsyncContextManager[RequestFn]]
    """Given the peer's address, opens its client and yields the function sending one request."""


@dataclass(frozen=True)
class Case:
    """One measured configuration of a scenario, e.g. `distinct keys` on `sqlite`."""

    name: str
    backend: str
    """`sqlite`, `postgresql`, or `-` when no database is involved."""
    server: Callable[[], AbstractContextManager[ServerProcess]]
    """Starts the server under test (a process printing a READY line) for the duration of the block."""
    request: Callable[[grpc.aio.Channel], RequestFn]
    """Given a channel to the server, the function sending one scenario request (its worker index as argument)."""
    target: float | None = None
    """The ratio to the ceiling the design promises (shown in the table), if any."""
    peer: Peer | None = None
    counters: Callable[[grpc.aio.Channel], Awaitable[Counters]] | None = None
    """Reads cumulative server-side counters; the harness reads them around each scenario run."""
    derive: Callable[[Counters], dict[str, float]] | None = None
    """Turns the counters' increase over one run into figures to report (e.g. mean batch size)."""
    concurrency: int | None = None
    """Calls in flight for this case (ceiling and peer alike) instead of the plan's, e.g. 1 for idle latency."""


@dataclass(frozen=True)
class Scenario:
    """A named family of cases; `cases` is called only when the scenario runs (listing starts nothing)."""

    name: str
    description: str
    cases: Callable[[], Sequence[Case]]


@dataclass(frozen=True)
class Plan:
    """How long and how hard each case is measured."""

    runs: int = 5
    duration_s: float = 5.0
    warmup_s: float = 1.0
    concurrency: int = 64
    quick: bool = False

    @classmethod
    def quick_plan(cls) -> Plan:
        """Short runs for a smoke test of the benchmarks (figures are indicative only)."""
        return cls(runs=2, duration_s=1.0, warmup_s=0.5, quick=True)


Progress = Callable[[str], None]


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def run_scenario(scenario: Scenario, plan: Plan, *, progress: Progress = _stderr) -> dict[str, Any]:
    """Measures every case of `scenario`; returns the results document (see `write_results`)."""
    started = datetime.now(UTC)
    machine = machine_info()  # before the run: its load average is the machine's, not ours
    cases = []
    for case in scenario.cases():
        progress(f"[{scenario.name}] {case.name} ({case.backend})")
        try:
            cases.append(measure_case(case, plan, progress=progress))
        except BackendUnavailable as exc:
            progress(f"[{scenario.name}] {case.name} skipped: {exc}")
            cases.append(_case_header(case) | {"skipped": str(exc)})
    return {
        "scenario": scenario.name,
        "description": scenario.description,
        "timestamp": started.isoformat(timespec="seconds"),
        "elapsed_s": round((datetime.now(UTC) - started).total_seconds(), 1),
        "plan": {
            "runs": plan.runs,
            "duration_s": plan.duration_s,
            "warmup_s": plan.warmup_s,
            "concurrency": plan.concurrency,
            "quick": plan.quick,
        },
        "machine": machine,
        "load_average_end": [round(value, 2) for value in os.getloadavg()],
        "cases": cases,
    }


def measure_case(case: Case, plan: Plan, *, progress: Progress = _stderr) -> dict[str, Any]:
    """Starts the case's server (and peer) and measures it as the module docstring describes."""
    with ExitStack() as stack:
        server = stack.enter_context(case.server())
        peer_server = stack.enter_context(case.peer.server()) if case.peer else None
        return asyncio.run(_measure(case, plan, server, peer_server, progress))


@dataclass
class _Runs:
    ceilings: list[RunStats] = field(default_factory=list)
    scenario: list[RunStats] = field(default_factory=list)
    peer: list[RunStats] = field(default_factory=list)
    rss_mb: list[float] = field(default_factory=list)
    peer_rss_mb: list[float] = field(default_factory=list)
    derived: list[dict[str, float]] = field(default_factory=list)


async def _measure(
    case: Case, plan: Plan, server: ServerProcess, peer_server: ServerProcess | None, progress: Progress
) -> dict[str, Any]:
    async with _grpc_channel(server.address) as channel, _peer_client(case.peer, peer_server) as peer_request:
        ceiling = health_check(channel)
        concurrency = case.concurrency or plan.concurrency
        scenario = case.request(channel)

        async def load(
            request: RequestFn, label: str, duration_s: float, on: ServerProcess = server
        ) -> RunStats:
            server_cpu, client_cpu = on.cpu_seconds(), time.process_time()
            stats = await generate_load(request, label=label, concurrency=concurrency, duration_s=duration_s)
            return stats.with_cpu(on.cpu_seconds() - server_cpu, time.process_time() - client_cpu)

        for request in (ceiling, scenario, peer_request):
            if request is not None and plan.warmup_s > 0:
                await generate_load(
                    request, label="warm-up", concurrency=concurrency, duration_s=plan.warmup_s
                )
        runs = _Runs()
        for index in range(plan.runs):
            runs.ceilings.append(await load(ceiling, "ceiling", plan.duration_s))
            before = await case.counters(channel) if case.counters else {}
            server.reset_peak_rss()
            runs.scenario.append(await load(scenario, "scenario", plan.duration_s))
            runs.rss_mb.append(server.peak_rss_mb())
            if case.counters:
                after = await case.counters(channel)
                increase = {key: after[key] - before.get(key, 0.0) for key in after}
                runs.derived.append(case.derive(increase) if case.derive else dict(increase))
            if peer_request is not None and peer_server is not None:
                peer_server.reset_peak_rss()
                runs.peer.append(await load(peer_request, "peer", plan.duration_s, on=peer_server))
                runs.peer_rss_mb.append(peer_server.peak_rss_mb())
            progress(f"  run {index + 1}/{plan.runs}: {_run_line(runs, index)}")
        runs.ceilings.append(await load(ceiling, "ceiling", plan.duration_s))
    return _case_header(case) | _summarise(runs, case.peer)


def health_check(channel: grpc.aio.Channel) -> RequestFn:
    """The ceiling request: `grpc.health.v1.Health/Check` of the whole server."""
    check = health_pb2_grpc.HealthStub(channel).Check
    request = health_pb2.HealthCheckRequest()

    async def send(_worker: int) -> object:
        return await check(request)

    return send


@asynccontextmanager
async def _grpc_channel(address: str) -> AsyncIterator[grpc.aio.Channel]:
    channel = grpc.aio.insecure_channel(address)
    try:
        await asyncio.wait_for(channel.channel_ready(), timeout=10)
        yield channel
    finally:
        await channel.close(None)


@asynccontextmanager
async def _peer_client(peer: Peer | None, server: ServerProcess | None) -> AsyncIterator[RequestFn | None]:
    if peer is None or server is None:
        yield None
        return
    async with peer.client(server.address) as request:
        yield request


def _case_header(case: Case) -> dict[str, Any]:
    return {
        "case": case.name,
        "backend": case.backend,
        "target": case.target,
        "concurrency": case.concurrency,
    }


def _run_line(runs: _Runs, index: int) -> str:
    scenario = runs.scenario[index]
    line = (
        f"ceiling {runs.ceilings[index].throughput:,.0f}/s, scenario {scenario.throughput:,.0f}/s "
        f"(p50 {scenario.p50_ms:.2f} ms, p99 {scenario.p99_ms:.2f} ms; server {scenario.server_cpu:.2f} cores, "
        f"{scenario.server_cpu_us_per_call:.0f} µs/call vs {runs.ceilings[index].server_cpu_us_per_call:.0f} "
        f"for the ceiling; client {scenario.client_cpu:.2f} cores)"
    )
    if runs.peer:
        line += f", peer {runs.peer[index].throughput:,.0f}/s"
    if scenario.errors:
        line += f", errors {scenario.errors}"
    return line


def ratio_to_ceiling(scenario: Sequence[RunStats], ceilings: Sequence[RunStats]) -> list[float]:
    """Each scenario run's throughput over the mean of the ceiling runs just before and just after it."""
    if len(ceilings) != len(scenario) + 1:
        raise ValueError("expected one ceiling run before each scenario run and one after the last")
    return [
        _divide(run.throughput, (ceilings[i].throughput + ceilings[i + 1].throughput) / 2)
        for i, run in enumerate(scenario)
    ]


def median(values: Sequence[float]) -> float:
    """Median of the finite values (NaN when there are none)."""
    finite = [value for value in values if not math.isnan(value)]
    return statistics.median(finite) if finite else math.nan


def _summarise(runs: _Runs, peer: Peer | None) -> dict[str, Any]:
    ratios = ratio_to_ceiling(runs.scenario, runs.ceilings)
    for i, derived in enumerate(runs.derived):
        # A rate that is no request rate (decisions/s of batched checks) gets its ratio to the ceiling too:
        # units per ceiling call of the same run, the figure that other machines can compare.
        ceiling = (runs.ceilings[i].throughput + runs.ceilings[i + 1].throughput) / 2
        for key in [key for key in derived if key.endswith("_per_s")]:
            derived[key.removesuffix("_per_s") + "_per_ceiling_call"] = _divide(derived[key], ceiling)
    rows = []
    for i, run in enumerate(runs.scenario):
        row: dict[str, Any] = {
            "scenario": run.to_json(),
            "ceiling_before": runs.ceilings[i].to_json(),
            "ceiling_after": runs.ceilings[i + 1].to_json(),
            "ratio_to_ceiling": ratios[i],
            "peak_rss_mb": runs.rss_mb[i],
        }
        if runs.derived:
            row["derived"] = runs.derived[i]
        if runs.peer:
            row["peer"] = runs.peer[i].to_json() | {"peak_rss_mb": runs.peer_rss_mb[i]}
            row["peer_ratio"] = _divide(run.throughput, runs.peer[i].throughput)
        rows.append(row)
    summary: dict[str, Any] = {
        "runs": rows,
        "median": {
            "throughput": median([run.throughput for run in runs.scenario]),
            "p50_ms": median([run.p50_ms for run in runs.scenario]),
            "p99_ms": median([run.p99_ms for run in runs.scenario]),
            "ratio_to_ceiling": median(ratios),
            "peak_rss_mb": median(runs.rss_mb),
            "ceiling_throughput": median([run.throughput for run in runs.ceilings]),
            "ceiling_p50_ms": median([run.p50_ms for run in runs.ceilings]),
            "ceiling_p99_ms": median([run.p99_ms for run in runs.ceilings]),
            "server_cpu": median([run.server_cpu for run in runs.scenario]),
            "client_cpu": median([run.client_cpu for run in runs.scenario]),
            "server_cpu_us_per_call": median([run.server_cpu_us_per_call for run in runs.scenario]),
            "ceiling_server_cpu_us_per_call": median([run.server_cpu_us_per_call for run in runs.ceilings]),
            "errors": sum(sum(run.errors.values()) for run in runs.scenario),
        },
        "peer": None,
    }
    if runs.derived:
        keys = sorted({key for derived in runs.derived for key in derived})
        summary["median"]["derived"] = {
            key: median([derived.get(key, math.nan) for derived in runs.derived]) for key in keys
        }
    if peer is not None and runs.peer:
        summary["peer"] = {
            "name": peer.name,
            "median": {
                "throughput": median([run.throughput for run in runs.peer]),
                "p50_ms": median([run.p50_ms for run in runs.peer]),
                "p99_ms": median([run.p99_ms for run in runs.peer]),
                "peak_rss_mb": median(runs.peer_rss_mb),
                "ratio": median([row["peer_ratio"] for row in rows]),
            },
        }
    return summary


def _divide(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator > 0 else math.nan


def write_results(results: Mapping[str, Any], directory: Path) -> Path:
    """Writes `<directory>/<scenario>.json` (strict JSON: NaN becomes null); returns its path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{results['scenario']}.json"
    text = json.dumps(_finite(results), indent=2, allow_nan=False)
    path.write_text(text + "\n")
    return path


def read_results(directory: Path) -> list[dict[str, Any]]:
    """Every results file in `directory`, the ceiling first, then by scenario name."""
    documents = [json.loads(path.read_text()) for path in sorted(directory.glob("*.json"))]
    return sorted(documents, key=lambda doc: (doc.get("scenario") != "ceiling", doc.get("scenario", "")))


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else round(value, 4)
    if isinstance(value, Mapping):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value
