"""`python -m bench.writer_path`: the limiter's Check handler through `Store.write`, without gRPC.

Callers on one event loop send Checks of `--items` GCRA units on keys of their own (each of `--keys` keys
spread over the callers) straight to the group-commit writer, as `Limiters.check` does once a request is
validated. It reports decisions per second. That is the writer path alone (the batch handler's Python and
SQL, the transaction, the hand-offs between the loop and the writer thread), the bound a Check can never pass
whatever gRPC costs. Use it to measure a change to the handler, the statements or the store settings: it runs
in one process with no client and no gRPC, yet runs of one setting still spread by about ±10% on a shared
2-core machine, so compare settings in alternating runs, several of each.

    .venv/bin/python -m bench.writer_path                                # SQLite, 100 items, 64 callers
    .venv/bin/python -m bench.writer_path --set sqlite_checkpoint_ms=0   # one store setting changed
    .venv/bin/python -m bench.writer_path --url postgresql://postgres@127.0.0.1:5432/scratch
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from services.limiter import store as sql
from services.limiter.algorithms import Algorithm
from services.limiter.batch import CheckHandler
from services.limiter.decisions import CheckOp, Unit
from services.limiter.statements import SqlClock
from services.runtime.config import StoreSettings
from services.runtime.store import Store
from services.runtime.store.migrate import upgrade

LIMITER = "bench-writer-path"


@dataclass(frozen=True)
class Result:
    """Decisions per second of the measured seconds, and the writer's mean batch (operations)."""

    decisions_per_s: float
    mean_batch: float


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.writer_path", description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="database URL (default: a SQLite file in a temporary directory)")
    parser.add_argument("--items", type=int, default=100, help="units per Check (default 100)")
    parser.add_argument("--callers", type=int, default=64, help="Checks in flight (default 64)")
    parser.add_argument(
        "--keys", type=int, default=64_000, help="keys, shared out among callers (default 64,000)"
    )
    parser.add_argument("--seconds", type=float, default=6.0, help="measured seconds (default 6)")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds before measuring (default 3)")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="a store setting")
    return parser.parse_args(argv)


def _settings(pairs: list[str]) -> StoreSettings:
    values: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--set takes NAME=VALUE, not {pair!r}")
        values[name.strip()] = value.strip()
    return StoreSettings.model_validate(values)


async def measure(
    store: Store, *, items: int, callers: int, keys: int, seconds: float, warmup: float
) -> Result:
    """Runs the load on an open, migrated store (creating the benchmark's limiter if it is missing)."""
    clock = SqlClock.for_store(store)
    handler = CheckHandler(store.dialect, clock)
    values = {
        "id": LIMITER,
        "algorithm": int(Algorithm.GCRA),
        "limit_count": 10**9,
        "period_us": 1_000_000,
        "burst": 10**9,
        "failure_mode": 1,
        "shadow": False,
        "lease_ttl_us": 1_000_000,
        "description": "bench.writer_path",
    }
    await store.transaction(lambda conn: sql.insert_limiter(conn, clock, values))
    per_caller = max(items, keys // callers)
    decided = 0

    async def caller(index: int, until: float) -> None:
        nonlocal decided
        own = [f"c{index}-k{k}" for k in range(per_caller)]
        while time.monotonic() < until:
            units = [Unit(LIMITER, key, 1, Algorithm.GCRA) for key in random.sample(own, items)]
            await store.write(handler, CheckOp(units, atomic=False), weight=items)
            decided += items

    await asyncio.gather(*(caller(i, time.monotonic() + warmup) for i in range(callers)))
    decided, before = 0, store.stats()
    started = time.monotonic()
    await asyncio.gather(*(caller(i, started + seconds) for i in range(callers)))
    elapsed = time.monotonic() - started
    after = store.stats()
    batches = after.batches - before.batches
    return Result(decided / elapsed, (after.operations - before.operations) / batches if batches else 0.0)


def main(argv: list[str] | None = None) -> None:
    args = _arguments(argv)
    settings = _settings(args.set)
    with tempfile.TemporaryDirectory(prefix="bench-writer-path-") as scratch:
        url = args.url or f"sqlite:///{Path(scratch) / 'writer-path.db'}"
        upgrade(url)
        store = Store.open(url, settings)

        async def run() -> Result:
            try:
                return await measure(
                    store,
                    items=args.items,
                    callers=args.callers,
                    keys=args.keys,
                    seconds=args.seconds,
                    warmup=args.warmup,
                )
            finally:
                await store.close()

        result = asyncio.run(run())
    print(
        f"{store.dialect}, {args.items} items × {args.callers} callers on {args.keys:,} keys"
        f"{' with ' + ', '.join(args.set) if args.set else ''}: {result.decisions_per_s:,.0f} decisions/s, "
        f"mean batch {result.mean_batch:.1f} Checks"
    )


if __name__ == "__main__":
    main()
