"""The limiter: single-item `Check` at 64 in flight, and `Check`s of 100 items, on SQLite and PostgreSQL.

Targets (issue 4): single-item Check ≥ 0.75× the no-op ceiling on SQLite and ≥ 0.5× on PostgreSQL, p99 ≤ 2× the
ceiling's; a Check of 100 items ≥ 50,000 decisions/s on SQLite. Two GCRA limiters are created through the API by
the first request: `bench`, 10^9 per second (out of reach: every check is a real decision that consumes), and
`bench-closed`, 1 per day (a key's first check is allowed, every later one denied).

- *distinct keys*: each of the 64 workers cycles through its own 1,000 keys (distinct users);
- *one hot key*: every check on the same key (the writer merges duplicates into one statement row);
- *half denied*: distinct keys, every other check on `bench-closed` with 10 keys per worker (used up in the
  warm-up), so half of the decisions are denials with their Retry-After;
- *100 items*: each item on a key of the worker's own 1,000, INDEPENDENT and ALL_OR_NOTHING (one savepoint per
  request); the figure is decisions (items) per second.

Peer (single items): the `limits` library on Redis from the same client process, same keys (bench.limits_peer).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

import grpc
from google.protobuf import duration_pb2

from bench.harness import Case, Counters, Scenario
from bench.limits_peer import limits_peer
from bench.loadgen import RequestFn
from bench.servers import Backend, service_process
from foundation.limiter.v1 import limiter_pb2 as pb
from foundation.limiter.v1 import limiter_pb2_grpc as rpc

OPEN, OPEN_PER_SECOND = "bench", 10**9
CLOSED, CLOSED_PER_DAY = "bench-closed", 1
KEYS_PER_WORKER = 1000
CLOSED_KEYS_PER_WORKER = 10
BATCH = 100


@dataclass(frozen=True)
class Load:
    """What each request of a case checks."""

    hot: bool = False
    half_denied: bool = False
    items: int = 1
    atomic: bool = False

    @property
    def name(self) -> str:
        """The case's name in the table."""
        if self.items > 1:
            mode = "ALL_OR_NOTHING" if self.atomic else "INDEPENDENT"
            return f"Check of {self.items} items ({mode}), distinct keys"
        keys = "one hot key" if self.hot else "distinct keys"
        return f"single-item Check, {keys}" + (", half denied" if self.half_denied else "")

    def picker(self) -> Callable[[int], tuple[bool, str]]:
        """A fresh chooser of (closed limiter?, key) for a worker's next check."""
        sent = [0] * 4096

        def pick(worker: int) -> tuple[bool, str]:
            n = sent[worker]
            sent[worker] = n + 1
            closed = self.half_denied and n % 2 == 1
            if self.hot:
                return closed, "hot"
            if closed:
                return True, f"w{worker}:c{n // 2 % CLOSED_KEYS_PER_WORKER}"
            return False, f"w{worker}:{n % KEYS_PER_WORKER}"

        return pick


async def create_limiters(stub: rpc.LimiterServiceStub) -> None:
    """Creates the scenario's limiters (ALREADY_EXISTS is fine: another case's channel got there first)."""
    day = duration_pb2.Duration(seconds=86_400)
    limiters = {
        OPEN: pb.Limiter(limit=OPEN_PER_SECOND, period=duration_pb2.Duration(seconds=1)),
        CLOSED: pb.Limiter(limit=CLOSED_PER_DAY, period=day),
    }
    for limiter_id, limiter in limiters.items():
        try:
            await stub.CreateLimiter(pb.CreateLimiterRequest(limiter_id=limiter_id, limiter=limiter))
        except grpc.aio.AioRpcError as error:
            if error.code() is not grpc.StatusCode.ALREADY_EXISTS:
                raise


def checker(channel: grpc.aio.Channel, load: Load) -> RequestFn:
    """The scenario request: one Check of `load.items` items; the limiters are created by the first call."""
    stub = rpc.LimiterServiceStub(channel)
    pick = load.picker()
    created = asyncio.Lock()
    ready = False
    mode = pb.CheckRequest.MODE_ALL_OR_NOTHING if load.atomic else pb.CheckRequest.MODE_INDEPENDENT
    names = {False: f"limiters/{OPEN}", True: f"limiters/{CLOSED}"}

    async def send(worker: int) -> object:
        nonlocal ready
        if not ready:
            async with created:
                if not ready:
                    await create_limiters(stub)
                    ready = True
        items = []
        for _ in range(load.items):
            closed, key = pick(worker)
            items.append(pb.CheckItem(limiter=names[closed], key=key))
        response = await stub.Check(pb.CheckRequest(items=items, mode=mode))
        if not response.allowed and not load.half_denied:
            raise RuntimeError("a check was denied: the limit is meant to be out of reach")
        return response

    return send


async def decision_counters(channel: grpc.aio.Channel) -> Counters:
    """Items decided and denied so far (GetStats, this process's unflushed counts included) and a clock."""
    total = (await rpc.LimiterServiceStub(channel).GetStats(pb.GetStatsRequest())).total
    return {"decisions": float(total.checks), "denied": float(total.denied), "seconds": time.monotonic()}


def decision_figures(increase: Counters) -> dict[str, float]:
    """Decisions per second and the share of them denied, over one run."""
    seconds, decisions = increase.get("seconds", 0.0), increase.get("decisions", 0.0)
    return {
        "decisions_per_s": decisions / seconds if seconds else float("nan"),
        "denied_share": increase.get("denied", 0.0) / decisions if decisions else float("nan"),
    }


def _case(backend: Backend, load: Load) -> Case:
    single = load.items == 1
    peer = limits_peer(
        load.picker,
        open_per_second=OPEN_PER_SECOND,
        strict=not load.half_denied,
        closed_per_day=CLOSED_PER_DAY,
    )
    return Case(
        name=load.name,
        backend=backend,
        server=lambda: service_process("limiter", backend),
        request=lambda channel: checker(channel, load),
        target=(0.75 if backend == "sqlite" else 0.5) if single and not load.half_denied else None,
        peer=peer if single else None,
        counters=decision_counters,
        derive=decision_figures,
    )


LOADS = (
    Load(),
    Load(hot=True),
    Load(half_denied=True),
    Load(items=BATCH),
    Load(items=BATCH, atomic=True),
)


def _cases() -> list[Case]:
    backends: tuple[Backend, ...] = ("sqlite", "postgresql")
    return [_case(backend, load) for load in LOADS for backend in backends]


SCENARIO = Scenario(
    name="limiter",
    description="Check through the limiter (GCRA): single items and batches of 100; peer: `limits` on Redis",
    cases=_cases,
)
