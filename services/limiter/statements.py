"""The decision statements: one SQL statement decides every merged row of a batch for one algorithm.

Each statement reads the limiter's configuration by joining `limiters` (so a changed quota applies to the
very next check, on every replica), takes "now" once from the shared clock, and writes each key's state with
`INSERT … SELECT … ON CONFLICT DO UPDATE … RETURNING` (one statement whether the key is new or not): the new
level, the level available before this decision (`before_level`, set by the same SET from the locked row,
never read back from a snapshot) and how many of the row's `n` requests were admitted. Rows are
`(limiter, key, cost, n)`: `n` consecutive requests of equal cost on one key, merged by the batch handler.
`admitted = min(n, available // cost)`, so the first `admitted` requests in arrival order are allowed.
On SQLite the statement computes from the state read by a join instead, in stages (see `_STAGED`).

Every algorithm is conservative when "now" is older than the state (another replica updated the row while
this statement waited for its lock): elapsed time is clamped at 0 and windows never move backwards, so a stale
clock can only under-admit.
"""

from __future__ import annotations

import re
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
"""Columns every decision statement returns (SQLite's RETURNING may name only the updated table), followed by
the limiter's `shadow` flag as the statement read it (see `SHADOW_RETURNED`)."""

SHADOW_RETURNED = "(SELECT sl.shadow FROM limiters AS sl WHERE sl.id = limiter_state.limiter) AS shadow"
"""The limiter's shadow flag, after RETURNED: shadow decides how a denial is answered, so a flag changed on
another replica must be noticed by the statement, like a deleted limiter (services.limiter.batch)."""


def dialect_of(store_dialect: str) -> Dialect:
    """The spelling set of a store dialect."""
    return PG if store_dialect == "postgresql" else SQLITE


# Each algorithm is written once, as a `Spec`: expressions over `$tokens`. The base tokens are the key's state
# (`$level`, `$prev_level`, `$stamp`, `$cfg_period`), the limiter's configuration (`$L`, `$B`, `$P`), the request
# (`$cost`, `$n`) and `$now`; `derived` names intermediate values over them (each may use the ones before it),
# `admitted` may use those, and the columns may use all of them and `$admitted`.
_TOKEN = re.compile(r"\$(\w+)")
_NULL = "CAST(NULL AS BIGINT)"  # typed: PostgreSQL cannot resolve `NULL / NULL`
_COLUMNS = ("level", "prev_level", "stamp_us", "before_level", "admitted", "expires_us")


@dataclass(frozen=True)
class Spec:
    """One counting algorithm as SQL expressions over tokens (see above)."""

    algorithm: Algorithm
    derived: dict[str, str]
    admitted: str
    columns: dict[str, str]


# PostgreSQL renders a spec twice and inlines every derived value: for a key seen for the first time (the
# INSERT's SELECT: no state, config from the joined `limiters`, the request from the source rows) and for an
# existing key (ON CONFLICT DO UPDATE: the locked row's current state; config, request and "now" from
# `excluded`, i.e. the row the SELECT proposed, which carries them in its cfg_*, req_* and seen_us columns).
_FRESH = {
    "level": _NULL,
    "prev_level": _NULL,
    "stamp": _NULL,
    "cfg_period": _NULL,
    "L": "l.limit_count",
    "B": "l.burst",
    "P": "l.period_us",
    "cost": "r.rcost",
    "n": "r.rn",
    "now": "c.now_us",
}
_EXISTING = {
    "level": "limiter_state.level",
    "prev_level": "limiter_state.prev_level",
    "stamp": "limiter_state.stamp_us",
    "cfg_period": "limiter_state.cfg_period_us",
    "L": "excluded.cfg_limit",
    "B": "excluded.cfg_burst",
    "P": "excluded.cfg_period_us",
    "cost": "excluded.req_cost",
    "n": "excluded.req_count",
    "now": "excluded.seen_us",
}
# SQLite computes each value once, in stages: SQLite does not share common subexpressions, and the inlined
# form evaluates GCRA's available level about ten times per row (measured: 10.7 µs per row against 7.1 µs
# staged, on 2,000-row statements). The first stage reads the key's state by a LEFT JOIN: on SQLite that is
# no read-then-write race, because the writer holds the database's only write lock (BEGIN IMMEDIATE) from
# before the statement to the commit, and a statement has each key at most once. The upsert then only copies,
# in no particular order: with one write lock there is no lock order to keep (PostgreSQL sorts its rows).
_STAGED = {
    "level": "s.level",
    "prev_level": "s.prev_level",
    "stamp": "s.stamp_us",
    "cfg_period": "s.cfg_period_us",
    "L": "l.limit_count",
    "B": "l.burst",
    "P": "l.period_us",
    "cost": "r.rcost",
    "n": "r.rn",
    "now": "c.now_us",
}
_CARRIED = ("L", "B", "P", "cost", "n", "now", "stamp")
"""Base tokens the later stages use, carried as columns `q_<token>` of the first stage."""


def _render(template: str, names: dict[str, str]) -> str:
    return _TOKEN.sub(lambda match: names[match.group(1)], template)


def _inlined(spec: Spec, base: dict[str, str]) -> dict[str, str]:
    """Every column of `spec` as one expression over `base`, derived values and `admitted` inlined."""
    names = dict(base)
    for name, template in spec.derived.items():
        names[name] = f"({_render(template, names)})"
    names["admitted"] = f"({_render(spec.admitted, names)})"
    return {column: _render(spec.columns[column], names) for column in _COLUMNS}


_INSERTED = (
    "INSERT INTO limiter_state (limiter, key, level, prev_level, stamp_us, before_level, admitted, expires_us, "
    "seen_us, cfg_limit, cfg_burst, cfg_period_us, req_cost, req_count) "
)


def _decide(d: Dialect, spec: Spec) -> str:
    if d.name == "sqlite":
        return _decide_staged(d, spec)
    fresh = ", ".join(_inlined(spec, _FRESH).values())
    existing = ", ".join(f"{c} = {expression}" for c, expression in _inlined(spec, _EXISTING).items())
    return (
        "WITH clock AS MATERIALIZED (SELECT {now} AS now_us) "
        f"{_INSERTED}"
        f"SELECT r.rlim, r.rkey, {fresh}, c.now_us, l.limit_count, l.burst, l.period_us, r.rcost, r.rn "
        f"FROM ({d.source}) AS r JOIN limiters AS l ON l.id = r.rlim AND l.algorithm = {int(spec.algorithm)} "
        "CROSS JOIN clock AS c WHERE true ORDER BY r.rlim, r.rkey "
        f"ON CONFLICT (limiter, key) DO UPDATE SET {existing}, seen_us = excluded.seen_us, "
        "cfg_limit = excluded.cfg_limit, cfg_burst = excluded.cfg_burst, cfg_period_us = excluded.cfg_period_us, "
        "req_cost = excluded.req_cost, req_count = excluded.req_count "
        f"RETURNING {RETURNED}, {SHADOW_RETURNED}"
    )


def _decide_staged(d: Dialect, spec: Spec) -> str:
    # Stage a: the request, the configuration, the state and the derived values, inlined among themselves.
    names = dict(_STAGED)
    derived = []
    for name, template in spec.derived.items():
        names[name] = f"({_render(template, names)})"
        derived.append(f"{names[name]} AS d_{name}")
    carried = [f"{_STAGED[token]} AS q_{token}" for token in _CARRIED]
    # Stage b: admitted, from stage a's columns; then the columns, from stage b's.
    later = {token: f"q_{token}" for token in _CARRIED} | {name: f"d_{name}" for name in spec.derived}
    admitted = _render(spec.admitted, later)
    columns = ", ".join(_render(spec.columns[c], later | {"admitted": "admitted"}) for c in _COLUMNS)
    copied = ", ".join(
        f"{c} = excluded.{c}"
        for c in (*_COLUMNS, "seen_us", "cfg_limit", "cfg_burst", "cfg_period_us", "req_cost", "req_count")
    )
    return (
        "WITH clock AS MATERIALIZED (SELECT {now} AS now_us), "
        f"a AS MATERIALIZED (SELECT r.rlim AS rlim, r.rkey AS rkey, {', '.join(carried + derived)} "
        f"FROM ({d.source}) AS r JOIN limiters AS l ON l.id = r.rlim AND l.algorithm = {int(spec.algorithm)} "
        "CROSS JOIN clock AS c LEFT JOIN limiter_state AS s ON s.limiter = r.rlim AND s.key = r.rkey), "
        f"b AS MATERIALIZED (SELECT a.*, {admitted} AS admitted FROM a) "
        f"{_INSERTED}"
        f"SELECT rlim, rkey, {columns}, q_now, q_L, q_B, q_P, q_cost, q_n FROM b WHERE true "
        f"ON CONFLICT (limiter, key) DO UPDATE SET {copied}"
    )


def report(d: Dialect, algorithm: Algorithm) -> str | None:
    """SQLite: the rows the decision statement just wrote, as one JSON array of RETURNED arrays (each with its
    position in the bound rows in place of the limiter and no key).

    Python's sqlite3 releases the GIL around every step, and RETURNING yields one step per row: with the
    event loop busy on the other thread, each of those steps waits to get the GIL back (up to the 5 ms switch
    interval). Measured: a writer next to one busy thread decided 2,000 rows/s that way. This read, in the same
    transaction under the same write lock, takes one step. It selects exactly the rows the statement upserted:
    the same source rows joined to a limiter of the same algorithm (the upsert writes every such row), and
    reports what that statement stored; it decides nothing. PostgreSQL keeps RETURNING (psycopg fetches every
    row in one call)."""
    if d.name != "sqlite":
        return None
    # Each row is named by its position in the bound array (json_each's `key`) instead of its limiter and key
    # (the handler puts it back in place without a lookup); the other columns are RETURNED's.
    columns = ", ".join(f"s.{c.strip()}" for c in RETURNED.split(",")[2:])
    return (
        f"SELECT json_group_array(json_array(r.position, NULL, {columns}, l.shadow)) "
        "FROM (SELECT key AS position, value ->> 0 AS rlim, value ->> 1 AS rkey FROM json_each(:rows)) AS r "
        f"JOIN limiters AS l ON l.id = r.rlim AND l.algorithm = {int(algorithm)} "
        "JOIN limiter_state AS s ON s.limiter = r.rlim AND s.key = r.rkey"
    )


def gcra(d: Dialect) -> str:
    """GCRA as a scaled token bucket (see services.limiter.algorithms)."""
    lo, hi = d.least, d.greatest
    cap = "($B * $P)"
    return _decide(
        d,
        Spec(
            Algorithm.GCRA,
            derived={
                # A period change rescales whole tokens (fractions dropped: conservative); a lowered burst
                # caps them.
                "prev": f"CASE WHEN $level IS NULL THEN {cap} "
                f"WHEN $cfg_period <> $P THEN {lo}($level / $cfg_period, $B) * $P ELSE $level END",
                # Elapsed time is capped at what refills an empty bucket before multiplying, and the refill
                # at the room left (not `least(cap, prev + refill)`: that sum can pass 2^63 when burst ×
                # period is near 2^62).
                "refill": f"{lo}({hi}(0, $now - COALESCE($stamp, $now)), ({cap} + $L - 1) / $L) * $L",
                "avail": f"$prev + {lo}($refill, {cap} - $prev)",
            },
            admitted=f"CASE WHEN $cost <= 0 OR $cost > $B THEN 0 ELSE {lo}($n, $avail / ($cost * $P)) END",
            columns={
                "level": "($avail - $admitted * $cost * $P)",
                "prev_level": _NULL,
                "stamp_us": f"{hi}(COALESCE($stamp, $now), $now)",
                "before_level": "$avail",
                "admitted": "$admitted",
                "expires_us": f"{hi}(COALESCE($stamp, $now), $now) + ({cap} - ($avail - $admitted * $cost * $P)"
                " + $L - 1) / $L",
            },
        ),
    )


_WINDOW = "($now - $now % $P)"


def fixed_window(d: Dialect) -> str:
    """`limit` per window; a window never moves backwards; a period change starts a new window."""
    lo, hi = d.least, d.greatest
    same = f"($level IS NOT NULL AND $cfg_period = $P AND $stamp >= {_WINDOW})"
    return _decide(
        d,
        Spec(
            Algorithm.FIXED_WINDOW,
            derived={
                "before": f"CASE WHEN {same} THEN $level ELSE 0 END",
                "start": f"CASE WHEN {same} THEN $stamp ELSE {_WINDOW} END",
            },
            admitted=f"CASE WHEN $cost <= 0 OR $cost > $L THEN 0 ELSE {lo}($n, {hi}(0, $L - $before) / $cost) END",
            columns={
                "level": "$before + $admitted * $cost",
                "prev_level": _NULL,
                "stamp_us": "$start",
                "before_level": "$before",
                "admitted": "$admitted",
                "expires_us": "$start + $P",
            },
        ),
    )


def sliding_window(d: Dialect) -> str:
    """Sliding-window counter: prev × (P − elapsed) + (curr + cost) × P ≤ limit × P."""
    lo, hi = d.least, d.greatest
    valid = "($level IS NOT NULL AND $cfg_period = $P)"
    keep = f"({valid} AND $stamp >= {_WINDOW})"
    shift = f"({valid} AND $stamp = {_WINDOW} - $P)"
    return _decide(
        d,
        Spec(
            Algorithm.SLIDING_WINDOW,
            derived={
                "curr": f"CASE WHEN {keep} THEN $level ELSE 0 END",
                "prev": f"CASE WHEN {keep} THEN $prev_level WHEN {shift} THEN $level ELSE 0 END",
                "start": f"CASE WHEN {keep} THEN $stamp ELSE {_WINDOW} END",
                "room": f"$L * $P - $prev * ($P - {lo}($P, {hi}(0, $now - $start))) - $curr * $P",
            },
            admitted=f"CASE WHEN $cost <= 0 OR $cost > $L OR $room < 0 THEN 0 ELSE {lo}($n, $room / ($cost * $P)) END",
            columns={
                "level": "$curr + $admitted * $cost",
                "prev_level": "$prev",
                "stamp_us": "$start",
                "before_level": "$curr",
                "admitted": "$admitted",
                "expires_us": "$start + 2 * $P",
            },
        ),
    )


DECIDERS: dict[Algorithm, Callable[[Dialect], str]] = {
    Algorithm.GCRA: gcra,
    Algorithm.FIXED_WINDOW: fixed_window,
    Algorithm.SLIDING_WINDOW: sliding_window,
}
"""The counting algorithms; CONCURRENCY holds leases instead (services.limiter.leases)."""
