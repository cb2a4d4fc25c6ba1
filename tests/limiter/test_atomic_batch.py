"""ALL_OR_NOTHING checks of one writer batch decided together (one savepoint, one statement) give exactly what
deciding them one savepoint each gives: the same decisions, views and state left behind (SQLite and PostgreSQL).

The handler is run directly on whole batches, so the batch's composition is the test's, not the writer's.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from functools import partial
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.limiter import store as sql
from services.limiter.algorithms import Algorithm
from services.limiter.batch import CheckHandler
from services.limiter.decisions import CheckOp, Decision, Unit
from services.limiter.reads import views
from services.limiter.statements import SqlClock, dialect_of
from services.runtime.config import StoreSettings
from services.runtime.store import Store
from tests.limiter.test_model import START_US, limiter_values

KEYS = "abcdef"
COUNTING = [Algorithm.GCRA, Algorithm.FIXED_WINDOW, Algorithm.SLIDING_WINDOW]


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    opened = Store.open(db_url, StoreSettings())
    yield opened
    asyncio.run(opened.close())


item = st.tuples(st.sampled_from(KEYS), st.integers(0, 3))
request = st.tuples(st.lists(item, min_size=1, max_size=4), st.booleans(), st.booleans())
"""(items as (key, cost), all or nothing?, dry run?)"""


def ops_on(limiter_id: str, algorithm: Algorithm, requests: list[Any]) -> list[CheckOp]:
    """The batch as the service builds it: atomic when ALL_OR_NOTHING with several items."""
    return [
        CheckOp(
            [Unit(limiter_id, key, cost, algorithm) for key, cost in items],
            atomic=all_or_nothing and len(items) > 1,
            dry_run=dry_run,
        )
        for items, all_or_nothing, dry_run in requests
    ]


def summary(results: Any) -> list[list[tuple[bool, bool, int, int, int]]]:
    out = []
    for decisions in results:
        assert isinstance(decisions, list), decisions
        out.append([_shown(d) for d in decisions])
    return out


def _shown(d: Decision) -> tuple[bool, bool, int, int, int]:
    return (d.allowed, d.consumed, d.view.remaining, d.view.retry_after_us, d.view.reset_after_us)


def state_of(conn: Any, *, clock: SqlClock, dialect: str, limiter_id: str) -> list[tuple[int, int] | None]:
    """(remaining, retry_after) of every key, as a peek sees it."""
    found = views(conn, clock, dialect_of(dialect), [(limiter_id, key, 1) for key in KEYS])
    return [(v.remaining, v.retry_after_us) if v else None for v in found]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    algorithm=st.sampled_from(COUNTING),
    limit=st.integers(1, 6),
    first=st.lists(request, min_size=0, max_size=6),
    second=st.lists(request, min_size=2, max_size=8),
)
def test_deciding_together_agrees_with_one_savepoint_each(
    store: Store, algorithm: Algorithm, limit: int, first: list[Any], second: list[Any]
) -> None:
    clock = SqlClock.fixed(lambda: START_US)
    together, apart = f"t{uuid.uuid4().hex[:10]}", f"a{uuid.uuid4().hex[:10]}"
    handlers = {
        together: CheckHandler(store.dialect, clock),
        apart: CheckHandler(store.dialect, clock, atomic_together=False),
    }

    async def main() -> dict[str, Any]:
        seen: dict[str, Any] = {}
        for limiter_id, handler in handlers.items():
            values = limiter_values(limiter_id, algorithm, limit, 1_000_000, limit, 1_000_000)
            await store.transaction(partial(sql.insert_limiter, clock=clock, values=values))
            # Two batches: the first leaves some keys partly used, so that the second has denials too.
            results = []
            for batch in (first, second):
                ops = ops_on(limiter_id, algorithm, batch)
                results.append(summary(await store.transaction(partial(handler.run, ops=ops))))
            state = await store.read(
                partial(state_of, clock=clock, dialect=store.dialect, limiter_id=limiter_id)
            )
            seen[limiter_id] = (results, state)
        return seen

    seen = asyncio.run(main())
    assert seen[together] == seen[apart]


def test_a_denied_check_in_the_batch_leaves_the_others_decided_alone(store: Store) -> None:
    """The together attempt is rolled back when one op is denied; the others still consume, it does not."""
    clock = SqlClock.fixed(lambda: START_US)
    limiter_id = f"d{uuid.uuid4().hex[:10]}"
    handler = CheckHandler(store.dialect, clock)
    algorithm = Algorithm.FIXED_WINDOW

    async def main() -> None:
        values = limiter_values(limiter_id, algorithm, 2, 60_000_000, 2, 1_000_000)
        await store.transaction(partial(sql.insert_limiter, clock=clock, values=values))
        ops = ops_on(
            limiter_id,
            algorithm,
            [
                ([("a", 1), ("b", 1)], True, False),
                ([("c", 2), ("d", 3)], True, False),
                ([("e", 2)], True, False),
            ],
        )
        results = summary(await store.transaction(partial(handler.run, ops=ops)))
        assert [[allowed for allowed, *_ in r] for r in results] == [[True, True], [True, False], [True]]
        assert [[consumed for _, consumed, *_ in r] for r in results] == [
            [True, True],
            [False, False],
            [True],
        ]
        state = await store.read(partial(state_of, clock=clock, dialect=store.dialect, limiter_id=limiter_id))
        assert [s[0] if s else None for s in state][:5] == [1, 1, 2, 2, 0]

    asyncio.run(main())
