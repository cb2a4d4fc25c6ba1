"""Reading a key's state without changing it: `GetStatus` and peeks (checks of cost 0).

The state is read with its limiter's current configuration and the shared clock's "now", and brought to "now"
in Python with the same rules the decision statements apply (services.limiter.statements). Nothing read here
is ever written back.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from services.limiter.algorithms import (
    Algorithm,
    View,
    concurrency_view,
    fixed_view,
    gcra_level_at,
    gcra_view,
    sliding_view,
    window_start,
)
from services.limiter.leases import live_leases
from services.limiter.statements import Dialect, SqlClock


@dataclass(frozen=True, slots=True)
class StoredKey:
    """One key's stored state with its limiter's configuration (state fields None for a fresh key)."""

    limiter: str
    key: str
    algorithm: Algorithm
    limit: int
    burst: int
    period_us: int
    level: int | None
    prev_level: int | None
    stamp_us: int | None
    cfg_period_us: int | None
    shadow: bool


_SOURCE_PG = "SELECT * FROM unnest(CAST(:lims AS text[]), CAST(:keys AS text[])) AS t(rlim, rkey)"
_SOURCE_SQLITE = "SELECT value ->> 0 AS rlim, value ->> 1 AS rkey FROM json_each(:keypairs)"


def _statement(d: Dialect) -> str:
    source = _SOURCE_PG if d.name == "postgresql" else _SOURCE_SQLITE
    return (
        "SELECT r.rlim, r.rkey, l.algorithm, l.limit_count, l.burst, l.period_us, "
        "s.level, s.prev_level, s.stamp_us, s.cfg_period_us, l.shadow "
        f"FROM ({source}) AS r JOIN limiters AS l ON l.id = r.rlim "
        "LEFT JOIN limiter_state AS s ON s.limiter = r.rlim AND s.key = r.rkey"
    )


def _params(d: Dialect, pairs: Sequence[tuple[str, str]]) -> dict[str, Any]:
    if d.name == "postgresql":
        return {"lims": [p[0] for p in pairs], "keys": [p[1] for p in pairs]}
    return {"keypairs": json.dumps(pairs)}


def read_keys(
    conn: sa.Connection, d: Dialect, pairs: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], StoredKey]:
    """The stored state of each `(limiter, key)` whose limiter exists."""
    found: dict[tuple[str, str], StoredKey] = {}
    for row in conn.execute(sa.text(_statement(d)), _params(d, pairs)):
        limiter, key, algorithm, limit, burst, period, level, prev_level, stamp, cfg_period, shadow = row
        stored = StoredKey(
            limiter,
            key,
            Algorithm(algorithm),
            limit,
            burst,
            period,
            level,
            prev_level,
            stamp,
            cfg_period,
            bool(shadow),
        )
        found[(stored.limiter, stored.key)] = stored
    return found


def view_at(stored: StoredKey, now_us: int, cost: int, leases: Sequence[tuple[int, int]] = ()) -> View:
    """The key's view at `now_us`, with `retry_after` for `cost` (the decision statements' rules)."""
    limit, period = stored.limit, stored.period_us
    same_period = stored.level is not None and stored.cfg_period_us == period
    if stored.algorithm is Algorithm.GCRA:
        level = stored.level
        if level is not None and stored.cfg_period_us and stored.cfg_period_us != period:
            level = min(level // stored.cfg_period_us, stored.burst) * period
        current = gcra_level_at(limit, stored.burst, period, level, stored.stamp_us, now_us)
        return gcra_view(limit, stored.burst, period, current, cost)
    if stored.algorithm is Algorithm.CONCURRENCY:
        return concurrency_view(limit, list(leases), now_us, cost)
    win = window_start(now_us, period)
    stamp = stored.stamp_us if stored.stamp_us is not None else win
    if stored.algorithm is Algorithm.FIXED_WINDOW:
        if same_period and stamp >= win:
            return fixed_view(limit, period, stored.level or 0, stamp, now_us, cost)
        return fixed_view(limit, period, 0, win, now_us, cost)
    if same_period and stamp >= win:
        curr, prev, start = stored.level or 0, stored.prev_level or 0, stamp
    elif same_period and stamp == win - period:
        curr, prev, start = 0, stored.level or 0, win
    else:
        curr, prev, start = 0, 0, win
    return sliding_view(limit, period, prev, curr, start, now_us, cost)


def views(
    conn: sa.Connection,
    clock: SqlClock,
    d: Dialect,
    items: Sequence[tuple[str, str, int]],
    *,
    shadows: dict[str, bool] | None = None,
) -> list[View | None]:
    """The view of each `(limiter, key, cost)` now; None where the limiter does not exist. `shadows`, if
    given, receives the shadow flag of each limiter found."""
    pairs = sorted({(limiter, key) for limiter, key, _ in items})
    stored = read_keys(conn, d, pairs)
    if shadows is not None:
        shadows.update((s.limiter, s.shadow) for s in stored.values())
    now = clock.now_us(conn)
    concurrent = [pair for pair, s in stored.items() if s.algorithm is Algorithm.CONCURRENCY]
    leases = live_leases(conn, clock, d, concurrent) if concurrent else {}
    result: list[View | None] = []
    for limiter, key, cost in items:
        s = stored.get((limiter, key))
        held = [(weight, expires) for weight, expires, _ in leases.get((limiter, key), ())]
        result.append(None if s is None else view_at(s, now, cost, held))
    return result
