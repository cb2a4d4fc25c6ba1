"""The store scenario's batch handler: exact counts, merged duplicates, arrival order, on both backends.

The benchmark measures speed only, so the correctness of what it measures is checked here, through a real
Store and its group-commit writer.
"""

from __future__ import annotations

import asyncio

import sqlalchemy as sa

from bench.store_server import BenchStore, counters
from services.runtime.config import StoreSettings
from services.runtime.store import Store


async def test_concurrent_adds_are_exact_and_each_caller_gets_its_own_count(db_url: str) -> None:
    store = await asyncio.to_thread(Store.open, db_url, StoreSettings())
    bench = BenchStore()
    try:
        await bench.bind(store)
        keys = ["hot"] * 150 + [f"k{i % 30}" for i in range(150)]
        results = await asyncio.gather(*(bench.add_one(key) for key in keys))

        hot = [count for key, count in zip(keys, results, strict=True) if key == "hot"]
        assert sorted(hot) == list(range(1, 151))
        for i in range(30):
            mine = [count for key, count in zip(keys, results, strict=True) if key == f"k{i}"]
            assert sorted(mine) == list(range(1, 6))
        rows = await store.read(
            lambda conn: dict(conn.execute(sa.select(counters.c.key, counters.c.count)).all())
        )
        assert rows["hot"] == 150
        assert all(rows[f"k{i}"] == 5 for i in range(30))
        stats = bench.writer_stats()
        assert stats["operations"] >= 300
        assert stats["batches"] < 300  # concurrent writes were grouped
    finally:
        await store.close()
