"""The store scenario's server: a Foundation process with one extra RPC doing one upsert through the writer.

`python -m bench.store_server` runs a runtime `ServiceApp` (interceptors, admission, health, metrics, the
store's group-commit writer) hosting the limiter stub, plus `foundation.bench.v1.BenchStore` served by a
generic handler (no proto needed: the messages are protobuf wrappers):

- `Add(StringValue key) -> Int64Value`: adds 1 to the key's counter with one `Store.write()` and returns the
  count after this request's increment, exactly as if the requests had run one by one;
- `Stats(Empty) -> StringValue`: the writer's statistics as JSON (for the mean batch size).

The batch handler is the design's recipe (DESIGN.md §4): duplicates of a key inside a batch are merged, the
batch is one statement over all its keys in sorted order, and the counts it returns are handed back to the
callers in arrival order. The database and port are configured through `FOUNDATION_*` variables
(bench.servers.foundation_env, e.g. `FOUNDATION_LIMITER__PORT=0`);
the process prints `READY bench-store <host>:<port> metrics=<port|off>` once serving.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import signal
import sys
from collections import Counter
from collections.abc import Sequence
from typing import Any

import grpc
import sqlalchemy as sa
from google.protobuf import empty_pb2, wrappers_pb2

from services.runtime.config import load_settings
from services.runtime.server import ServiceApp
from services.runtime.service import ServiceParts
from services.runtime.store import Store

HOST_SERVICE = "limiter"
"""The service whose process hosts the bench RPC (ServiceApp runs a registered service; the limiter's
background work is one sweep every few minutes, so it does not disturb the measurement)."""
SERVICE_NAME = "foundation.bench.v1.BenchStore"

_bench_metadata = sa.MetaData()
counters = sa.Table(
    "bench_counters",
    _bench_metadata,
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("count", sa.BigInteger, nullable=False),
)
"""Lives only in the throw-away bench database; not on the suite's metadata, so no migration knows it."""

# One fixed statement per dialect, whatever the batch size: the keys travel as one array (PostgreSQL) or one
# JSON document (SQLite), so the statement is parsed once and each batch costs one execute.
_UPSERT = {
    "postgresql": sa.text(
        "INSERT INTO bench_counters (key, count) "
        "SELECT k, c FROM unnest(CAST(:keys AS text[]), CAST(:counts AS bigint[])) AS t(k, c) "
        "ON CONFLICT (key) DO UPDATE SET count = bench_counters.count + excluded.count "
        "RETURNING key, count"
    ),
    "sqlite": sa.text(
        "INSERT INTO bench_counters (key, count) "
        "SELECT value ->> 0, value ->> 1 FROM json_each(:rows) WHERE true "
        "ON CONFLICT (key) DO UPDATE SET count = bench_counters.count + excluded.count "
        "RETURNING key, count"
    ),
}


class AddHandler:
    """Adds 1 per operation (a key) to that key's counter; returns each operation's count after it."""

    name = "bench.add"

    def __init__(self, dialect: str) -> None:
        self._statement = _UPSERT[dialect]
        self._dialect = dialect

    def run(self, conn: sa.Connection, ops: Sequence[str]) -> Sequence[int]:
        """One statement for the whole batch; duplicates merged, keys in sorted order."""
        increments = Counter(ops)
        keys = sorted(increments)
        if self._dialect == "postgresql":
            params: dict[str, Any] = {"keys": keys, "counts": [increments[key] for key in keys]}
        else:
            params = {"rows": json.dumps([[key, increments[key]] for key in keys])}
        after = {key: count for key, count in conn.execute(self._statement, params)}
        running = {key: after[key] - increments[key] for key in keys}
        results = []
        for key in ops:
            running[key] += 1
            results.append(running[key])
        return results


class BenchStore:
    """The two RPCs; bound to the store once the app has opened it."""

    def __init__(self) -> None:
        self._bound: tuple[Store, AddHandler] | None = None

    async def bind(self, store: Store) -> None:
        """Creates the counters table and prepares the handler for this database."""
        await store.transaction(lambda conn: _bench_metadata.create_all(conn))
        self._bound = (store, AddHandler(store.dialect))

    def _writer(self) -> tuple[Store, AddHandler]:
        if self._bound is None:  # on_start binds before the port serves, so no call can see this
            raise RuntimeError("the bench store is not bound yet")
        return self._bound

    async def add_one(self, key: str) -> int:
        """Adds 1 to `key` through the group-commit writer; the count right after this increment."""
        store, handler = self._writer()
        return await store.write(handler, key)

    def writer_stats(self) -> dict[str, Any]:
        """The writer's statistics since the store opened."""
        return dataclasses.asdict(self._writer()[0].stats())

    async def _add(self, request: wrappers_pb2.StringValue, _context: object) -> wrappers_pb2.Int64Value:
        return wrappers_pb2.Int64Value(value=await self.add_one(request.value))

    async def _stats(self, _request: empty_pb2.Empty, _context: object) -> wrappers_pb2.StringValue:
        return wrappers_pb2.StringValue(value=json.dumps(self.writer_stats()))

    def handler_for(self) -> grpc.GenericRpcHandler[Any, Any]:
        """The generic handler serving both methods."""
        return grpc.method_handlers_generic_handler(
            SERVICE_NAME,
            {
                "Add": grpc.unary_unary_rpc_method_handler(
                    self._add,
                    request_deserializer=wrappers_pb2.StringValue.FromString,
                    response_serializer=wrappers_pb2.Int64Value.SerializeToString,
                ),
                "Stats": grpc.unary_unary_rpc_method_handler(
                    self._stats,
                    request_deserializer=empty_pb2.Empty.FromString,
                    response_serializer=wrappers_pb2.StringValue.SerializeToString,
                ),
            },
        )


async def main() -> int:
    """Runs the app until SIGTERM/SIGINT; prints the READY line once serving."""
    settings = load_settings()
    bench = BenchStore()
    app: ServiceApp

    async def bind_store() -> None:
        assert app.context.store is not None
        await bench.bind(app.context.store)

    parts = ServiceParts(
        register=[lambda server: server.add_generic_rpc_handlers((bench.handler_for(),))],
        service_names=[SERVICE_NAME],
        on_start=[bind_store],
    )
    app = ServiceApp(HOST_SERVICE, settings, extra_parts=parts)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, app.request_stop)
    await app.start()
    metrics = "off" if app.metrics_port is None else str(app.metrics_port)
    print(f"READY bench-store {app.address} metrics={metrics}", flush=True)
    await app.wait_stopped()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
