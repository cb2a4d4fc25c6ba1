"""Test-only table and batch handlers for the store tests (created in the test database, never migrated)."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from services.runtime.config import StoreSettings
from services.runtime.errors import InvalidArgument
from services.runtime.store import RefusedOps, Store

test_metadata = sa.MetaData()
counters = sa.Table(
    "store_test_counters",
    test_metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.BigInteger, nullable=False),
)

Op = tuple[str, int]


@contextmanager
def counters_table(url: str) -> Iterator[None]:
    """Creates the test table for the duration of a test."""
    engine = sa.create_engine(url)
    try:
        test_metadata.create_all(engine)
        yield
        test_metadata.drop_all(engine)
    finally:
        engine.dispose()


def open_store(url: str, **settings: object) -> Store:
    """A store with default settings except `settings`."""
    return Store.open(url, StoreSettings.model_validate(settings))


def upsert(conn: sa.Connection, totals: dict[str, int]) -> dict[str, int]:
    """Adds each total to its key in one statement; returns the new values."""
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    values = insert(counters).values([{"key": k, "value": v} for k, v in sorted(totals.items())])
    stmt = values.on_conflict_do_update(
        index_elements=[counters.c.key], set_={"value": counters.c.value + values.excluded.value}
    ).returning(counters.c.key, counters.c.value)
    return {key: value for key, value in conn.execute(stmt).all()}


class Increment:
    """Adds `by` to `key` and returns each caller its own new value, with duplicate keys merged (DESIGN.md §4).

    `by < 0` is refused for that op alone (an exception instance as its result). A batch holding the key
    `fail_key` raises, which makes the writer re-run the ops one by one. Ops on `refuse_key` are counted in
    the statement like the others, then refused (`RefusedOps`): the writer must roll that back.
    """

    name = "test.increment"

    def __init__(self, fail_key: str | None = None, refuse_key: str | None = None) -> None:
        self.fail_key = fail_key
        self.refuse_key = refuse_key
        self.calls: list[int] = []

    def run(self, conn: sa.Connection, ops: Sequence[Op]) -> Sequence[int | BaseException]:
        self.calls.append(len(ops))
        if self.fail_key is not None and any(key == self.fail_key for key, _ in ops):
            raise ValueError(f"key {self.fail_key!r} is refused")
        totals: dict[str, int] = {}
        for key, by in ops:
            if by >= 0:
                totals[key] = totals.get(key, 0) + by
        running = {}
        if totals:
            after = upsert(conn, totals)
            running = {key: after[key] - totals[key] for key in totals}
        refused = {
            i: InvalidArgument.of("key", "refused")
            for i, (key, _) in enumerate(ops)
            if key == self.refuse_key
        }
        if refused:
            raise RefusedOps(refused)
        results: list[int | BaseException] = []
        for key, by in ops:
            if by < 0:
                results.append(InvalidArgument.of("by", "must not be negative"))
                continue
            running[key] += by
            results.append(running[key])
        return results


class Blocker:
    """Holds the writer: its run() signals `started`, then waits for `release`, then increments its keys."""

    name = "test.blocker"

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()

    def run(self, conn: sa.Connection, ops: Sequence[str]) -> Sequence[int]:
        self.started.set()
        if not self.release.wait(10):
            raise TimeoutError("the test never released the blocker")
        after = upsert(conn, dict.fromkeys(ops, 1))
        return [after[key] for key in ops]


class Now:
    """Returns the store's "now" (microseconds) as the database sees it, once per op."""

    name = "test.now"

    def __init__(self, now: sa.ColumnElement[int]) -> None:
        self.now = now

    def run(self, conn: sa.Connection, ops: Sequence[None]) -> Sequence[int]:
        return [int(conn.execute(sa.select(self.now)).scalar_one()) for _ in ops]


def value_of(conn: sa.Connection, key: str) -> int | None:
    """The stored value of a key (None if absent)."""
    value = conn.execute(sa.select(counters.c.value).where(counters.c.key == key)).scalar()
    return None if value is None else int(value)
