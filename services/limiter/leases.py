"""CONCURRENCY limiters: leases that are released or expire, decided without over-admission.

A check first locks its keys' state rows (`UPDATE … RETURNING`, in key order), then inserts its leases with one
`INSERT … SELECT` that admits a request only when the live leases' weight plus the request's running total
(`rcum`, the prefix sum of the costs of that key's requests in arrival order) stays within the limit. Under
PostgreSQL's READ COMMITTED the insert's snapshot is taken after the locks, so it sees every lease committed by
an earlier holder of the lock, and nobody else can add a lease for these keys until this transaction ends: a
count of leases alone (without the lock) would let two replicas both take the last slot.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from services.limiter.algorithms import Algorithm
from services.limiter.statements import Dialect, SqlClock

_KEYS_PG = "SELECT * FROM unnest(CAST(:lims AS text[]), CAST(:keys AS text[])) AS t(rlim, rkey)"
_KEYS_SQLITE = "SELECT value ->> 0 AS rlim, value ->> 1 AS rkey FROM json_each(:keypairs)"
_REQS_PG = (
    "SELECT * FROM unnest(CAST(:ids AS text[]), CAST(:lims AS text[]), CAST(:keys AS text[]),"
    " CAST(:costs AS bigint[]), CAST(:cums AS bigint[])) AS t(rid, rlim, rkey, rcost, rcum)"
)
_REQS_SQLITE = (
    "SELECT value ->> 0 AS rid, value ->> 1 AS rlim, value ->> 2 AS rkey, value ->> 3 AS rcost,"
    " value ->> 4 AS rcum FROM json_each(:reqs)"
)


def _keys_source(d: Dialect) -> str:
    return _KEYS_PG if d.name == "postgresql" else _KEYS_SQLITE


def keys_params(d: Dialect, pairs: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """Bound values of a `(limiter, key)` source, in the given (sorted) order."""
    if d.name == "postgresql":
        return {"lims": [p[0] for p in pairs], "keys": [p[1] for p in pairs]}
    return {"keypairs": json.dumps(pairs)}


def lock_statement(d: Dialect) -> str:
    """Locks (and stamps) the state rows of CONCURRENCY keys; returns the ones whose limiter exists."""
    ensure = (
        f"INSERT INTO limiter_state (limiter, key) SELECT r.rlim, r.rkey FROM ({_keys_source(d)}) AS r "
        "JOIN limiters AS l ON l.id = r.rlim WHERE true ORDER BY r.rlim, r.rkey "
        "ON CONFLICT (limiter, key) DO NOTHING"
    )
    lock = (
        "WITH clock AS MATERIALIZED (SELECT {now} AS now_us) "
        "UPDATE limiter_state AS s SET seen_us = c.now_us, "
        f"expires_us = {d.greatest}(COALESCE(s.expires_us, 0), c.now_us + l.lease_ttl_us), "
        "cfg_limit = l.limit_count, cfg_burst = l.burst, cfg_period_us = l.period_us "
        f"FROM ({_keys_source(d)}) AS r JOIN limiters AS l ON l.id = r.rlim, clock AS c "
        f"WHERE s.limiter = r.rlim AND s.key = r.rkey AND l.algorithm = {int(Algorithm.CONCURRENCY)} "
        "RETURNING limiter, key, seen_us, cfg_limit, "
        "(SELECT sl.shadow FROM limiters AS sl WHERE sl.id = limiter)"  # RETURNING names no alias on SQLite
    )
    return ensure + ";" + lock


def insert_statement(d: Dialect) -> str:
    """Inserts the leases that fit; returns their ids."""
    reqs = _REQS_PG if d.name == "postgresql" else _REQS_SQLITE
    return (
        "WITH clock AS MATERIALIZED (SELECT {now} AS now_us), "
        f"req AS MATERIALIZED ({reqs}), "
        "held AS (SELECT ll.limiter, ll.key, SUM(ll.weight) AS held FROM limiter_leases AS ll "
        "JOIN (SELECT DISTINCT rlim, rkey FROM req) AS k ON ll.limiter = k.rlim AND ll.key = k.rkey "
        "CROSS JOIN clock AS c WHERE ll.expires_us > c.now_us GROUP BY ll.limiter, ll.key) "
        "INSERT INTO limiter_leases (lease_id, limiter, key, weight, expires_us) "
        "SELECT q.rid, q.rlim, q.rkey, q.rcost, c.now_us + l.lease_ttl_us FROM req AS q "
        f"JOIN limiters AS l ON l.id = q.rlim AND l.algorithm = {int(Algorithm.CONCURRENCY)} "
        "CROSS JOIN clock AS c LEFT JOIN held AS h ON h.limiter = q.rlim AND h.key = q.rkey "
        "WHERE q.rcost > 0 AND q.rcost <= l.limit_count AND COALESCE(h.held, 0) + q.rcum <= l.limit_count "
        "RETURNING lease_id"
    )


def requests_params(d: Dialect, rows: Sequence[tuple[str, str, str, int, int]]) -> dict[str, Any]:
    """Bound values of the request source: (lease_id, limiter, key, cost, running total)."""
    if d.name == "postgresql":
        return {
            "ids": [r[0] for r in rows],
            "lims": [r[1] for r in rows],
            "keys": [r[2] for r in rows],
            "costs": [r[3] for r in rows],
            "cums": [r[4] for r in rows],
        }
    return {"reqs": json.dumps(rows)}


def live_leases_statement(d: Dialect) -> str:
    """The live leases `(limiter, key, weight, expires_us, lease_id)` of the given keys."""
    return (
        "SELECT ll.limiter, ll.key, ll.weight, ll.expires_us, ll.lease_id FROM limiter_leases AS ll "
        f"JOIN ({_keys_source(d)}) AS r ON ll.limiter = r.rlim AND ll.key = r.rkey "
        "WHERE ll.expires_us > {now} ORDER BY ll.limiter, ll.key, ll.expires_us"
    )


def lock_keys(
    conn: sa.Connection, clock: SqlClock, d: Dialect, pairs: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], tuple[int, int, bool]]:
    """Locks the keys' state rows; `(limiter, key) → (now_us, limit, shadow)` for those whose limiter exists."""
    ensure, lock = lock_statement(d).split(";")
    params = keys_params(d, pairs)
    conn.execute(sa.text(ensure), params)
    return {
        (row[0], row[1]): (row[2], row[3], bool(row[4])) for row in conn.execute(clock.text(lock), params)
    }


def live_leases(
    conn: sa.Connection, clock: SqlClock, d: Dialect, pairs: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], list[tuple[int, int, str]]]:
    """Live leases `(weight, expires_us, lease_id)` per key."""
    leases: dict[tuple[str, str], list[tuple[int, int, str]]] = {pair: [] for pair in pairs}
    statement = clock.text(live_leases_statement(d))
    for limiter, key, weight, expires, lease_id in conn.execute(statement, keys_params(d, pairs)):
        leases[(limiter, key)].append((weight, expires, lease_id))
    return leases
