"""Engines for the two supported databases, set up the way the writer and the readers rely on.

SQLite (the documented SQLAlchemy recipe for the sqlite3 driver): the driver's own transaction handling is
switched off (`isolation_level = None`) and the `begin` event emits BEGIN itself, so a transaction really
starts where SQLAlchemy says it does. Connections opened for writing carry the execution option
`foundation_sqlite_begin="IMMEDIATE"` and take the write lock at BEGIN: two writers (two processes on one
file) then queue on `busy_timeout` instead of failing with SQLITE_BUSY when a read lock cannot be upgraded.
Every connection runs WAL (readers never block the writer) with `synchronous=NORMAL` (durable across
process crashes; a power cut may lose the last commits, not corrupt the file), a page cache of
`sqlite_cache_mib`, and checkpoints left to a thread of their own (services.runtime.store.checkpoint) unless
`sqlite_checkpoint_ms` is 0.

PostgreSQL goes through psycopg 3 with `statement_timeout` and `lock_timeout` set per session, TCP keepalives
and `tcp_user_timeout` (a vanished peer fails the call), and `pool_pre_ping`, so a connection broken by a
server restart is replaced at the next checkout.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa

from services.runtime.config import StoreSettings
from services.runtime.store.checkpoint import WAL_BACKSTOP_PAGES, WAL_SIZE_LIMIT_BYTES
from services.runtime.store.errors import StoreUnavailable, StoreUrlError, sqlite_error

Dialect = Literal["sqlite", "postgresql"]

SQLITE_BEGIN_OPTION = "foundation_sqlite_begin"
"""Execution option naming the SQLite BEGIN mode of a connection: DEFERRED (default), IMMEDIATE, EXCLUSIVE."""

_SQLITE_BEGIN_MODES = frozenset({"DEFERRED", "IMMEDIATE", "EXCLUSIVE"})
_PG_CONNECT_TIMEOUT_S = 5
_POOL_SPARE = 2  # connections beyond the readers, the writer and the checkpointer: migrations, ad-hoc checks
_WAL_RETRY_S = 0.01
_SQLITE_AUTOCHECKPOINT = 1000  # SQLite's default


def parse_url(url: str) -> tuple[sa.URL, Dialect]:
    """Checks a database URL and returns it with psycopg 3 chosen for PostgreSQL.

    Raises StoreUrlError for anything but a SQLite file or PostgreSQL.
    """
    try:
        parsed = sa.make_url(url.strip())
    except sa.exc.ArgumentError as exc:
        raise StoreUrlError(f"not a database URL: {exc}") from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        database = parsed.database or ""
        if database in ("", ":memory:") or parsed.query.get("mode") == "memory":
            raise StoreUrlError(
                "in-memory SQLite is not supported (each connection would see its own database); "
                "use a file, e.g. sqlite:///data/foundation.db"
            )
        return parsed.set(drivername="sqlite+pysqlite"), "sqlite"
    if backend in ("postgresql", "postgres"):
        if "+" in parsed.drivername and parsed.get_driver_name() != "psycopg":
            raise StoreUrlError(f"PostgreSQL is used through psycopg 3, not {parsed.get_driver_name()}")
        return parsed.set(drivername="postgresql+psycopg"), "postgresql"
    raise StoreUrlError(f"unsupported database {backend!r}: use sqlite:///<file> or postgresql://…")


def safe_url(url: str | sa.URL) -> str:
    """The URL as text with any password replaced by `***` (for messages and logs)."""
    try:
        parsed = url if isinstance(url, sa.URL) else sa.make_url(url)
    except sa.exc.ArgumentError:
        return "<unparsable database URL>"
    return parsed.render_as_string(hide_password=True)


def driver_connection(conn: sa.Connection) -> Any:
    """The driver's own connection under `conn` (sqlite3.Connection, psycopg.Connection), for the few hot
    statements that skip SQLAlchemy's execute; StoreUnavailable when SQLAlchemy has invalidated it."""
    driver = conn.connection.driver_connection
    if driver is None:
        raise StoreUnavailable("the database connection was lost")
    return driver


def create_engine(url: str, settings: StoreSettings, *, pooled: bool = True) -> tuple[sa.Engine, Dialect]:
    """An engine for `url` with the connection set-up described in the module docstring; `pooled=False`
    opens a new connection for every checkout (the health ping: never one a vanished peer left hanging).

    Creates a SQLite file's directory. Does not connect.
    """
    parsed, dialect = parse_url(url)
    held = settings.read_threads + 2  # the readers, the writer and (SQLite) the WAL checkpointer
    pool: dict[str, Any] = {
        "pool_size": held + _POOL_SPARE,
        "max_overflow": _POOL_SPARE,
        "pool_timeout": max(1.0, settings.statement_timeout_ms / 1000),
        "pool_pre_ping": True,
    }
    if not pooled:
        pool = {"poolclass": sa.pool.NullPool}
    if dialect == "sqlite":
        Path(parsed.database or "").expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(parsed, **pool)
        _install_sqlite_hooks(
            engine,
            busy_timeout_ms=settings.statement_timeout_ms,
            cache_kib=settings.sqlite_cache_mib * 1024,
            autocheckpoint_pages=WAL_BACKSTOP_PAGES
            if settings.sqlite_checkpoint_ms
            else _SQLITE_AUTOCHECKPOINT,
        )
        return engine, dialect
    connect_args: dict[str, Any] = {"application_name": "foundation"}
    if "connect_timeout" not in parsed.query:
        connect_args["connect_timeout"] = _PG_CONNECT_TIMEOUT_S if pooled else 2  # libpq's minimum
    if "options" not in parsed.query:
        # lock_timeout below statement_timeout (at or above it would never fire): a long wait for a row
        # lock held by another replica ends as lock_not_available, which the writer retries, while
        # statement_timeout stays the hard limit on any one statement.
        timeout = settings.statement_timeout_ms
        lock_timeout = max(1, timeout // 2)
        connect_args["options"] = f"-c statement_timeout={timeout} -c lock_timeout={lock_timeout}"
    # A peer that vanished (partition, failover) is noticed by the socket, not only by a server-side timeout
    # that can no longer be delivered: keepalive probes start after 10 s idle, and once data or a probe stays
    # unacknowledged for `tcp_user_timeout` (Linux: this replaces the probe count) the call fails. Pings
    # (unpooled) give up sooner, so a ping left hanging by a heal frees its place within a few seconds.
    user_timeout_ms = 3000 if not pooled else settings.statement_timeout_ms + 5000
    for name, value in (
        ("keepalives", 1),
        ("keepalives_idle", 10),
        ("keepalives_interval", 5),
        ("keepalives_count", 2),
        ("tcp_user_timeout", user_timeout_ms),
    ):
        if name not in parsed.query:
            connect_args[name] = value
    return sa.create_engine(parsed, connect_args=connect_args, **pool), dialect


def _install_sqlite_hooks(
    engine: sa.Engine, *, busy_timeout_ms: int, cache_kib: int, autocheckpoint_pages: int
) -> None:
    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Hand transaction control to SQLAlchemy's `begin` event below (sqlite3's legacy mode would
        # otherwise delay BEGIN to the first DML statement).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            _enable_wal(cursor, deadline=time.monotonic() + busy_timeout_ms / 1000)
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute("PRAGMA foreign_keys = ON")
            cursor.execute(f"PRAGMA cache_size = -{int(cache_kib)}")  # negative: KiB, not pages
            cursor.execute(f"PRAGMA wal_autocheckpoint = {int(autocheckpoint_pages)}")
            # After a long read let the WAL grow past the backstop, the file shrinks back to this at the next
            # reset (above the backstop: in steady use it is never truncated and grown again).
            cursor.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT_BYTES}")
        finally:
            cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        mode = conn.get_execution_options().get(SQLITE_BEGIN_OPTION, "DEFERRED")
        if mode not in _SQLITE_BEGIN_MODES:
            raise ValueError(f"{SQLITE_BEGIN_OPTION} must be one of {sorted(_SQLITE_BEGIN_MODES)}")
        # Straight to the driver: every write batch begins here, and SQLAlchemy's execute costs ~9 µs of
        # GIL-held Python. Its errors are wrapped as SQLAlchemy's (its begin event does not wrap them).
        statement = f"BEGIN {mode}"
        try:
            driver_connection(conn).execute(statement)
        except sqlite3.Error as exc:
            raise sqlite_error(exc, statement) from exc


def _enable_wal(cursor: Any, *, deadline: float) -> None:
    """Switches the file to WAL (it stays so); retries while another connection does the same.

    Changing the journal mode does not wait on busy_timeout: when several processes open a new file at
    once, all but one get "database is locked" at once. The mode is read first, since once any of them
    has switched there is nothing left to do.
    """
    while True:
        try:
            if str(cursor.execute("PRAGMA journal_mode").fetchone()[0]).lower() == "wal":
                return
            mode = str(cursor.execute("PRAGMA journal_mode = WAL").fetchone()[0]).lower()
            if mode != "wal":
                raise sqlite3.OperationalError(f"cannot switch the database to WAL (journal mode is {mode})")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(_WAL_RETRY_S)
