"""Bringing a database to the latest schema with Alembic, programmatically (no alembic.ini needed).

Several replicas may start at once against one database, so the whole upgrade runs in one transaction
that first takes a lock: on PostgreSQL a transaction-level advisory lock (the others wait, then find the
schema at head and do nothing); on SQLite an EXCLUSIVE transaction, which every other connection to the
file waits behind (busy timeout).
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import sqlalchemy as sa
import structlog
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext

import migrations
from services.runtime.config import StoreSettings
from services.runtime.store.engine import SQLITE_BEGIN_OPTION, create_engine, safe_url
from services.runtime.store.errors import StoreUnavailable, one_line

MIGRATIONS_DIR = Path(migrations.__file__).resolve().parent

ADVISORY_LOCK_KEY = int.from_bytes(hashlib.sha256(b"foundation.migrate").digest()[:8], "big", signed=True)
"""The PostgreSQL advisory lock held while migrating (one fixed bigint for the whole suite)."""

_IN_PROCESS = threading.Lock()
"""Alembic's `context` and `op` are module-level proxies, so one process runs one migration at a time."""
_MIGRATION_TIMEOUT_MS = 600_000  # DDL may wait for locks held by running replicas; give it time

log = structlog.get_logger(__name__)


def alembic_config(url: str | None = None) -> Config:
    """An Alembic Config pointing at `migrations/` (for `command.*`, e.g. `command.revision`)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Runs Alembic `upgrade <revision>` on `url` under the migration lock; a no-op when up to date.

    Raises StoreUnavailable (one line, password hidden) when the database cannot be reached.
    """
    settings = StoreSettings(statement_timeout_ms=_MIGRATION_TIMEOUT_MS, read_threads=1)
    engine, dialect = create_engine(url, settings)
    try:
        with _IN_PROCESS:
            _upgrade_locked(engine, dialect, revision)
    finally:
        engine.dispose()


def _upgrade_locked(engine: sa.Engine, dialect: str, revision: str) -> None:
    try:
        conn = engine.connect()
    except sa.exc.DBAPIError as exc:
        raise StoreUnavailable(f"cannot connect to {safe_url(engine.url)}: {one_line(exc)}") from None
    with conn:
        if dialect == "sqlite":
            conn.execution_options(**{SQLITE_BEGIN_OPTION: "EXCLUSIVE"})
        with conn.begin():
            if dialect == "postgresql":
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(ADVISORY_LOCK_KEY)))
            before = MigrationContext.configure(conn).get_current_revision()
            config = alembic_config()
            config.attributes["connection"] = conn
            command.upgrade(config, revision)
            after = MigrationContext.configure(conn).get_current_revision()
    if before != after:
        log.info("database migrated", url=safe_url(engine.url), before=before, after=after)


def current_revision(url: str) -> str | None:
    """The revision a database is at (None before the first migration)."""
    engine, _ = create_engine(url, StoreSettings(read_threads=1))
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()
