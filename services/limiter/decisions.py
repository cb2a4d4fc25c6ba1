"""What the limiter's batch handler takes and gives: units to decide, Check ops, decisions, and how a decision
statement's returned row becomes the decisions of the requests merged into it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from services.limiter.algorithms import Algorithm, View, fixed_view, gcra_view, sliding_view


class Unit(NamedTuple):
    """One item to decide: `cost` units of `key` on limiter `limiter` (its id).

    Units and decisions are NamedTuples like the other per-item value types (services.limiter.algorithms.View):
    a Check of 1,000 items builds thousands of them."""

    limiter: str
    key: str
    cost: int
    algorithm: Algorithm
    shadow: bool = False
    lease_id: str = ""


@dataclass(slots=True)
class CheckOp:
    """One Check request as the writer sees it."""

    units: list[Unit]
    atomic: bool
    """ALL_OR_NOTHING with several items: all consume or none does."""
    dry_run: bool = False


class Decision(NamedTuple):
    """The decision on one unit. `consumed` is False for denials, peeks, dry runs and rolled-back items."""

    allowed: bool
    view: View
    consumed: bool = False
    lease_id: str = ""
    before: View | None = None
    """For items of atomic checks: the key's view had this item not consumed (used when rolled back)."""

    def unconsumed(self) -> Decision:
        """This decision once its consumption was rolled back: same verdict, the key's untouched state.

        A denial consumed nothing: its view already is the untouched state, with the retry_after it needs."""
        if not self.consumed:
            return Decision(self.allowed, self.view)
        return Decision(self.allowed, self.before or self.view)


class StaleConfig(Exception):
    """A limiter of the check no longer exists, or changed algorithm or shadow flag, since it was looked up:
    look again.

    The batch handler refuses such an op (services.runtime.store.RefusedOps): the transaction that noticed
    it rolls back, so a stale op consumed nothing.
    """

    def __init__(self, limiters: set[str]) -> None:
        super().__init__(f"limiters changed while checking: {', '.join(sorted(limiters))}")
        self.limiters = limiters


def distribute(algorithm: Algorithm, row: Any, cost: int, n: int, keep_before: bool) -> list[Decision]:
    """The decisions of a merged row's `n` requests, in arrival order: the first `admitted` are allowed.

    `row` is a RETURNED tuple and the shadow flag (services.limiter.statements): read by position, this runs
    once per request.
    """
    _, _, level, prev, stamp, seen, before, admitted, limit, burst, period, _ = row
    if n == 1 and not keep_before and algorithm is Algorithm.GCRA:  # the usual row: one request, GCRA
        if admitted:
            return [Decision(True, gcra_view(limit, burst, period, before - cost * period), True)]
        return [Decision(False, gcra_view(limit, burst, period, level, cost))]
    decisions: list[Decision] = []
    for i in range(n):
        allowed = i < admitted
        if algorithm is Algorithm.GCRA:
            view = gcra_view(
                limit,
                burst,
                period,
                before - (i + 1) * cost * period if allowed else level,
                0 if allowed else cost,
            )
            earlier = gcra_view(limit, burst, period, before - i * cost * period) if keep_before else None
        elif algorithm is Algorithm.FIXED_WINDOW:
            view = fixed_view(
                limit,
                period,
                before + (i + 1) * cost if allowed else level,
                stamp,
                seen,
                0 if allowed else cost,
            )
            earlier = fixed_view(limit, period, before + i * cost, stamp, seen) if keep_before else None
        else:
            count = before + (i + 1) * cost if allowed else level
            view = sliding_view(limit, period, prev, count, stamp, seen, 0 if allowed else cost)
            earlier = (
                sliding_view(limit, period, prev, before + i * cost, stamp, seen) if keep_before else None
            )
        decisions.append(Decision(allowed, view, allowed, "", earlier))
    return decisions
