"""SQLite WAL checkpoints run on the store's checkpoint thread, not in the writer's COMMIT.

In WAL mode a commit's pages reach the database file only through a checkpoint, so the file's size tells
whether one ran. SQLite-only by nature: PostgreSQL has no WAL file to checkpoint (its store has no thread).
"""

from __future__ import annotations

import os

import pytest
import sqlalchemy as sa

from services.runtime.store import Store
from services.runtime.store.checkpoint import WAL_BACKSTOP_PAGES, WAL_SIZE_LIMIT_BYTES
from tests.harness import eventually
from tests.runtime.storekit import open_store

ROWS = 200
BLOB = 4000  # about a page each: 200 pages, below SQLite's own trigger of 1,000


def _write_blobs(conn: sa.Connection) -> None:
    conn.exec_driver_sql("CREATE TABLE blobs (id INTEGER PRIMARY KEY, body BLOB NOT NULL)")
    conn.execute(
        sa.text("INSERT INTO blobs (body) VALUES (randomblob(:size))"),
        [{"size": BLOB}] * ROWS,
    )


def _pragmas(conn: sa.Connection) -> tuple[int, int, int]:
    autocheckpoint = conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar()
    cache = conn.exec_driver_sql("PRAGMA cache_size").scalar()
    limit = conn.exec_driver_sql("PRAGMA journal_size_limit").scalar()
    return int(autocheckpoint or 0), int(cache or 0), int(limit or 0)


def _size(store: Store) -> int:
    return os.path.getsize(str(store.engine.url.database))


async def test_commits_reach_the_database_file_through_the_checkpoint_thread(sqlite_url: str) -> None:
    store = open_store(sqlite_url, sqlite_checkpoint_ms=10, sqlite_cache_mib=8)
    try:
        # The committing connections leave checkpoints to the thread (below the backstop).
        assert await store.read(_pragmas) == (WAL_BACKSTOP_PAGES, -8 * 1024, WAL_SIZE_LIMIT_BYTES)
        before = _size(store)
        await store.transaction(_write_blobs)
        await eventually(lambda: _size(store) >= before + ROWS * BLOB)
        assert await store.read(lambda c: c.exec_driver_sql("SELECT count(*) FROM blobs").scalar()) == ROWS
        checkpointer = store._checkpointer
        assert checkpointer is not None
        # counted by the thread only, once its checkpoint is over (the file grows while it copies)
        await eventually(lambda: checkpointer.checkpoints >= 1)
        assert checkpointer.failures == 0
    finally:
        await store.close()
    assert not store._checkpointer._thread.is_alive()  # type: ignore[union-attr]


async def test_without_the_thread_the_writer_checkpoints_as_sqlite_does(sqlite_url: str) -> None:
    store = open_store(sqlite_url, sqlite_checkpoint_ms=0)
    try:
        assert store._checkpointer is None
        assert (await store.read(_pragmas))[0] == 1000
        before = _size(store)
        await store.transaction(_write_blobs)
        # 200 pages stay in the WAL: SQLite checkpoints in the COMMIT that passes 1,000.
        assert _size(store) < before + ROWS * BLOB
    finally:
        await store.close()


@pytest.mark.parametrize("setting", [{"sqlite_checkpoint_ms": -1}, {"sqlite_cache_mib": 0}])
def test_bad_sqlite_settings_are_refused(setting: dict[str, int], sqlite_url: str) -> None:
    with pytest.raises(ValueError, match="greater than or equal"):
        open_store(sqlite_url, **setting)
