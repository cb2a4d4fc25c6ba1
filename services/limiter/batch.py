"""The group-commit handler of `Check`: every concurrent check of a batch decided in a few statements.

Single-item checks (and each item of an INDEPENDENT check) are *units*. Units on one key with equal cost in a
row are merged into one statement row of `n` requests; different costs on one key go to successive *rounds*
(the k-th run of each key in the k-th statement); a batch whose keys are all distinct, the usual one, skips the
merging. On PostgreSQL the statement takes its rows in (limiter, key) order (`ORDER BY`), so that replicas lock
keys in one order. The statement says how many of the `n` were admitted; they are the first ones in arrival order.

ALL_OR_NOTHING checks of several items, and dry runs, run in a SAVEPOINT each: the same statements on their
items (one row per key, costs summed), rolled back when any item is denied (or always, for a dry run). The
ALL_OR_NOTHING checks of a batch are first tried together, in one savepoint and statement; that attempt stands
only when all of them are allowed whole, which is exactly when it equals the one-by-one result.
Peeks (cost 0) change nothing: they are read after the decisions, from the same transaction.
"""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from services.limiter import leases, reads
from services.limiter.algorithms import Algorithm, concurrency_view
from services.limiter.decisions import CheckOp, Decision, StaleConfig, Unit, distribute
from services.limiter.statements import DECIDERS, SqlClock, dialect_of, report
from services.runtime.store import RefusedOps, driver_connection
from services.runtime.store.clock import NOW_PARAM
from services.runtime.store.errors import sqlite_error

Slot = tuple[int, int]
"""(op index, unit index) of a unit in the batch."""

_TOGETHER_PAUSE_BATCHES = 8
"""Batches that decide ALL_OR_NOTHING ops one by one after an attempt to decide them together failed."""


@dataclass
class _Outcome:
    decisions: dict[Slot, Decision] = field(default_factory=dict)
    missing: set[tuple[str, str]] = field(default_factory=set)
    shadows: dict[str, bool] = field(default_factory=dict)
    """The shadow flag of each limiter as the statements read it. On PostgreSQL each statement reads anew, so
    with a flag changed between two statements of a batch the last one read counts: an op then runs again on
    the newer flag or keeps it, either being the flag at a moment during its transaction."""


class CheckHandler:
    """BatchHandler of `Check` operations."""

    name = "limiter.check"

    def __init__(self, dialect: str, clock: SqlClock, *, atomic_together: bool = True) -> None:
        self._d = dialect_of(dialect)
        self._atomic_together = atomic_together
        self._clock = clock
        self._decide_sql = {alg: clock.text(make(self._d)) for alg, make in DECIDERS.items()}
        self._report_sql = {alg: report(self._d, alg) for alg in DECIDERS}
        # SQLite: the two statements of a round go to the driver as they are (sqlite3 takes `:name` parameters):
        # SQLAlchemy's execute costs ~9 µs of GIL-held Python each, about what the rest of a batch of single-item
        # checks costs per check. Same connection and transaction; errors wrapped as SQLAlchemy's.
        self._raw_decide = {
            alg: make(self._d).replace("{now}", clock.snippet) for alg, make in DECIDERS.items()
        }
        self._together_pause = 0

    def run(self, conn: sa.Connection, ops: Sequence[CheckOp]) -> Sequence[list[Decision] | BaseException]:
        """Decides every op of the batch (see the module docstring)."""
        simple: list[tuple[Slot, Unit]] = []
        atomic: list[int] = []
        for i, op in enumerate(ops):
            if op.atomic or op.dry_run:
                atomic.append(i)
            else:
                simple.extend(((i, j), unit) for j, unit in enumerate(op.units))
        outcome = self._decide(conn, simple)
        if not self._decide_atomic_together(conn, atomic, ops, outcome):
            for i in atomic:
                self._decide_atomic(conn, i, ops[i], outcome)
        peeks = [(slot, u) for slot, u in simple if u.cost == 0]
        peeks += [((i, j), u) for i in atomic for j, u in enumerate(ops[i].units) if u.cost == 0]
        self._peek(conn, peeks, outcome)
        refused = _stale_ops(ops, outcome)
        if refused:
            # Not returned as results: the stale ops' units share statements with the others, so only a
            # rollback undoes what they consumed. The writer rolls the batch back, fails them (each check then
            # looks its definitions up again and runs whole, or is NOT_FOUND having changed nothing) and runs
            # the others again without them.
            raise RefusedOps(refused)
        return [[outcome.decisions[(i, j)] for j in range(len(op.units))] for i, op in enumerate(ops)]

    # ---- counting algorithms and leases, merged ----------------------------------------------------

    def _decide(
        self, conn: sa.Connection, units: Sequence[tuple[Slot, Unit]], *, keep_before: bool = False
    ) -> _Outcome:
        outcome = _Outcome()
        by_algorithm: dict[Algorithm, list[tuple[Slot, Unit]]] = defaultdict(list)
        for slot, unit in units:
            if unit.cost > 0:
                by_algorithm[unit.algorithm].append((slot, unit))
        for algorithm, group in by_algorithm.items():
            if algorithm is Algorithm.CONCURRENCY:
                self._lease(conn, group, outcome)
            else:
                self._count(conn, algorithm, group, outcome, keep_before)
        return outcome

    def _count(
        self,
        conn: sa.Connection,
        algorithm: Algorithm,
        units: list[tuple[Slot, Unit]],
        outcome: _Outcome,
        keep_before: bool,
    ) -> None:
        decided, missing, shadows = outcome.decisions, outcome.missing, outcome.shadows
        if len({(unit.limiter, unit.key) for _, unit in units}) == len(units):
            # The usual batch: every key once, so one statement whose rows are the units themselves (in any
            # order: the statement orders them).
            returned = self._update(conn, algorithm, [(u.limiter, u.key, u.cost, 1) for _, u in units])
            for (slot, unit), row in zip(units, returned, strict=True):
                if row is None:
                    missing.add((unit.limiter, unit.key))
                    continue
                shadows[unit.limiter] = bool(row[11])
                decided[slot] = distribute(algorithm, row, unit.cost, 1, keep_before)[0]
            return
        # key → runs of consecutive equal costs, each run a list of slots in arrival order.
        runs: dict[tuple[str, str], list[tuple[int, list[Slot]]]] = {}
        for slot, unit in units:
            pair = (unit.limiter, unit.key)
            key_runs = runs.get(pair)
            if key_runs is None:
                runs[pair] = [(unit.cost, [slot])]
            elif key_runs[-1][0] == unit.cost:
                key_runs[-1][1].append(slot)
            else:
                key_runs.append((unit.cost, [slot]))
        depth = max(len(r) for r in runs.values())
        for round_no in range(depth):
            rows = [(pair, key_runs[round_no]) for pair, key_runs in runs.items() if round_no < len(key_runs)]
            returned = self._update(
                conn, algorithm, [(lim, key, cost, len(slots)) for (lim, key), (cost, slots) in rows]
            )
            for (pair, (cost, slots)), row in zip(rows, returned, strict=True):
                if row is None:
                    missing.add(pair)
                    continue
                shadows[pair[0]] = bool(row[11])
                decisions = distribute(algorithm, row, cost, len(slots), keep_before)
                for slot, decision in zip(slots, decisions, strict=True):
                    decided[slot] = decision

    def _update(
        self,
        conn: sa.Connection,
        algorithm: Algorithm,
        rows: list[tuple[str, str, int, int]],
    ) -> list[Any]:
        """Runs the decision statement (an upsert: new and known keys alike) on `rows` (limiter, key, cost,
        n); the returned row of each, in the same order (None where the limiter is gone or of another
        algorithm)."""
        params = self._rows_params(rows)
        report_sql = self._report_sql[algorithm]
        if report_sql is None:
            decided = conn.execute(self._decide_sql[algorithm], params)
            by_key = {(r[0], r[1]): r for r in decided}
            return [by_key.get((r[0], r[1])) for r in rows]
        cursor = driver_connection(conn).cursor()
        decide_sql = self._raw_decide[algorithm]
        try:
            cursor.execute(decide_sql, {**params, NOW_PARAM: self._clock.now_us(conn)})
            reported = cursor.execute(report_sql, params).fetchone()[0]
        except sqlite3.Error as exc:
            raise sqlite_error(exc, decide_sql) from exc
        aligned: list[Any] = [None] * len(rows)
        for row in json.loads(reported):
            aligned[row[0]] = row  # the report names each row by its position in `rows`
        return aligned

    def _lease(self, conn: sa.Connection, units: list[tuple[Slot, Unit]], outcome: _Outcome) -> None:
        d = self._d
        pairs = sorted({(u.limiter, u.key) for _, u in units})
        locked = leases.lock_keys(conn, self._clock, d, pairs)
        outcome.shadows.update((limiter, shadow) for (limiter, _), (_, _, shadow) in locked.items())
        # Runs of equal cost per key, decided round by round (as for the counting algorithms): within a
        # run the running total admits exactly a prefix, which is what one-by-one processing would admit.
        runs: dict[tuple[str, str], list[list[Unit]]] = {}
        for _, unit in units:
            pair = (unit.limiter, unit.key)
            if pair not in locked:
                outcome.missing.add(pair)
                continue
            key_runs = runs.setdefault(pair, [])
            if key_runs and key_runs[-1][0].cost == unit.cost:
                key_runs[-1].append(unit)
            else:
                key_runs.append([unit])
        if not runs:
            return
        insert = self._clock.text(leases.insert_statement(d))
        granted: set[str] = set()
        for round_no in range(max(len(r) for r in runs.values())):
            requests: list[tuple[str, str, str, int, int]] = []
            for pair in sorted(runs):
                if round_no < len(runs[pair]):
                    for n, unit in enumerate(runs[pair][round_no], start=1):
                        requests.append((unit.lease_id, unit.limiter, unit.key, unit.cost, n * unit.cost))
            granted.update(row[0] for row in conn.execute(insert, leases.requests_params(d, requests)))
        live = leases.live_leases(conn, self._clock, d, sorted(locked))
        # Views as one-by-one processing would see them: a unit sees the leases live before the batch and
        # those granted to units before it (in arrival order), not the ones granted after it.
        later = set(granted)
        for slot, unit in units:
            pair = (unit.limiter, unit.key)
            if pair not in locked:
                continue
            now, limit, _ = locked[pair]
            allowed = unit.lease_id in granted
            later.discard(unit.lease_id)
            seen = [(w, e) for w, e, lease_id in live[pair] if lease_id not in later]
            if allowed:
                others = [
                    (w, e)
                    for w, e, lease_id in live[pair]
                    if lease_id not in later and lease_id != unit.lease_id
                ]
                view = concurrency_view(limit, seen, now, 0)
                before = concurrency_view(limit, others, now, 0)
                outcome.decisions[slot] = Decision(True, view, True, unit.lease_id, before)
            else:
                view = concurrency_view(limit, seen, now, unit.cost)
                outcome.decisions[slot] = Decision(False, view, before=view)

    def _rows_params(self, rows: list[tuple[str, str, int, int]]) -> dict[str, Any]:
        if self._d.name == "postgresql":
            return {
                "lims": [r[0] for r in rows],
                "keys": [r[1] for r in rows],
                "costs": [r[2] for r in rows],
                "ns": [r[3] for r in rows],
            }
        return {"rows": json.dumps(rows)}

    # ---- all or nothing, dry runs, peeks ----------------------------------------------------------

    def _decide_atomic_together(
        self, conn: sa.Connection, indices: list[int], ops: Sequence[CheckOp], outcome: _Outcome
    ) -> bool:
        """Decides several ALL_OR_NOTHING ops (no dry run, no leases) in one savepoint, one statement per
        round. Kept only when every op is allowed whole: then each op got what one savepoint each, in
        arrival order, would have given it (a key shared by ops is decided run by run, as in `_count`).
        Otherwise it is rolled back (False: the caller decides them one by one) and the next few batches do
        not try, so a run of denials does not pay for every check twice."""
        if len(indices) < 2 or not self._atomic_together:
            return False
        if self._together_pause > 0:
            self._together_pause -= 1
            return False
        groups = []
        for i in indices:
            op = ops[i]
            units, members = _atomic_units(i, op)
            if op.dry_run or any(u.algorithm is Algorithm.CONCURRENCY for _, u in units):
                return False
            groups.append((i, units, members))
        savepoint = conn.begin_nested()
        # No views "before" this consumption: they serve only rollbacks, and a rolled-back attempt is redone.
        part = self._decide(conn, [unit for _, units, _ in groups for unit in units])
        if part.missing or (
            not all(decision.allowed for decision in part.decisions.values())
            and any(
                not decision.allowed and not unit.shadow
                for _, units, _ in groups
                for slot, unit in units
                if (decision := part.decisions.get(slot)) is not None
            )
        ):
            savepoint.rollback()
            self._together_pause = _TOGETHER_PAUSE_BATCHES
            return False
        savepoint.commit()
        outcome.shadows.update(part.shadows)
        outcome.decisions.update(part.decisions)  # right as they are for ops whose items are their own rows
        for i, _, members in groups:
            if members is not None:
                _settle_atomic(i, part, members, True, outcome)
        return True

    def _decide_atomic(self, conn: sa.Connection, index: int, op: CheckOp, outcome: _Outcome) -> None:
        units, members = _atomic_units(index, op)
        savepoint = conn.begin_nested()
        part = self._decide(conn, units, keep_before=True)
        denied = any(
            not part.decisions[slot].allowed and not unit.shadow
            for slot, unit in units
            if slot in part.decisions
        )
        kept = not (op.dry_run or denied or part.missing)
        if kept:
            savepoint.commit()
        else:
            savepoint.rollback()
        outcome.missing |= part.missing
        outcome.shadows.update(part.shadows)
        _settle_atomic(index, part, members, kept, outcome)

    def _peek(self, conn: sa.Connection, units: list[tuple[Slot, Unit]], outcome: _Outcome) -> None:
        if not units:
            return
        found = reads.views(
            conn, self._clock, self._d, [(u.limiter, u.key, 1) for _, u in units], shadows=outcome.shadows
        )
        for (slot, unit), view in zip(units, found, strict=True):
            if view is None:
                outcome.missing.add((unit.limiter, unit.key))
            else:
                outcome.decisions[slot] = Decision(view.retry_after_us == 0, view)


def _stale_ops(ops: Sequence[CheckOp], outcome: _Outcome) -> dict[int, BaseException]:
    """The ops decided on definitions the database no longer holds: a limiter gone (or of another algorithm:
    its statement skips the key), or a shadow flag that differs from the statement's."""
    refused: dict[int, BaseException] = {}
    missing, shadows = outcome.missing, outcome.shadows
    for i, op in enumerate(ops):
        stale = {unit.limiter for unit in op.units if shadows.get(unit.limiter, unit.shadow) != unit.shadow}
        if missing:
            stale.update(unit.limiter for unit in op.units if (unit.limiter, unit.key) in missing)
        if stale:
            refused[i] = StaleConfig(stale)
    return refused


def _atomic_units(index: int, op: CheckOp) -> tuple[list[tuple[Slot, Unit]], dict[Slot, list[int]] | None]:
    """The rows of an ALL_OR_NOTHING op: one per key with the costs summed (the items of one key fit
    together or not at all). Merged rows get slots past the op's own items; `members` maps each decided slot
    to its items, or is None when each item is its own row in its own slot (distinct keys, the usual case)."""
    if all(u.cost > 0 and u.algorithm is not Algorithm.CONCURRENCY for u in op.units) and len(
        {(u.limiter, u.key) for u in op.units}
    ) == len(op.units):
        return [((index, j), unit) for j, unit in enumerate(op.units)], None
    merged: dict[tuple[str, str], int] = {}  # key → its row's position in `units`
    members: dict[Slot, list[int]] = defaultdict(list)
    units: list[tuple[Slot, Unit]] = []
    for j, unit in enumerate(op.units):
        if unit.cost == 0:
            continue
        pair = (unit.limiter, unit.key)
        if unit.algorithm is Algorithm.CONCURRENCY:
            slot = (index, j)
            units.append((slot, unit))
        elif pair in merged:
            position = merged[pair]
            slot, row = units[position]
            summed = row._replace(cost=row.cost + unit.cost)
            units[position] = (slot, summed)
        else:
            slot = (index, len(op.units) + len(merged))
            merged[pair] = len(units)
            units.append((slot, unit))
        members[slot].append(j)
    return units, members


def _settle_atomic(
    index: int, part: _Outcome, members: dict[Slot, list[int]] | None, kept: bool, outcome: _Outcome
) -> None:
    """Copies an atomic op's decisions to its items; rolled back (not `kept`), they consumed nothing."""
    if members is None:
        for slot, own in part.decisions.items():
            if slot[0] == index:
                outcome.decisions[slot] = own if kept else own.unconsumed()
        return
    for slot, items in members.items():
        decision = part.decisions.get(slot)
        if decision is not None:
            settled = decision if kept else decision.unconsumed()
            for j in items:
                outcome.decisions[(index, j)] = settled
