"""bench.writer_path: the Check handler's load through Store.write (a short run on each backend)."""

from __future__ import annotations

import sqlalchemy as sa

from bench.writer_path import LIMITER, measure
from services.runtime.config import StoreSettings
from services.runtime.store import Store


async def test_a_short_run_decides_on_every_callers_own_keys(db_url: str) -> None:
    store = Store.open(db_url, StoreSettings())
    try:
        result = await measure(store, items=5, callers=4, keys=40, seconds=0.3, warmup=0.1)

        def keys(conn: sa.Connection) -> list[str]:
            query = sa.text("SELECT key FROM limiter_state WHERE limiter = :l")
            return [row[0] for row in conn.execute(query, {"l": LIMITER})]

        stored = await store.read(keys)
    finally:
        await store.close()
    assert result.decisions_per_s > 0
    assert result.mean_batch >= 1
    # 4 callers × 10 keys of their own, 5 of them per Check: every stored key is one of those.
    assert stored
    assert set(stored) <= {f"c{c}-k{k}" for c in range(4) for k in range(10)}
