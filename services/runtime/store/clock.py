"""The current time in integer microseconds as a SQL expression: the one clock that replicas agree on.

PostgreSQL: the database server's `clock_timestamp()`. Every replica asks the same server, so they share one
clock. `clock_timestamp()` rather than `now()`/`statement_timestamp()`: those are fixed when the transaction
or statement *starts*, and a statement that then waits for a row lock held by another replica would write a
time older than the one that replica just committed, so time would run backwards for that row.
`clock_timestamp()` is read when the row is computed, after the lock wait, so the times written to one row
never go backwards (as long as the server's clock does not). It is volatile: one value per row evaluated.

SQLite: `julianday('now')` has only millisecond resolution, and every process using a SQLite file runs on
the host holding the file, so the host clock is the shared clock. The value is bound by the writer thread:
one value per write transaction, read lazily after `BEGIN IMMEDIATE` has taken the write lock (so commits
on the file are ordered in time too) and never below the previous batch's value in this process. Outside
a write transaction (reads) it is the current time.
"""

from __future__ import annotations

import threading
import time

import sqlalchemy as sa

NOW_PARAM = "foundation_now_us"


def postgres_now_us() -> sa.ColumnElement[int]:
    """`floor(extract(epoch from clock_timestamp()) * 1000000)::bigint`, evaluated by PostgreSQL."""
    epoch = sa.extract("epoch", sa.func.clock_timestamp())
    return sa.cast(sa.func.floor(epoch * 1_000_000), sa.BigInteger)


class BatchClock:
    """The SQLite clock: one non-decreasing microsecond value per write transaction of the writer thread."""

    def __init__(self) -> None:
        self._local = threading.local()
        self._last_us = 0

    def begin(self) -> None:
        """Called by the writer right after BEGIN: the next read of the clock fixes this batch's time."""
        self._local.active = True
        self._local.value = None

    def end(self) -> None:
        """Called by the writer when the transaction is over."""
        self._local.active = False

    def now_us(self) -> int:
        """This batch's time in the writer thread inside a transaction; the current time elsewhere."""
        local = self._local
        if not getattr(local, "active", False):
            return time.time_ns() // 1000
        value: int | None = local.value
        if value is None:
            # Only the writer thread reaches here, so the read-modify-write needs no lock.
            value = max(time.time_ns() // 1000, self._last_us)
            self._last_us = value
            local.value = value
        return value

    def expression(self) -> sa.BindParameter[int]:
        """A bound parameter whose value is taken from `now_us()` each time a statement executes."""
        return sa.bindparam(NOW_PARAM, callable_=self.now_us, type_=sa.BigInteger)
