"""Limiters at the edges of what validation accepts: every product stays an exact 64-bit integer.

`limit × period` and `burst × period` may be as large as 2^62 (µs). The statements must then neither overflow
(PostgreSQL: `bigint out of range`) nor turn integers into floats (SQLite does so silently); decisions must
still agree with the exact model (tests.limiter.models), with a clock the test moves over large spans.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
import sqlalchemy as sa

from services.limiter import store as sql
from services.limiter.algorithms import MAX_SCALED, Algorithm
from services.limiter.batch import CheckHandler
from services.limiter.decisions import CheckOp, Unit
from services.limiter.statements import SqlClock
from services.runtime.store import Store
from tests.limiter.models import FixedModel, GcraModel, SlidingModel
from tests.limiter.test_model import START_US, ModelClock, limiter_values, store  # noqa: F401

YEAR_US = 366 * 86_400_000_000
EDGES = [
    # (algorithm, limit, period_us, burst)
    (Algorithm.GCRA, 2**52 - 1, 1024, 2**52),  # burst × period = 2^62; refill rounding pushes past it
    (Algorithm.GCRA, 1, 1000, MAX_SCALED // 1000),
    (Algorithm.GCRA, MAX_SCALED // 1000, 1000, 1),
    (Algorithm.GCRA, MAX_SCALED // YEAR_US, YEAR_US, MAX_SCALED // YEAR_US),
    (Algorithm.FIXED_WINDOW, MAX_SCALED // 1000, 1000, MAX_SCALED // 1000),
    (Algorithm.FIXED_WINDOW, MAX_SCALED // YEAR_US, YEAR_US, MAX_SCALED // YEAR_US),
    (Algorithm.SLIDING_WINDOW, MAX_SCALED // 1000, 1000, MAX_SCALED // 1000),
    (Algorithm.SLIDING_WINDOW, MAX_SCALED // YEAR_US, YEAR_US, MAX_SCALED // YEAR_US),
]


def model_of(algorithm: Algorithm, limit: int, period: int, burst: int) -> Any:
    if algorithm is Algorithm.GCRA:
        return GcraModel(limit, period, burst)
    if algorithm is Algorithm.FIXED_WINDOW:
        return FixedModel(limit, period)
    return SlidingModel(limit, period)


@pytest.mark.parametrize(("algorithm", "limit", "period", "burst"), EDGES)
def test_scaled_products_at_the_bound_stay_exact(
    store: Store,  # noqa: F811
    algorithm: Algorithm,
    limit: int,
    period: int,
    burst: int,
) -> None:
    clock = ModelClock()
    sql_clock = SqlClock.fixed(lambda: clock.now_us)
    checker = CheckHandler(store.dialect, sql_clock)
    limiter_id = f"x{uuid.uuid4().hex[:12]}"
    capacity = burst if algorithm is Algorithm.GCRA else limit
    model = model_of(algorithm, limit, period, burst)
    # (clock advance, cost): a nearly full key left alone for longer than a full refill takes is the case
    # where `level + refill` passes 2^63.
    steps = [
        (0, 1),
        (3 * period, 1),
        (0, capacity),
        (1, 1),
        (period - 1, capacity // 2 + 1),
        (period // 2, 1),
        (10**12, 1),
        (10**12, capacity),
        (period, capacity),
        (2 * period + 1, 1),
        (0, 1),
    ]

    async def main() -> None:
        values = limiter_values(limiter_id, algorithm, limit, period, burst, 1_000_000)
        await store.transaction(lambda conn: sql.insert_limiter(conn, sql_clock, values))
        for advance, cost in steps:
            clock.now_us += advance
            unit = Unit(limiter_id, "k", cost, algorithm)
            decision = (await store.write(checker, CheckOp([unit], atomic=False)))[0]
            expected = model.check("k", cost, clock.now_us)
            got = (decision.allowed, decision.view.remaining, decision.view.retry_after_us)
            assert got == (expected.allowed, expected.remaining, expected.retry_after_us), (advance, cost)

        def stored_types(conn: sa.Connection) -> Any:
            if store.dialect != "sqlite":
                return None
            return conn.execute(
                sa.text(
                    "SELECT typeof(level), typeof(stamp_us), typeof(expires_us), typeof(before_level) "
                    "FROM limiter_state WHERE limiter = :l"
                ),
                {"l": limiter_id},
            ).one()

        types = await store.read(stored_types)
        assert types is None or tuple(types) == ("integer",) * 4

    asyncio.run(main())
