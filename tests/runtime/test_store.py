"""Store.open, engines, replicas sharing a database, the clock, and recovery from database trouble."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from services.runtime.config import StoreSettings
from services.runtime.store import Store, StoreUnavailable, StoreUrlError
from services.runtime.store.engine import SQLITE_BEGIN_OPTION, create_engine
from services.runtime.store.errors import is_transient
from services.runtime.store.writer import MAX_RETRIES
from tests.harness import eventually
from tests.runtime.storekit import Increment, Now, counters_table, open_store, value_of


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[Store]:
    with counters_table(db_url):
        opened = open_store(db_url)
        yield opened
        await opened.close()


def test_open_unreachable_postgres_names_the_url_on_one_line_without_password() -> None:
    url = "postgresql://foundation:s3cret-pw@127.0.0.1:1/foundation"
    started = time.monotonic()
    with pytest.raises(StoreUnavailable) as raised:
        Store.open(url, StoreSettings())
    message = str(raised.value)
    assert "127.0.0.1:1" in message
    assert "s3cret-pw" not in message
    assert "***" in message
    assert "\n" not in message
    assert "refused" in message.lower()
    assert time.monotonic() - started < 10


@pytest.mark.parametrize(
    "url",
    [
        "mysql://root@localhost/db",
        "sqlite://",
        "sqlite:///:memory:",
        "postgresql+asyncpg://u@h/db",
        "nonsense",
    ],
)
def test_unusable_urls_are_refused_before_connecting(url: str) -> None:
    with pytest.raises(StoreUrlError):
        Store.open(url, StoreSettings())


async def test_sqlite_runs_wal_with_synchronous_normal_and_creates_its_directory(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "store.db"
    store = Store.open(f"sqlite:///{path}", StoreSettings())
    try:
        assert path.exists()
        assert store.dialect == "sqlite"

        def pragmas(conn: sa.Connection) -> tuple[str, int, int]:
            journal = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
            synchronous = conn.exec_driver_sql("PRAGMA synchronous").scalar()
            busy = conn.exec_driver_sql("PRAGMA busy_timeout").scalar()
            return str(journal), int(synchronous or 0), int(busy or 0)

        assert await store.read(pragmas) == ("wal", 1, 5000)
    finally:
        await store.close()


async def test_sqlite_writer_takes_the_write_lock_at_begin(sqlite_url: str) -> None:
    """BEGIN IMMEDIATE: while another connection holds the write lock, even a transaction that only reads
    cannot start (a DEFERRED one would, and would fail later when upgrading to a write lock)."""
    path = sa.make_url(sqlite_url).database
    assert path is not None
    store = open_store(sqlite_url, statement_timeout_ms=50)
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(StoreUnavailable, match="busy"):
            await store.transaction(lambda conn: conn.exec_driver_sql("SELECT 1").scalar())
        assert store.stats().retries == MAX_RETRIES
        other.execute("COMMIT")
        assert await store.transaction(lambda conn: conn.exec_driver_sql("SELECT 1").scalar()) == 1
    finally:
        other.close()
        await store.close()


def test_a_begin_refused_by_a_locked_file_is_sqlalchemys_error(sqlite_url: str) -> None:
    """BEGIN goes to the driver directly; its failure must still be SQLAlchemy's error (callers such as
    `foundation migrate` catch those), classified as transient."""
    path = sa.make_url(sqlite_url).database
    assert path is not None
    engine, _ = create_engine(sqlite_url, StoreSettings.model_validate({"statement_timeout_ms": 50}))
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN EXCLUSIVE")
        with engine.connect() as conn:
            immediate = conn.execution_options(**{SQLITE_BEGIN_OPTION: "IMMEDIATE"})
            with pytest.raises(sa.exc.OperationalError, match="locked") as refused:
                immediate.begin()
        assert "BEGIN IMMEDIATE" in str(refused.value)
        assert is_transient(refused.value)
    finally:
        other.close()
        engine.dispose()


async def test_two_replicas_on_one_database_lose_no_increment(db_url: str) -> None:
    with counters_table(db_url):
        replicas = [open_store(db_url), open_store(db_url)]
        try:
            handler = Increment()
            writes = [replicas[i % 2].write(handler, ("hot", 1)) for i in range(300)]
            results = await asyncio.gather(*writes)
            assert sorted(results) == list(range(1, 301))
            assert await replicas[0].read(lambda conn: value_of(conn, "hot")) == 300
            assert all(replica.stats().operations > 0 for replica in replicas)
        finally:
            await asyncio.gather(*(replica.close() for replica in replicas))


async def test_transient_lock_conflict_is_retried(db_url: str) -> None:
    """A real lock held by another connection makes the first attempts fail (SQLite busy / PostgreSQL
    lock_timeout); the writer retries and the write succeeds once the lock is gone."""
    with counters_table(db_url):
        store = open_store(db_url, statement_timeout_ms=100)
        handler = Increment()
        await store.write(handler, ("k", 1))
        other_engine = sa.create_engine(db_url)
        try:
            other = other_engine.connect()
            if store.dialect == "sqlite":
                other.exec_driver_sql("BEGIN IMMEDIATE")
            else:
                other.exec_driver_sql("SELECT value FROM store_test_counters WHERE key = 'k' FOR UPDATE")
            write = asyncio.ensure_future(store.write(handler, ("k", 1)))
            await eventually(lambda: store.stats().retries >= 1, within=10)
            other.rollback()
            other.close()
            assert await asyncio.wait_for(write, 10) == 2
        finally:
            other_engine.dispose()
            await store.close()


async def test_writer_recovers_after_its_connection_is_killed(pg_url: str) -> None:
    with counters_table(pg_url):
        store = open_store(pg_url)
        try:
            handler = Increment()
            assert await store.write(handler, ("k", 1)) == 1
            admin = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
            try:
                with admin.connect() as conn:
                    killed = conn.execute(
                        sa.text(
                            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                            "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                            "AND application_name = 'foundation'"
                        )
                    ).scalar()
            finally:
                admin.dispose()
            assert killed
            failures = 0
            for expected in (2, 3):
                try:
                    assert await store.write(handler, ("k", 1)) == expected
                except StoreUnavailable:
                    failures += 1
                    assert await store.write(handler, ("k", 1)) == expected
            assert failures <= 1
        finally:
            await store.close()


async def test_clock_is_microseconds_of_now(store: Store) -> None:
    before = time.time_ns() // 1000
    values = await asyncio.gather(*(store.write(Now(store.now_us_sql()), None) for _ in range(20)))
    after = time.time_ns() // 1000
    slack = 2_000_000  # the database server's clock is this host's; allow for rounding and scheduling
    assert all(before - slack <= v <= after + slack for v in values)
    read_now = await store.read(lambda conn: conn.execute(sa.select(store.now_us_sql())).scalar_one())
    assert before - slack <= read_now <= time.time_ns() // 1000 + slack


async def test_sqlite_clock_is_one_value_per_batch_and_never_goes_back(sqlite_url: str) -> None:
    store = open_store(sqlite_url)
    try:
        handler = Now(store.now_us_sql())
        seen: list[int] = []
        for _ in range(5):
            values = await asyncio.gather(*(store.write(handler, None) for _ in range(30)))
            seen.extend(values)
        assert seen == sorted(seen)
        assert len(set(seen)) <= store.stats().batches  # all ops of one batch share its value
    finally:
        await store.close()


async def test_ping_and_stats(store: Store) -> None:
    assert await store.ping()
    stats = store.stats()
    assert stats.queue_bound == 10_000
    assert stats.queued == 0
    await store.close()
    assert not await store.ping()
    with pytest.raises(StoreUnavailable):
        await store.write(Increment(), ("k", 1))
