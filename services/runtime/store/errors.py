"""The store's errors and the classification of database exceptions (transient, lost, timed out).

The writer needs to know three things about a failure: may the same transaction simply be tried again
(deadlock, serialization failure, SQLite busy, lock wait timeout), is the database out of reach (connection
lost, server shutting down), or did the statement time out. Everything else is a problem of one operation
and is isolated by re-running each operation alone.
"""

from __future__ import annotations

import sqlite3

import sqlalchemy as sa

from services.runtime.errors import DeadlineExceeded, Unavailable


class StoreUnavailable(Unavailable):
    """The database cannot be reached, or the store is closing: UNAVAILABLE with RetryInfo."""

    reason = "STORE_UNAVAILABLE"


class StoreTimeout(DeadlineExceeded):
    """The store did not finish the work in time: DEADLINE_EXCEEDED."""

    reason = "STORE_TIMEOUT"


class StoreUrlError(ValueError):
    """A database URL the store cannot use (unknown scheme, in-memory SQLite, …)."""


# PostgreSQL SQLSTATEs: a retry of the same transaction may succeed.
_PG_TRANSIENT = frozenset(
    {
        "40001",  # serialization_failure
        "40P01",  # deadlock_detected
        "55P03",  # lock_not_available (lock_timeout)
    }
)
# The server went away or refuses work for now; class 08 is "connection exception".
_PG_UNAVAILABLE = frozenset({"57P01", "57P02", "57P03", "53300"})
_PG_QUERY_CANCELED = "57014"  # statement_timeout

_SQLITE_BUSY_CODES = frozenset({5, 6})  # SQLITE_BUSY, SQLITE_LOCKED (and their extended codes below)


def _sqlstate(exc: BaseException) -> str | None:
    orig = exc.orig if isinstance(exc, sa.exc.DBAPIError) else exc
    state = getattr(orig, "sqlstate", None)
    return state if isinstance(state, str) else None


def sqlite_error(exc: sqlite3.Error, statement: str) -> sa.exc.StatementError:
    """A driver error of a statement run on the sqlite3 connection itself (`driver_connection`) as the
    exception SQLAlchemy would have raised for it, so every caller catching SQLAlchemy's errors still does."""
    return sa.exc.DBAPIError.instance(statement, None, exc, sqlite3.Error)


def is_transient(exc: BaseException) -> bool:
    """True when rolling back and running the same transaction again may well succeed."""
    state = _sqlstate(exc)
    if state is not None:
        return state in _PG_TRANSIENT
    orig = exc.orig if isinstance(exc, sa.exc.DBAPIError) else exc
    if isinstance(orig, sqlite3.OperationalError):
        code = getattr(orig, "sqlite_errorcode", None)
        if isinstance(code, int) and (code & 0xFF) in _SQLITE_BUSY_CODES:
            return True
        text = str(orig).lower()
        return "database is locked" in text or "database is busy" in text
    return False


def is_disconnect(exc: BaseException) -> bool:
    """True when the database is out of reach: the connection was lost or could not be made."""
    if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
        return True
    state = _sqlstate(exc)
    if state is not None:
        return state.startswith("08") or state in _PG_UNAVAILABLE
    return False


def is_statement_timeout(exc: BaseException) -> bool:
    """True when PostgreSQL cancelled the statement (statement_timeout)."""
    return _sqlstate(exc) == _PG_QUERY_CANCELED


def one_line(exc: BaseException) -> str:
    """The driver's message of an exception on one line (psycopg's span several, with hints)."""
    orig = exc.orig if isinstance(exc, sa.exc.DBAPIError) and exc.orig is not None else exc
    text = " ".join(str(orig).split())
    return text or type(orig).__name__
