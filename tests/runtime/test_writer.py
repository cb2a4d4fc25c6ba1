"""The group-commit writer: results per operation, bounds, failures, timeouts, close (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Sequence

import pytest
import sqlalchemy as sa

from services.runtime.errors import InvalidArgument, ResourceExhausted
from services.runtime.store import HandlerContractError, RefusedOps, Store, StoreTimeout, StoreUnavailable
from tests.harness import eventually
from tests.runtime.storekit import Blocker, Increment, counters, counters_table, open_store, value_of


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[Store]:
    with counters_table(db_url):
        opened = open_store(db_url)
        yield opened
        await opened.close()


async def hold_writer(store: Store, key: str = "held") -> tuple[Blocker, asyncio.Future[int]]:
    """Starts a write that blocks the writer thread until `blocker.release` is set."""
    blocker = Blocker()
    held = asyncio.ensure_future(store.write(blocker, key))
    await eventually(blocker.started.is_set)
    return blocker, held


async def test_concurrent_increments_each_get_their_own_value(store: Store) -> None:
    handler = Increment()
    results = await asyncio.gather(*(store.write(handler, ("hot", 1)) for _ in range(200)))
    assert sorted(results) == list(range(1, 201))
    assert await store.read(lambda conn: value_of(conn, "hot")) == 200
    stats = store.stats()
    assert stats.operations == 200
    assert stats.largest_batch > 1
    assert stats.batches < 200
    assert stats.mean_batch_size > 1
    assert max(handler.calls) > 1  # one run() for many ops: the batch really was one call


async def test_mixed_keys_in_one_batch_keep_arrival_order(store: Store) -> None:
    blocker, held = await hold_writer(store)
    handler = Increment()
    ops = [("a", 1), ("b", 10), ("a", 2), ("b", 20), ("a", 3)]
    writes = [asyncio.ensure_future(store.write(handler, op)) for op in ops]
    await eventually(lambda: store.stats().queued == len(ops))
    blocker.release.set()
    assert await asyncio.gather(*writes) == [1, 10, 3, 30, 6]
    assert handler.calls == [5]
    await held


async def test_refused_ops_fail_alone_and_the_batch_runs_again_without_them(store: Store) -> None:
    blocker, held = await hold_writer(store)
    handler = Increment(refuse_key="stale")
    ops = [("a", 1), ("stale", 5), ("a", 2), ("b", 3), ("stale", 1)]
    writes = [asyncio.ensure_future(store.write(handler, op)) for op in ops]
    await eventually(lambda: store.stats().queued == len(ops))
    blocker.release.set()
    await held
    results = await asyncio.gather(*writes, return_exceptions=True)
    assert [results[i] for i in (0, 2, 3)] == [1, 3, 3]
    assert all(isinstance(results[i], InvalidArgument) for i in (1, 4))
    assert handler.calls == [5, 3]  # the batch, then the others again in one run (not one by one)

    def stored(conn: sa.Connection) -> list[int | None]:
        return [value_of(conn, key) for key in ("a", "b", "stale")]

    values = await store.read(stored)
    assert values == [3, 3, None]  # nothing of "stale" stayed
    assert store.stats().isolations == 0


class RefusesBadly:
    """A handler whose RefusedOps names no op, or one it was not given: a contract error, never a hang."""

    name = "test.refuses_badly"

    def __init__(self, errors: dict[int, BaseException]) -> None:
        self.errors = errors

    def run(self, conn: sa.Connection, ops: Sequence[object]) -> Sequence[object]:
        raise RefusedOps(self.errors)


@pytest.mark.parametrize("errors", [{}, {7: ValueError("not one of the ops")}], ids=["none", "out-of-range"])
async def test_a_refusal_naming_no_given_op_fails_as_a_contract_error(
    store: Store, errors: dict[int, BaseException]
) -> None:
    handler = RefusesBadly(errors)
    results = await asyncio.gather(
        *(store.write(handler, i, timeout=10) for i in range(3)), return_exceptions=True
    )
    assert all(isinstance(r, HandlerContractError) for r in results), results


async def test_batches_stop_at_max_batch_rows_of_weight(db_url: str) -> None:
    with counters_table(db_url):
        store = open_store(db_url, max_batch_rows=10)
        try:
            blocker, held = await hold_writer(store)
            handler = Increment()
            weights = [4, 4, 4, 12, 1]  # batches: [4, 4] (12 would not fit), [4], [12] alone, [1]
            writes = [
                asyncio.ensure_future(store.write(handler, (f"k{i}", 1), weight=weight))
                for i, weight in enumerate(weights)
            ]
            await eventually(lambda: store.stats().queued == len(weights))
            blocker.release.set()
            assert await asyncio.gather(*writes) == [1] * len(weights)
            assert handler.calls == [2, 1, 1, 1]
            await held
        finally:
            await store.close()


async def test_full_queue_is_refused_at_once_and_queued_writes_complete(db_url: str) -> None:
    with counters_table(db_url):
        store = open_store(db_url, writer_queue=4)
        try:
            blocker, held = await hold_writer(store)
            handler = Increment()
            queued = [asyncio.ensure_future(store.write(handler, (f"k{i}", 1))) for i in range(4)]
            await eventually(lambda: store.stats().queued == 4)
            with pytest.raises(ResourceExhausted) as refused:
                await store.write(handler, ("late", 1))
            assert refused.value.reason == "WRITER_QUEUE_FULL"
            assert 0 < refused.value.retry_after <= 1.0
            assert store.stats().rejected == 1
            blocker.release.set()
            assert await asyncio.gather(*queued) == [1, 1, 1, 1]
            assert await held == 1
            assert await store.read(lambda conn: value_of(conn, "late")) is None
        finally:
            await store.close()


async def test_one_failing_op_fails_alone(store: Store) -> None:
    blocker, held = await hold_writer(store)
    handler = Increment(fail_key="bad")
    writes = [asyncio.ensure_future(store.write(handler, (key, 1))) for key in ("x", "bad", "y", "x")]
    await eventually(lambda: store.stats().queued == 4)
    blocker.release.set()
    results = await asyncio.gather(*writes, return_exceptions=True)
    assert results[0] == 1
    assert isinstance(results[1], ValueError)
    assert results[2:] == [1, 2]
    assert store.stats().isolations == 1
    assert await store.read(lambda conn: value_of(conn, "bad")) is None
    assert await store.read(lambda conn: value_of(conn, "x")) == 2
    await held


async def test_returned_exception_fails_only_that_caller(store: Store) -> None:
    blocker, held = await hold_writer(store)
    handler = Increment()
    writes = [asyncio.ensure_future(store.write(handler, op)) for op in (("k", 1), ("k", -5), ("k", 1))]
    await eventually(lambda: store.stats().queued == 3)
    blocker.release.set()
    results = await asyncio.gather(*writes, return_exceptions=True)
    assert results[0] == 1
    assert isinstance(results[1], InvalidArgument)
    assert results[2] == 2
    assert store.stats().isolations == 0  # the batch itself succeeded
    await held


async def test_write_not_started_by_its_timeout_never_executes(store: Store) -> None:
    blocker, held = await hold_writer(store)
    handler = Increment()
    with pytest.raises(StoreTimeout):
        await store.write(handler, ("late", 1), timeout=0.05)
    blocker.release.set()
    await held
    assert await store.write(handler, ("after", 1)) == 1
    assert await store.read(lambda conn: value_of(conn, "late")) is None
    assert handler.calls == [1]  # only the write after the release ran
    assert store.stats().skipped == 1


async def test_write_timing_out_while_executing_does_not_stick_the_writer(store: Store) -> None:
    blocker = Blocker()
    with pytest.raises(StoreTimeout):
        await store.write(blocker, "slow", timeout=0.1)
    assert blocker.started.is_set()
    blocker.release.set()
    assert await store.write(Increment(), ("next", 1), timeout=5) == 1
    assert await store.read(lambda conn: value_of(conn, "slow")) == 1  # it ran; only its result was dropped


async def test_a_shorter_timeout_queued_behind_a_longer_one_times_out_by_its_own(store: Store) -> None:
    blocker, held = await hold_writer(store)
    handler = Increment()
    long = asyncio.ensure_future(store.write(handler, ("long", 1), timeout=30))
    await eventually(lambda: store.stats().queued == 1)
    with pytest.raises(StoreTimeout):
        await store.write(handler, ("short", 1), timeout=0.05)
    assert not long.done()
    blocker.release.set()
    await held
    assert await long == 1
    assert await store.read(lambda conn: value_of(conn, "short")) is None  # never started


async def test_cancelled_write_is_skipped(store: Store) -> None:
    blocker, held = await hold_writer(store)
    handler = Increment()
    cancelled = asyncio.ensure_future(store.write(handler, ("gone", 1)))
    await eventually(lambda: store.stats().queued == 1)
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    blocker.release.set()
    await held
    assert await store.write(handler, ("kept", 1)) == 1
    assert await store.read(lambda conn: value_of(conn, "gone")) is None
    assert store.stats().skipped == 1


async def test_close_flushes_queued_writes_and_refuses_new_ones(db_url: str) -> None:
    with counters_table(db_url):
        store = open_store(db_url)
        blocker, held = await hold_writer(store)
        handler = Increment()
        queued = [asyncio.ensure_future(store.write(handler, (f"k{i}", i))) for i in range(20)]
        await eventually(lambda: store.stats().queued == 20)
        closing = asyncio.ensure_future(store.close())
        await eventually(lambda: store._writer._closing)
        with pytest.raises(StoreUnavailable, match="closing"):
            await store.write(handler, ("refused", 1))
        assert not closing.done()
        blocker.release.set()
        await closing
        await store.close()  # twice is fine
        assert await asyncio.gather(*queued) == list(range(20))
        assert await held == 1
        engine = sa.create_engine(db_url)
        try:
            with engine.connect() as conn:
                rows = dict(conn.execute(sa.select(counters.c.key, counters.c.value)).all())
        finally:
            engine.dispose()
        assert rows == {"held": 1, **{f"k{i}": i for i in range(20)}}


async def test_transaction_runs_alone_and_rolls_back_on_error(store: Store) -> None:
    def insert_then(fail: bool) -> Callable[[sa.Connection], int]:
        def fn(conn: sa.Connection) -> int:
            conn.execute(sa.insert(counters).values(key="tx", value=7))
            if fail:
                raise LookupError("refused")
            return 7

        return fn

    with pytest.raises(LookupError):
        await store.transaction(insert_then(True))
    assert await store.read(lambda conn: value_of(conn, "tx")) is None
    assert await store.transaction(insert_then(False)) == 7
    assert await store.read(lambda conn: value_of(conn, "tx")) == 7


async def test_writes_from_several_event_loops(store: Store) -> None:
    handler = Increment()
    results: dict[int, list[int]] = {}

    def in_own_loop(n: int) -> None:
        async def main() -> list[int]:
            return list(await asyncio.gather(*(store.write(handler, ("shared", 1)) for _ in range(50))))

        results[n] = asyncio.run(main())

    threads = [threading.Thread(target=in_own_loop, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()

    def join_all() -> None:
        for thread in threads:
            thread.join(30)

    await asyncio.to_thread(join_all)
    assert sorted(v for values in results.values() for v in values) == list(range(1, 151))


async def test_timeouts_hold_on_every_event_loop_and_closed_loops_are_forgotten(store: Store) -> None:
    blocker, held = await hold_writer(store)
    handler = Increment()
    outcomes: dict[int, str] = {}

    def in_own_loop(n: int) -> None:
        async def main() -> str:
            try:
                await store.write(handler, (f"loop-{n}", 1), timeout=0.05)
            except StoreTimeout:
                return "timed out"
            return "written"

        outcomes[n] = asyncio.run(main())

    threads = [threading.Thread(target=in_own_loop, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        await asyncio.to_thread(thread.join, 30)
    assert outcomes == {0: "timed out", 1: "timed out", 2: "timed out"}  # each by its own loop's timer
    with pytest.raises(StoreTimeout, match=r"store transaction did not finish within 0.05 s"):
        await store.transaction(lambda conn: conn.exec_driver_sql("SELECT 1").scalar(), timeout=0.05)
    assert all(not loop.is_closed() for loop in store._expiry)  # the threads' closed loops were dropped
    blocker.release.set()
    await held
    assert await store.write(handler, ("after", 1), timeout=5) == 1
    assert handler.calls == [1]  # none of the timed-out writes ran


async def test_read_timeout_and_results(store: Store) -> None:
    assert await store.read(lambda conn: conn.execute(sa.text("SELECT 41 + 1")).scalar()) == 42
    gate = threading.Event()
    with pytest.raises(StoreTimeout):
        await store.read(lambda conn: gate.wait(10), timeout=0.05)
    gate.set()
    assert await store.ping()
