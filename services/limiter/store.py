"""The limiter's other SQL: limiter CRUD, Reset, Release, the sweeper, stats and key counts.

Each change is one statement with RETURNING (a change of several rows — deleting a limiter and its state,
flushing stats — is one transaction). Decisions are in services.limiter.batch and its statement modules.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from services.limiter.algorithms import Algorithm, FailureMode, LimiterConfig
from services.limiter.statements import Dialect, SqlClock, dialect_of
from services.limiter.tables import limiter_leases, limiter_state, limiter_stats, limiters

FIELDS = (
    "algorithm",
    "limit_count",
    "period_us",
    "burst",
    "failure_mode",
    "shadow",
    "lease_ttl_us",
    "description",
)
"""The writable columns of `limiters`, in UpdateLimiter order."""


def config_of(row: Any) -> LimiterConfig:
    """A `limiters` row as a LimiterConfig."""
    return LimiterConfig(
        id=row.id,
        algorithm=Algorithm(row.algorithm),
        limit=row.limit_count,
        period_us=row.period_us,
        burst=row.burst,
        failure_mode=FailureMode(row.failure_mode),
        shadow=bool(row.shadow),
        lease_ttl_us=row.lease_ttl_us,
        description=row.description,
        create_us=row.create_us,
        update_us=row.update_us,
    )


def insert_limiter(conn: sa.Connection, clock: SqlClock, values: Mapping[str, Any]) -> LimiterConfig | None:
    """Creates a limiter; None when the id is taken (nothing changed)."""
    columns = ", ".join(("id", *FIELDS, "create_us", "update_us"))
    bound = ", ".join(f":{c}" for c in ("id", *FIELDS))
    statement = clock.text(
        f"WITH clock AS MATERIALIZED (SELECT {{now}} AS now_us) INSERT INTO limiters ({columns}) "
        f"SELECT {bound}, c.now_us, c.now_us FROM clock AS c WHERE true ON CONFLICT (id) DO NOTHING RETURNING *"
    )
    row = conn.execute(statement, dict(values)).first()
    return None if row is None else config_of(row)


def update_limiter(
    conn: sa.Connection, clock: SqlClock, limiter_id: str, values: Mapping[str, Any]
) -> LimiterConfig | None:
    """Sets the given columns in one statement and returns the new config; None when unknown.

    A change of algorithm first forgets every key's state (state of one algorithm means nothing to another),
    decided in SQL by comparing with the stored algorithm. The caller validates the returned config and
    raises, rolling the transaction back, when the combination is invalid.
    """
    if "algorithm" in values:
        changed = sa.exists().where(limiters.c.id == limiter_id, limiters.c.algorithm != values["algorithm"])
        for table in (limiter_state, limiter_leases):
            conn.execute(sa.delete(table).where(table.c.limiter == limiter_id, changed))
    sets = [f"{column} = :{column}" for column in values]
    if "burst" not in values:
        # A burst that was left at its default (= limit) follows the limit; other algorithms have no burst.
        limit = ":limit_count" if "limit_count" in values else "limit_count"
        algorithm = ":algorithm" if "algorithm" in values else "algorithm"
        gcra = int(Algorithm.GCRA)
        sets.append(
            f"burst = CASE WHEN {algorithm} <> {gcra} OR burst = limit_count THEN {limit} ELSE burst END"
        )
    statement = clock.text(
        f"UPDATE limiters SET {', '.join(sets)}, update_us = {{now}} WHERE id = :id RETURNING *"
    )
    row = conn.execute(statement, {**values, "id": limiter_id}).first()
    return None if row is None else config_of(row)


def sync_limiter(conn: sa.Connection, clock: SqlClock, values: Mapping[str, Any]) -> None:
    """Creates a limiter or brings it to `values` (limiters defined by configuration, e.g. Envoy's).

    One upsert that changes the row only when a value differs (replicas starting together agree); a change
    of algorithm first forgets the keys' state, decided in SQL against the stored algorithm.
    """
    changed = sa.exists().where(limiters.c.id == values["id"], limiters.c.algorithm != values["algorithm"])
    for table in (limiter_state, limiter_leases):
        conn.execute(sa.delete(table).where(table.c.limiter == values["id"], changed))
    columns = ", ".join(("id", *FIELDS, "create_us", "update_us"))
    bound = ", ".join(f":{c}" for c in ("id", *FIELDS))
    updates = ", ".join(f"{c} = excluded.{c}" for c in FIELDS)
    differs = " OR ".join(f"limiters.{c} <> excluded.{c}" for c in FIELDS)
    statement = clock.text(
        f"WITH clock AS MATERIALIZED (SELECT {{now}} AS now_us) INSERT INTO limiters ({columns}) "
        f"SELECT {bound}, c.now_us, c.now_us FROM clock AS c WHERE true "
        f"ON CONFLICT (id) DO UPDATE SET {updates}, update_us = excluded.update_us WHERE {differs}"
    )
    conn.execute(statement, dict(values))


def forget_keys(conn: sa.Connection, limiter_id: str) -> int:
    """Deletes every key's state and leases of a limiter; returns the number of keys."""
    keys = conn.execute(sa.delete(limiter_state).where(limiter_state.c.limiter == limiter_id)).rowcount
    conn.execute(sa.delete(limiter_leases).where(limiter_leases.c.limiter == limiter_id))
    return int(keys)


def delete_limiter(conn: sa.Connection, limiter_id: str) -> int | None:
    """Deletes a limiter with its state, leases and stats; the number of keys it had, None if unknown."""
    keys = forget_keys(conn, limiter_id)
    gone = conn.execute(
        sa.delete(limiters).where(limiters.c.id == limiter_id).returning(limiters.c.id)
    ).first()
    return None if gone is None else keys


def get_limiters(conn: sa.Connection, ids: Sequence[str]) -> dict[str, LimiterConfig]:
    """The limiters with these ids that exist."""
    rows = conn.execute(sa.select(limiters).where(limiters.c.id.in_(list(ids))))
    return {row.id: config_of(row) for row in rows}


def list_limiters(conn: sa.Connection, after: str, page_size: int) -> list[LimiterConfig]:
    """Up to `page_size` limiters with ids after `after`, in id order."""
    query = sa.select(limiters).where(limiters.c.id > after).order_by(limiters.c.id).limit(page_size)
    return [config_of(row) for row in conn.execute(query)]


def reset_key(conn: sa.Connection, limiter_id: str, key: str) -> bool | None:
    """Clears one key's state and leases; whether it had any; None when the limiter does not exist."""
    if conn.execute(sa.select(limiters.c.id).where(limiters.c.id == limiter_id)).first() is None:
        return None
    state = conn.execute(
        sa.delete(limiter_state)
        .where(limiter_state.c.limiter == limiter_id, limiter_state.c.key == key)
        .returning(limiter_state.c.key)
    ).first()
    leases = conn.execute(
        sa.delete(limiter_leases)
        .where(limiter_leases.c.limiter == limiter_id, limiter_leases.c.key == key)
        .returning(limiter_leases.c.lease_id)
    ).all()
    return state is not None or bool(leases)


class ReleaseHandler:
    """BatchHandler of Release: one DELETE for a batch of lease ids; True where the lease was live."""

    name = "limiter.release"

    def __init__(self, dialect: str, clock: SqlClock) -> None:
        d = dialect_of(dialect)
        source = (
            "SELECT unnest(CAST(:ids AS text[]))"
            if d.name == "postgresql"
            else "SELECT value FROM json_each(:ids)"
        )
        self._d = d
        self._statement = clock.text(
            f"DELETE FROM limiter_leases WHERE lease_id IN ({source}) "
            "RETURNING lease_id, CASE WHEN expires_us > {now} THEN 1 ELSE 0 END AS live"
        )

    def run(self, conn: sa.Connection, ops: Sequence[str]) -> Sequence[bool]:
        """Deletes the leases; each op learns whether its lease was live."""
        ids = sorted(set(ops))
        params = {"ids": ids if self._d.name == "postgresql" else json.dumps(ids)}
        live = {row.lease_id: bool(row.live) for row in conn.execute(self._statement, params)}
        # A lease released twice in one batch is released by the first op only.
        results: list[bool] = []
        for lease_id in ops:
            results.append(live.pop(lease_id, False))
        return results


_GCRA = int(Algorithm.GCRA)
_SETTINGS_CHANGED = (
    "(cfg_limit <> {l}.limit_count OR cfg_burst <> {l}.burst OR cfg_period_us <> {l}.period_us)"
)
_GCRA_LEVEL = (
    "CASE WHEN cfg_period_us = {l}.period_us THEN level "
    "WHEN level / cfg_period_us < {l}.burst THEN level / cfg_period_us * {l}.period_us "
    "ELSE {l}.burst * {l}.period_us END"
)
_GCRA_FULL_AT = (
    "stamp_us + CASE WHEN ({level}) >= {l}.burst * {l}.period_us THEN 0 "
    "ELSE ({l}.burst * {l}.period_us - ({level})) / {l}.limit_count END + 1"
)
GCRA_FULL_AT = _GCRA_FULL_AT.format(level=_GCRA_LEVEL, l="{l}")
"""When a GCRA bucket is full again under the limiter's *current* settings, from its stored level, rescaled as
a decision would (a period change keeps whole tokens, a lowered burst caps them). Rounded 1 µs late rather than
up (`x / L + 1`, not `(x + L - 1) / L`): the sum could pass 2^63 next to a limit near 2^62."""

_SWEEPABLE = (
    f"s.expires_us < {{now}} AND (l.algorithm <> {_GCRA} OR NOT {_SETTINGS_CHANGED.format(l='l')} "
    f"OR {GCRA_FULL_AT.format(l='l')} <= {{now}})"
)
"""A key state back to a fresh key's. A GCRA state's `expires_us` (when its bucket is full again) was computed
under the settings of its last decision: after a lowered limit or a raised burst the bucket refills later, so
such a row goes only once it is full under the current settings (windows keep their expiry: a changed limit
does not move a window, a changed period invalidates it). Unqualified columns are the state row's."""

_REDATABLE = (
    f"s.expires_us < {{now}} AND l.algorithm = {_GCRA} AND {_SETTINGS_CHANGED.format(l='l')} "
    f"AND {GCRA_FULL_AT.format(l='l')} > {{now}}"
)
"""GCRA states past their stored expiry that the current settings keep (not full yet; full ones are the
DELETE's, whatever its LIMIT left): the sweep moves their expiry to when they are full under those settings, so later sweeps (every early sweep near the key bound included) do not
walk them again and again."""


def sweep(conn: sa.Connection, clock: SqlClock, batch: int) -> tuple[int, int, int]:
    """Deletes up to `batch` expired key states and `batch` expired leases, and re-dates up to `batch` GCRA
    states whose refill the limiter's new settings slowed; the counts deleted and re-dated.

    The outer conditions are evaluated again on the row being changed (PostgreSQL re-checks them on a row that
    a concurrent decision updated), so a key that a decision just renewed, or brought to the current settings,
    is left alone; a re-dated expiry is computed from that row too.
    """
    states = conn.execute(
        clock.text(
            "DELETE FROM limiter_state WHERE (limiter, key) IN (SELECT s.limiter, s.key FROM limiter_state AS s "
            f"JOIN limiters AS l ON l.id = s.limiter WHERE {_SWEEPABLE} LIMIT :batch) AND expires_us < {{now}}"
        ),
        {"batch": batch},
    ).rowcount
    current = "(SELECT {column} FROM limiters AS c WHERE c.id = limiter_state.limiter)"
    redated = conn.execute(
        clock.text(
            f"UPDATE limiter_state SET expires_us = {current.format(column=GCRA_FULL_AT.format(l='c'))} "
            "WHERE (limiter, key) IN (SELECT s.limiter, s.key FROM limiter_state AS s "
            f"JOIN limiters AS l ON l.id = s.limiter WHERE {_REDATABLE} LIMIT :batch) AND expires_us < {{now}} "
            f"AND EXISTS (SELECT 1 FROM limiters AS c WHERE c.id = limiter_state.limiter "
            f"AND c.algorithm = {_GCRA} AND {_SETTINGS_CHANGED.format(l='c')})"
        ),
        {"batch": batch},
    ).rowcount
    leases = conn.execute(
        clock.text(
            "DELETE FROM limiter_leases WHERE lease_id IN (SELECT lease_id FROM limiter_leases "
            "WHERE expires_us <= {now} LIMIT :batch)"
        ),
        {"batch": batch},
    ).rowcount
    return int(states), int(redated), int(leases)


@dataclass(slots=True)
class Counts:
    """Decision counters of one limiter."""

    checks: int = 0
    allowed: int = 0
    denied: int = 0
    shadow_denied: int = 0

    def add(self, other: Counts) -> None:
        """Adds `other` into this."""
        self.checks += other.checks
        self.allowed += other.allowed
        self.denied += other.denied
        self.shadow_denied += other.shadow_denied


def flush_stats(conn: sa.Connection, d: Dialect, deltas: Mapping[str, Counts]) -> None:
    """Adds counters to the shared stats table (limiters deleted meanwhile are skipped)."""
    rows = [(lim, c.checks, c.allowed, c.denied, c.shadow_denied) for lim, c in sorted(deltas.items())]
    if d.name == "postgresql":
        source = (
            "SELECT * FROM unnest(CAST(:lims AS text[]), CAST(:a AS bigint[]), CAST(:b AS bigint[]), "
            "CAST(:c AS bigint[]), CAST(:e AS bigint[])) AS t(lim, checks, allowed, denied, shadow_denied)"
        )
        params: dict[str, Any] = {"lims": [r[0] for r in rows]}
        for name, index in (("a", 1), ("b", 2), ("c", 3), ("e", 4)):
            params[name] = [r[index] for r in rows]
    else:
        source = (
            "SELECT value ->> 0 AS lim, value ->> 1 AS checks, value ->> 2 AS allowed, "
            "value ->> 3 AS denied, value ->> 4 AS shadow_denied FROM json_each(:rows)"
        )
        params = {"rows": json.dumps(rows)}
    conn.execute(
        sa.text(
            "INSERT INTO limiter_stats (limiter, checks, allowed, denied, shadow_denied) "
            f"SELECT t.lim, t.checks, t.allowed, t.denied, t.shadow_denied FROM ({source}) AS t "
            "JOIN limiters AS l ON l.id = t.lim WHERE true "
            "ON CONFLICT (limiter) DO UPDATE SET checks = limiter_stats.checks + excluded.checks, "
            "allowed = limiter_stats.allowed + excluded.allowed, denied = limiter_stats.denied + excluded.denied, "
            "shadow_denied = limiter_stats.shadow_denied + excluded.shadow_denied"
        ),
        params,
    )


def read_stats(conn: sa.Connection, clock: SqlClock, limiter_id: str | None) -> dict[str, tuple[Counts, int]]:
    """Stored counters and live key counts per limiter (every limiter, or one)."""
    now = clock.now_us(conn)
    live_keys = (
        sa.select(sa.func.count())
        .where(limiter_state.c.limiter == limiters.c.id, limiter_state.c.expires_us >= now)
        .scalar_subquery()
    )
    query = (
        sa.select(
            limiters.c.id,
            sa.func.coalesce(limiter_stats.c.checks, 0),
            sa.func.coalesce(limiter_stats.c.allowed, 0),
            sa.func.coalesce(limiter_stats.c.denied, 0),
            sa.func.coalesce(limiter_stats.c.shadow_denied, 0),
            live_keys,
        )
        .select_from(limiters.outerjoin(limiter_stats, limiter_stats.c.limiter == limiters.c.id))
        .order_by(limiters.c.id)
    )
    if limiter_id is not None:
        query = query.where(limiters.c.id == limiter_id)
    return {row[0]: (Counts(row[1], row[2], row[3], row[4]), row[5]) for row in conn.execute(query)}


def count_keys(conn: sa.Connection) -> int:
    """Rows of key state (the resource manager's measure of the limiter's size)."""
    return int(conn.execute(sa.select(sa.func.count()).select_from(limiter_state)).scalar_one())
