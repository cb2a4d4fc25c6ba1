"""Random programs of check / concurrent checks / peek / reset / release against a model of each algorithm.

The service's decisions (real SQL on SQLite and PostgreSQL, through the group-commit writer, with a clock the
test moves) must agree exactly with an independent model (tests.limiter.models) on `allowed`, `remaining` and
`retry_after` — including checks submitted together, which the writer merges into one statement row.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.limiter import store as sql
from services.limiter.algorithms import Algorithm
from services.limiter.batch import CheckHandler
from services.limiter.decisions import CheckOp, Decision, Unit
from services.limiter.statements import SqlClock
from services.limiter.store import ReleaseHandler
from services.runtime.config import StoreSettings
from services.runtime.store import Store
from tests.limiter.models import ConcurrencyModel, FixedModel, GcraModel, SlidingModel

PERIODS = [1_000, 7_000, 1_000_000, 3_333_333, 60_000_000]
START_US = 1_795_000_000_000_000


@dataclass
class ModelClock:
    """The clock the statements read (bound as a parameter at each execution)."""

    now_us: int = START_US


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    opened = Store.open(db_url, StoreSettings())
    yield opened
    asyncio.run(opened.close())


def limiter_values(
    limiter_id: str, algorithm: Algorithm, limit: int, period: int, burst: int, ttl: int
) -> dict[str, Any]:
    return {
        "id": limiter_id,
        "algorithm": int(algorithm),
        "limit_count": limit,
        "period_us": period,
        "burst": burst,
        "failure_mode": 1,
        "shadow": False,
        "lease_ttl_us": ttl,
        "description": "",
    }


step = st.one_of(
    st.tuples(st.just("advance"), st.integers(0, 2_500_000)),
    st.tuples(st.just("check"), st.sampled_from("ab"), st.lists(st.integers(1, 4), min_size=1, max_size=5)),
    st.tuples(st.just("peek"), st.sampled_from("ab")),
    st.tuples(st.just("reset"), st.sampled_from("ab")),
    st.tuples(st.just("release"), st.integers(0, 20)),
)


class Runner:
    """Runs one program against the store and the model side by side."""

    def __init__(
        self, store: Store, clock: ModelClock, algorithm: Algorithm, model: Any, limiter_id: str
    ) -> None:
        self.store = store
        self.clock = clock
        self.algorithm = algorithm
        self.model = model
        self.limiter = limiter_id
        sql_clock = SqlClock.fixed(lambda: clock.now_us)
        self.checker = CheckHandler(store.dialect, sql_clock)
        self.releaser = ReleaseHandler(store.dialect, sql_clock)
        self.leases: list[str] = []

    def unit(self, key: str, cost: int) -> Unit:
        lease = uuid.uuid4().hex if self.algorithm is Algorithm.CONCURRENCY and cost else ""
        return Unit(self.limiter, key, cost, self.algorithm, lease_id=lease)

    async def check(self, key: str, costs: list[int], capacity: int) -> None:
        units = [self.unit(key, min(cost, capacity)) for cost in costs]
        results = await asyncio.gather(
            *(self.store.write(self.checker, CheckOp([unit], atomic=False)) for unit in units)
        )
        for unit, result in zip(units, results, strict=True):
            decision: Decision = result[0]
            if self.algorithm is Algorithm.CONCURRENCY:
                expected = self.model.check(key, unit.cost, self.clock.now_us, unit.lease_id)
                if decision.allowed:
                    self.leases.append(decision.lease_id)
            else:
                expected = self.model.check(key, unit.cost, self.clock.now_us)
            got = (decision.allowed, decision.view.remaining, decision.view.retry_after_us)
            assert got == (expected.allowed, expected.remaining, expected.retry_after_us), (
                unit,
                self.clock.now_us,
            )
            assert decision.consumed == decision.allowed

    async def peek(self, key: str) -> None:
        result = await self.store.write(self.checker, CheckOp([self.unit(key, 0)], atomic=False))
        expected = self.model.peek(key, self.clock.now_us)
        decision: Decision = result[0]
        got = (decision.allowed, decision.view.remaining, decision.view.retry_after_us)
        assert got == (expected.allowed, expected.remaining, expected.retry_after_us), (
            key,
            self.clock.now_us,
        )
        assert not decision.consumed

    async def reset(self, key: str) -> None:
        await self.store.transaction(lambda conn: sql.reset_key(conn, self.limiter, key))
        self.model.reset(key)

    async def release(self, index: int) -> None:
        if not self.leases:
            return
        lease = self.leases[index % len(self.leases)]
        released = await self.store.write(self.releaser, lease)
        assert released == self.model.release(lease, self.clock.now_us)


def run_program(store: Store, algorithm: Algorithm, data: st.DataObject) -> None:
    limit = data.draw(st.integers(1, 8), label="limit")
    period = data.draw(st.sampled_from(PERIODS), label="period_us")
    burst = data.draw(st.integers(1, 8), label="burst") if algorithm is Algorithm.GCRA else limit
    ttl = data.draw(st.sampled_from([1_000, 400_000, 3_000_000]), label="lease_ttl_us")
    program: list[Any] = data.draw(st.lists(step, min_size=1, max_size=25), label="program")
    clock = ModelClock(START_US + data.draw(st.integers(0, 10**9), label="start offset"))
    limiter_id = f"m{uuid.uuid4().hex[:12]}"
    capacity = burst if algorithm is Algorithm.GCRA else limit
    model: Any
    if algorithm is Algorithm.GCRA:
        model = GcraModel(limit, period, burst)
    elif algorithm is Algorithm.FIXED_WINDOW:
        model = FixedModel(limit, period)
    elif algorithm is Algorithm.SLIDING_WINDOW:
        model = SlidingModel(limit, period)
    else:
        model = ConcurrencyModel(limit, ttl)
    runner = Runner(store, clock, algorithm, model, limiter_id)
    values = limiter_values(limiter_id, algorithm, limit, period, burst, ttl)

    async def main() -> None:
        await store.transaction(
            lambda conn: sql.insert_limiter(conn, SqlClock.fixed(lambda: clock.now_us), values)
        )
        for action in program:
            if action[0] == "advance":
                clock.now_us += action[1]
            elif action[0] == "check":
                await runner.check(action[1], action[2], capacity)
            elif action[0] == "peek":
                await runner.peek(action[1])
            elif action[0] == "reset":
                await runner.reset(action[1])
            elif algorithm is Algorithm.CONCURRENCY:
                await runner.release(action[1])

    asyncio.run(main())


MODEL_SETTINGS = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.mark.parametrize("algorithm", list(Algorithm), ids=lambda a: a.name.lower())
@MODEL_SETTINGS
@given(data=st.data())
def test_decisions_agree_with_the_model(store: Store, algorithm: Algorithm, data: st.DataObject) -> None:
    run_program(store, algorithm, data)


def test_retry_after_honoured_exactly_is_allowed(store: Store) -> None:
    """For every algorithm: denied, wait exactly retry_after on the shared clock, then allowed."""
    clock = ModelClock()
    sql_clock = SqlClock.fixed(lambda: clock.now_us)
    checker = CheckHandler(store.dialect, sql_clock)

    async def main() -> None:
        for algorithm in Algorithm:
            limiter_id = f"r{algorithm.value}{uuid.uuid4().hex[:8]}"
            values = limiter_values(limiter_id, algorithm, 3, 1_000_003, 3, 999_999)
            await store.transaction(partial(sql.insert_limiter, clock=sql_clock, values=values))
            for round_no in range(4):
                denied = None
                for _ in range(10):
                    lease = uuid.uuid4().hex if algorithm is Algorithm.CONCURRENCY else ""
                    unit = Unit(limiter_id, "k", 2, algorithm, lease_id=lease)
                    decision = (await store.write(checker, CheckOp([unit], atomic=False)))[0]
                    if not decision.allowed:
                        denied = decision
                        break
                assert denied is not None, (algorithm, round_no)
                wait = denied.view.retry_after_us
                assert wait > 0
                clock.now_us += wait - 1
                early = (
                    await store.write(checker, CheckOp([Unit(limiter_id, "k", 0, algorithm)], atomic=False))
                )[0]
                clock.now_us += 1
                unit = Unit(limiter_id, "k", 2, algorithm, lease_id=uuid.uuid4().hex)
                later = (await store.write(checker, CheckOp([unit], atomic=False)))[0]
                assert later.allowed, (algorithm, round_no, wait)
                assert early.view.remaining < 2 or algorithm is Algorithm.CONCURRENCY, (algorithm, early)

    asyncio.run(main())


def test_stale_clock_never_over_admits(store: Store) -> None:
    """A statement whose "now" is older than the state (another replica moved it on) only under-admits."""
    clock = ModelClock()
    sql_clock = SqlClock.fixed(lambda: clock.now_us)
    checker = CheckHandler(store.dialect, sql_clock)

    async def main() -> None:
        for algorithm in (Algorithm.GCRA, Algorithm.FIXED_WINDOW, Algorithm.SLIDING_WINDOW):
            limiter_id = f"s{algorithm.value}{uuid.uuid4().hex[:8]}"
            values = limiter_values(limiter_id, algorithm, 5, 1_000_000, 5, 1_000_000)
            await store.transaction(partial(sql.insert_limiter, clock=sql_clock, values=values))
            admitted = 0
            # Alternate between a clock 2 s ahead and one 2 s behind: time seen by the key never goes back.
            for i in range(40):
                clock.now_us = START_US + (2_000_000 if i % 2 == 0 else -2_000_000)
                unit = Unit(limiter_id, "k", 1, algorithm)
                decision = (await store.write(checker, CheckOp([unit], atomic=False)))[0]
                admitted += decision.allowed
            assert admitted <= 5 + (5 if algorithm is Algorithm.SLIDING_WINDOW else 0), (algorithm, admitted)

            def state(conn: sa.Connection, lid: str = limiter_id) -> int:
                return int(
                    conn.execute(
                        sa.text("SELECT stamp_us FROM limiter_state WHERE limiter = :l"), {"l": lid}
                    ).scalar_one()
                )

            assert await store.read(state) >= START_US  # never moved back to the stale time

    asyncio.run(main())
