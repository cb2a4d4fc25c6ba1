"""Migrations: idempotent, safe when replicas start together, and in step with the tables in code."""

from __future__ import annotations

import importlib
import multiprocessing
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from services.runtime.store import StoreUnavailable, metadata
from services.runtime.store.migrate import MIGRATIONS_DIR, alembic_config, current_revision, upgrade
from services.runtime.store.schema import import_table_modules

ROOT = Path(__file__).resolve().parents[2]
HEAD = ScriptDirectory.from_config(alembic_config()).get_current_head()


@pytest.fixture
def fresh_pg_url(pg_url: str) -> Iterator[str]:
    """An empty, never-migrated PostgreSQL database on the test server."""
    name = f"foundation_migrate_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        yield sa.make_url(pg_url).set(database=name).render_as_string(hide_password=False)
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh SQLite file (its directory not yet created), then a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'new' / 'foundation.db'}"
    url: str = request.getfixturevalue("fresh_pg_url")
    return url


def schema_of(url: str) -> dict[str, list[str]]:
    engine = sa.create_engine(url)
    try:
        inspector = sa.inspect(engine)
        return {t: sorted(c["name"] for c in inspector.get_columns(t)) for t in inspector.get_table_names()}
    finally:
        engine.dispose()


def test_revisions_form_one_chain_from_the_base() -> None:
    script = ScriptDirectory.from_config(alembic_config())
    assert script.get_heads() == [HEAD]
    base = script.get_revision("0001")
    assert base is not None
    assert base.down_revision is None
    assert (MIGRATIONS_DIR / "versions" / "0001_base.py").is_file()


def test_upgrade_twice_is_a_no_op(fresh_url: str) -> None:
    assert current_revision(fresh_url) is None
    upgrade(fresh_url)
    first = schema_of(fresh_url)
    assert current_revision(fresh_url) == HEAD
    upgrade(fresh_url)
    assert schema_of(fresh_url) == first
    assert current_revision(fresh_url) == HEAD
    assert "alembic_version" in first


def upgrade_at(url: str, start_at: float) -> str:
    """Runs in a separate process (a replica starting): waits for the common start time, then migrates."""
    while time.time() < start_at:
        time.sleep(0.001)
    upgrade(url)
    return "migrated"


def test_concurrent_upgrades_of_a_fresh_database_all_succeed(fresh_url: str) -> None:
    """Three replica processes migrating one fresh database at the same moment (without the migration lock
    PostgreSQL fails all but one with a duplicate key while creating alembic_version)."""
    context = multiprocessing.get_context("spawn")
    with context.Pool(3) as pool:
        # Let every process finish importing before the common start time.
        assert pool.map(abs, [1, 2, 3]) == [1, 2, 3]
        start_at = time.time() + 0.3
        results = pool.starmap(upgrade_at, [(fresh_url, start_at)] * 3)
    assert results == ["migrated"] * 3
    assert current_revision(fresh_url) == HEAD


def test_concurrent_upgrades_in_one_process_are_serialised(fresh_url: str) -> None:
    errors: list[BaseException] = []
    barrier = threading.Barrier(3)

    def migrate() -> None:
        try:
            barrier.wait(10)
            upgrade(fresh_url)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=migrate) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert current_revision(fresh_url) == HEAD


def test_migrated_schema_matches_the_tables_in_code(fresh_url: str) -> None:
    """Guards every service: a table or column in `services/<svc>/tables.py` without a migration (or the
    other way round) shows up here as a difference."""
    import_table_modules()
    upgrade(fresh_url)
    engine = sa.create_engine(fresh_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            differences = compare_metadata(context, metadata)
    finally:
        engine.dispose()
    assert differences == []


def test_every_service_tables_module_is_registered() -> None:
    on_disk = sorted(
        f"services.{path.parent.name}.tables"
        for path in (ROOT / "services").glob("*/tables.py")
        if (path.parent / "__init__.py").exists()
    )
    assert import_table_modules() == on_disk
    for name in on_disk:
        tables = [
            value for value in vars(importlib.import_module(name)).values() if isinstance(value, sa.Table)
        ]
        assert all(table.metadata is metadata for table in tables), (
            f"{name} must define its tables on the shared metadata"
        )


def test_upgrade_of_an_unreachable_database_says_so_on_one_line() -> None:
    with pytest.raises(StoreUnavailable) as raised:
        upgrade("postgresql://postgres:hidden@127.0.0.1:1/foundation")
    assert "127.0.0.1:1" in str(raised.value)
    assert "hidden" not in str(raised.value)
    assert "\n" not in str(raised.value)
