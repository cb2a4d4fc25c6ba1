"""The decision statements: one SQL statement decides every merged row of a batch for one algorithm.

Each statement reads the limiter's configuration by joining `limiters` (so a changed quota applies to the
very next check, on every replica), takes "now" once from the shared clock, and updates each key's state with
`UPDATE … FROM … RETURNING`: the new level, the level available before this decision (`before_level`, set by
the same SET, never read back from a snapshot) and how many of the row's `n` requests were admitted. Rows are
`(limiter, key, cost, n)`: `n` consecutive requests of equal cost on one key, merged by the batch handler.
`admitted = min(n, available // cost)`, so the first `admitted` requests in arrival order are allowed.

Every algorithm is conservative when "now" is older than the state (another replica updated the row while
this statement waited for its lock): elapsed time is clamped at 0 and windows never move backwards, so a stale
clock can only under-admit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa

from services.limiter.algorithms import Algorithm
from services.runtime.store import Store
from services.runtime.store.clock import NOW_PARAM

PG_NOW = "CAST(floor(extract(epoch FROM clock_timestamp()) * 1000000) AS BIGINT)"


@dataclass(frozen=True)
class SqlClock:
    """Where a statement's "now" (µs) comes from: the database (PostgreSQL) or a bound value."""

    snippet: str
    param: sa.BindParameter[int] | None

    @classmethod
    def for_store(cls, store: Store) -> SqlClock:
        """The store's shared clock: PostgreSQL's own, or SQLite's one value per write transaction."""
        if store.dialect == "postgresql":
            return cls(PG_NOW, None)
        expression = store.now_us_sql()
        assert isinstance(expression, sa.BindParameter)
        return cls(f":{NOW_PARAM}", expression)

    @classmethod
    def fixed(cls, now_us: Callable[[], int]) -> SqlClock:
        """A clock the caller controls (tests: the model checks run on a clock they move)."""
        return cls(f":{NOW_PARAM}", sa.bindparam(NOW_PARAM, callable_=now_us, type_=sa.BigInteger))

    def text(self, sql: str) -> sa.TextClause:
        """`sql` with `{now}` replaced by this clock."""
        clause = sa.text(sql.replace("{now}", self.snippet))
        return clause.bindparams(self.param) if self.param is not None else clause

    def now_us(self, conn: sa.Connection) -> int:
        """The clock's value now (for reads)."""
        if self.param is not None and self.param.callable is not None:
            value: int = self.param.callable()
            return value
        return int(conn.execute(sa.text(f"SELECT {self.snippet}")).scalar_one())


@dataclass(frozen=True)
class Dialect:
    """The few spellings that differ between PostgreSQL and SQLite."""

    name: str
    least: str
    greatest: str
    source: str
    """A row source `rows(rlim, rkey, rcost, rn)` from the bound arrays/JSON."""


PG = Dialect(
    "postgresql",
    "LEAST",
    "GREATEST",
    "SELECT * FROM unnest(CAST(:lims AS text[]), CAST(:keys AS text[]), CAST(:costs AS bigint[]),"
    " CAST(:ns AS bigint[])) AS t(rlim, rkey, rcost, rn)",
)
SQLITE = Dialect(
    "sqlite",
    "MIN",
    "MAX",
    "SELECT value ->> 0 AS rlim, value ->> 1 AS rkey, value ->> 2 AS rcost, value ->> 3 AS rn"
    " FROM json_each(:rows)",
)

RETURNED = (
    "limiter, key, level, prev_level, stamp_us, seen_us, before_level, admitted, cfg_limit, cfg_burst, "
    "cfg_period_us"
)
"""Columns every decision statement returns (SQLite's RETURNING may name only the updated table)."""


def dialect_of(store_dialect: str) -> Dialect:
    """The spelling set of a store dialect."""
    return PG if store_dialect == "postgresql" else SQLITE


def ensure_rows(d: Dialect) -> str:
    """Creates the state rows of keys seen for the first time (fresh: level NULL); unknown limiters skipped."""
    return (
        f"INSERT INTO limiter_state (limiter, key) SELECT r.rlim, r.rkey FROM ({d.source}) AS r "
        "JOIN limiters AS l ON l.id = r.rlim WHERE true ORDER BY r.rlim, r.rkey "
        "ON CONFLICT (limiter, key) DO NOTHING"
    )


def _update(d: Dialect, algorithm: Algorithm, sets: str) -> str:
    return (
        "WITH clock AS MATERIALIZED (SELECT {now} AS now_us) "
        f"UPDATE limiter_state AS s SET {sets}, seen_us = c.now_us, "
        "cfg_limit = l.limit_count, cfg_burst = l.burst, cfg_period_us = l.period_us "
        f"FROM ({d.source}) AS r JOIN limiters AS l ON l.id = r.rlim, clock AS c "
        f"WHERE s.limiter = r.rlim AND s.key = r.rkey AND l.algorithm = {int(algorithm)} "
        f"RETURNING {RETURNED}"
    )


def gcra(d: Dialect) -> str:
    """GCRA as a scaled token bucket (see services.limiter.algorithms)."""
    lo, hi = d.least, d.greatest
    cap = "(l.burst * l.period_us)"
    # A period change rescales whole tokens (fractions dropped: conservative); a lowered burst caps them.
    prev = (
        f"(CASE WHEN s.level IS NULL THEN {cap} "
        f"WHEN s.cfg_period_us <> l.period_us THEN {lo}(s.level / s.cfg_period_us, l.burst) * l.period_us "
        "ELSE s.level END)"
    )
    elapsed = f"{hi}(0, c.now_us - COALESCE(s.stamp_us, c.now_us))"
    # Elapsed time is capped at what refills an empty bucket before multiplying, so nothing overflows.
    refill = f"{lo}({elapsed}, ({cap} + l.limit_count - 1) / l.limit_count) * l.limit_count"
    avail = f"{lo}({cap}, {prev} + {refill})"
    admitted = (
        f"(CASE WHEN r.rcost <= 0 OR r.rcost > l.burst THEN 0 "
        f"ELSE {lo}(r.rn, {avail} / (r.rcost * l.period_us)) END)"
    )
    level = f"({avail} - {admitted} * r.rcost * l.period_us)"
    stamp = f"{hi}(COALESCE(s.stamp_us, c.now_us), c.now_us)"
    sets = (
        f"level = {level}, before_level = {avail}, admitted = {admitted}, stamp_us = {stamp}, "
        f"prev_level = NULL, expires_us = {stamp} + ({cap} - {level} + l.limit_count - 1) / l.limit_count"
    )
    return _update(d, Algorithm.GCRA, sets)


def _window(d: Dialect) -> str:
    return "(c.now_us - c.now_us % l.period_us)"


def fixed_window(d: Dialect) -> str:
    """`limit` per window; a window never moves backwards; a period change starts a new window."""
    lo, hi = d.least, d.greatest
    win = _window(d)
    same = f"(s.level IS NOT NULL AND s.cfg_period_us = l.period_us AND s.stamp_us >= {win})"
    before = f"(CASE WHEN {same} THEN s.level ELSE 0 END)"
    start = f"(CASE WHEN {same} THEN s.stamp_us ELSE {win} END)"
    admitted = (
        f"(CASE WHEN r.rcost <= 0 OR r.rcost > l.limit_count THEN 0 "
        f"ELSE {lo}(r.rn, {hi}(0, l.limit_count - {before}) / r.rcost) END)"
    )
    sets = (
        f"level = {before} + {admitted} * r.rcost, before_level = {before}, admitted = {admitted}, "
        f"stamp_us = {start}, prev_level = NULL, expires_us = {start} + l.period_us"
    )
    return _update(d, Algorithm.FIXED_WINDOW, sets)


def sliding_window(d: Dialect) -> str:
    """Sliding-window counter: prev × (P − elapsed) + (curr + cost) × P ≤ limit × P."""
    lo, hi = d.least, d.greatest
    win = _window(d)
    valid = "(s.level IS NOT NULL AND s.cfg_period_us = l.period_us)"
    keep = f"({valid} AND s.stamp_us >= {win})"
    shift = f"({valid} AND s.stamp_us = {win} - l.period_us)"
    curr = f"(CASE WHEN {keep} THEN s.level ELSE 0 END)"
    prev = f"(CASE WHEN {keep} THEN s.prev_level WHEN {shift} THEN s.level ELSE 0 END)"
    start = f"(CASE WHEN {keep} THEN s.stamp_us ELSE {win} END)"
    elapsed = f"{lo}(l.period_us, {hi}(0, c.now_us - {start}))"
    room = f"(l.limit_count * l.period_us - {prev} * (l.period_us - {elapsed}) - {curr} * l.period_us)"
    admitted = (
        f"(CASE WHEN r.rcost <= 0 OR r.rcost > l.limit_count OR {room} < 0 THEN 0 "
        f"ELSE {lo}(r.rn, {room} / (r.rcost * l.period_us)) END)"
    )
    sets = (
        f"level = {curr} + {admitted} * r.rcost, prev_level = {prev}, before_level = {curr}, "
        f"admitted = {admitted}, stamp_us = {start}, expires_us = {start} + 2 * l.period_us"
    )
    return _update(d, Algorithm.SLIDING_WINDOW, sets)


DECIDERS: dict[Algorithm, Callable[[Dialect], str]] = {
    Algorithm.GCRA: gcra,
    Algorithm.FIXED_WINDOW: fixed_window,
    Algorithm.SLIDING_WINDOW: sliding_window,
}
"""The counting algorithms; CONCURRENCY holds leases instead (services.limiter.leases)."""
