"""Group-commit writes: one atomic upsert per request through `Store.write()`, on SQLite and PostgreSQL.

The server is `bench.store_server` (a runtime ServiceApp with one extra RPC); each request adds 1 to a
counter and gets the new count back. Two key patterns: *distinct keys* (each of the 64 workers cycles through
its own 1,000 keys, so a batch never holds a key twice) and *one hot key* (every request on the same key, so
the writer must merge duplicates inside a batch). The design (DESIGN.md §4) expects 0.8–0.9× of the no-op
ceiling for both; the mean batch size comes from the writer's own counters. Last, one call in flight shows
the idle latency the batching window adds (the design expects ~0.2–0.3 ms over the health Check).
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import grpc
from google.protobuf import empty_pb2, wrappers_pb2

from bench.harness import Case, Counters, Scenario
from bench.loadgen import RequestFn
from bench.servers import Backend, foundation_command, foundation_process

TARGET = 0.8
KEYS_PER_WORKER = 1000
_ADD = "/foundation.bench.v1.BenchStore/Add"
_STATS = "/foundation.bench.v1.BenchStore/Stats"


def _adder(channel: grpc.aio.Channel, hot: bool) -> RequestFn:
    add = channel.unary_unary(
        _ADD,
        request_serializer=wrappers_pb2.StringValue.SerializeToString,
        response_deserializer=wrappers_pb2.Int64Value.FromString,
    )
    sent = [0] * 1024  # per-worker request counter, to walk each worker's own keys

    async def send(worker: int) -> object:
        if hot:
            key = "hot"
        else:
            key = f"w{worker}:{sent[worker] % KEYS_PER_WORKER}"
            sent[worker] += 1
        return await add(wrappers_pb2.StringValue(value=key))

    return send


async def writer_counters(channel: grpc.aio.Channel) -> Counters:
    """The writer's cumulative numeric statistics (operations, batches, retries, …)."""
    stats = channel.unary_unary(
        _STATS,
        request_serializer=empty_pb2.Empty.SerializeToString,
        response_deserializer=wrappers_pb2.StringValue.FromString,
    )
    fields = json.loads((await stats(empty_pb2.Empty())).value)
    return {key: float(value) for key, value in fields.items() if isinstance(value, int | float)}


def batch_figures(increase: Mapping[str, float]) -> dict[str, float]:
    """Mean operations per batch over one run, and the retries and failures it saw."""
    batches = increase.get("batches", 0.0)
    return {
        "mean_batch": increase.get("operations", 0.0) / batches if batches else float("nan"),
        "retries": increase.get("retries", 0.0),
        "failures": increase.get("failures", 0.0),
    }


def _case(backend: Backend, *, hot: bool = False, idle: bool = False) -> Case:
    argv = foundation_command("bench.store_server")
    name = "one hot key" if hot else "distinct keys"
    return Case(
        name=name + (", 1 in flight" if idle else ""),
        backend=backend,
        server=lambda: foundation_process("bench-store", argv, backend, limiter__port=0),
        request=lambda channel: _adder(channel, hot),
        target=None if idle else TARGET,
        counters=writer_counters,
        derive=batch_figures,
        concurrency=1 if idle else None,
    )


def _cases() -> list[Case]:
    backends: tuple[Backend, ...] = ("sqlite", "postgresql")
    loaded = [_case(backend, hot=hot) for backend in backends for hot in (False, True)]
    return loaded + [_case(backend, idle=True) for backend in backends]


SCENARIO = Scenario(
    name="store",
    description="one upsert per request through the group-commit writer (distinct keys, one hot key)",
    cases=_cases,
)
