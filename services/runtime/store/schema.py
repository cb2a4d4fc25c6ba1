"""The one `MetaData` every service defines its tables on, and the discovery of those tables.

Each service declares its tables in `services/<svc>/tables.py` on `metadata`. Constraint and index names
follow a fixed convention so that Alembic migrations and the live schema agree on names across SQLite and
PostgreSQL (otherwise each database invents its own and later migrations cannot address them).
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil

import sqlalchemy as sa

NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)
"""Shared by all services; Alembic's `target_metadata`."""

TABLES_MODULE = "tables"


def import_table_modules(package: str = "services") -> list[str]:
    """Imports every `<package>.<svc>.tables` module that exists, so its tables land on `metadata`.

    A new service's tables are found without editing this function or `migrations/env.py`.
    Returns the names of the modules imported, sorted.
    """
    root = importlib.import_module(package)
    imported: list[str] = []
    for info in sorted(pkgutil.iter_modules(root.__path__), key=lambda i: i.name):
        if not info.ispkg:
            continue
        name = f"{package}.{info.name}.{TABLES_MODULE}"
        if importlib.util.find_spec(name) is not None:
            importlib.import_module(name)
            imported.append(name)
    return imported
