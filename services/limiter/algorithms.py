"""The four algorithms as exact integer arithmetic on microseconds (no floats in any decision).

Decisions are made by SQL statements (services.limiter.statements) so that they are atomic; this module holds
what is computed around them: a limiter's configuration, and the *view* of a key's state that a response
reports (remaining units, time to full reset, time until a denied cost would be allowed). The same formulas
serve `GetStatus`, which reads the state without changing it.

GCRA is kept as its equivalent token bucket, scaled so that everything stays an integer: `level` holds
tokens × `period_us`, refilled by `limit` per microsecond, capped at `burst × period_us`; a cost `c` takes
`c × period_us`. Windows are aligned to the shared clock's epoch: `window = now − now mod period`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import NamedTuple

MAX_SCALED = 2**62
"""Upper bound of every scaled product (burst × period, limit × period): int64 never overflows.

SQLite silently turns an overflowing integer into a float, so the bound is checked when a limiter is
created or changed, not left to the database."""


class Algorithm(IntEnum):
    """Limiter.Algorithm numbers."""

    GCRA = 1
    FIXED_WINDOW = 2
    SLIDING_WINDOW = 3
    CONCURRENCY = 4


class FailureMode(IntEnum):
    """Limiter.FailureMode numbers."""

    FAIL_OPEN = 1
    FAIL_CLOSED = 2


@dataclass(frozen=True, slots=True)
class LimiterConfig:
    """A limiter's definition as stored."""

    id: str
    algorithm: Algorithm
    limit: int
    period_us: int
    burst: int
    failure_mode: FailureMode
    shadow: bool
    lease_ttl_us: int
    description: str
    create_us: int
    update_us: int

    @property
    def name(self) -> str:
        """The resource name, `limiters/{id}`."""
        return f"limiters/{self.id}"

    @property
    def capacity(self) -> int:
        """The largest cost one check can ever be granted: `burst` for GCRA, `limit` otherwise."""
        return self.burst if self.algorithm is Algorithm.GCRA else self.limit


class View(NamedTuple):
    """What a response reports about a key after a decision (durations in µs, rounded up).

    The per-item value types of a Check (View, validation.Item, service.Outcome) are NamedTuples: immutable
    like a frozen dataclass, built at a third of its cost (it goes through object.__setattr__ per field)."""

    limit: int
    remaining: int
    reset_after_us: int
    retry_after_us: int = 0


def ceil_div(a: int, b: int) -> int:
    """⌈a / b⌉ for b > 0 (exact on integers)."""
    return -(-a // b)


# ---- GCRA (token bucket, scaled) ---------------------------------------------------------------------


def gcra_view(limit: int, burst: int, period_us: int, level: int, cost: int = 0) -> View:
    """The view of a GCRA key whose scaled level is `level` now; `retry_after_us` for `cost` if short."""
    capacity = burst * period_us
    needed = cost * period_us
    retry = ceil_div(needed - level, limit) if needed > level else 0
    return View(limit, level // period_us, ceil_div(capacity - level, limit), retry)


def gcra_level_at(
    limit: int, burst: int, period_us: int, level: int | None, stamp_us: int | None, now_us: int
) -> int:
    """The scaled level of a GCRA key at `now_us`, refilled since `stamp_us` (a fresh key is full)."""
    capacity = burst * period_us
    if level is None or stamp_us is None:
        return capacity
    elapsed = min(max(0, now_us - stamp_us), ceil_div(capacity, limit))
    return min(capacity, level + elapsed * limit)


# ---- fixed window -------------------------------------------------------------------------------------


def window_start(now_us: int, period_us: int) -> int:
    """The start of the window holding `now_us`."""
    return now_us - now_us % period_us


def fixed_view(limit: int, period_us: int, count: int, window_us: int, now_us: int, cost: int = 0) -> View:
    """The view of a fixed-window key with `count` used in the window starting at `window_us`."""
    until_next = max(0, window_us + period_us - now_us)
    remaining = max(0, limit - count)
    retry = until_next if cost > remaining else 0
    return View(limit, remaining, until_next if count > 0 else 0, retry)


# ---- sliding window counter ---------------------------------------------------------------------------


def sliding_used_scaled(period_us: int, prev: int, curr: int, window_us: int, now_us: int) -> int:
    """prev × (period − elapsed) + curr × period: the weighted count, scaled by the period."""
    elapsed = min(period_us, max(0, now_us - window_us))
    return prev * (period_us - elapsed) + curr * period_us


def sliding_view(
    limit: int, period_us: int, prev: int, curr: int, window_us: int, now_us: int, cost: int = 0
) -> View:
    """The view of a sliding-window key (`prev`/`curr` counts, current window starting at `window_us`)."""
    used = sliding_used_scaled(period_us, prev, curr, window_us, now_us)
    remaining = max(0, (limit * period_us - used) // period_us)
    if curr > 0:
        reset = window_us + 2 * period_us - now_us
    elif prev > 0:
        reset = window_us + period_us - now_us
    else:
        reset = 0
    retry = sliding_retry_after(limit, period_us, prev, curr, window_us, now_us, cost) if cost else 0
    return View(limit, remaining, max(0, reset), retry)


def sliding_retry_after(
    limit: int, period_us: int, prev: int, curr: int, window_us: int, now_us: int, cost: int
) -> int:
    """The least wait after which `cost` fits, if nothing else is consumed meanwhile (0: fits now)."""
    p = period_us
    elapsed = min(p, max(0, now_us - window_us))
    room = (limit - curr - cost) * p
    # Still in this window: the previous window's weight shrinks as time passes.
    if room >= 0:
        if prev == 0:
            return 0
        wait = max(0, ceil_div(prev * (p - elapsed) - room, prev))
        if wait < p - elapsed:
            return wait
    to_next = p - elapsed
    # Next window: this window's count becomes the weighted one.
    room_next = (limit - cost) * p
    if curr == 0:
        return to_next
    wait_next = max(0, ceil_div(curr * p - room_next, curr))
    if wait_next < p:
        return to_next + wait_next
    # The window after: nothing weighs any more.
    return to_next + p


# ---- concurrency --------------------------------------------------------------------------------------


def concurrency_view(limit: int, leases: list[tuple[int, int]], now_us: int, cost: int = 0) -> View:
    """The view of a CONCURRENCY key from its live leases `(weight, expires_us)`."""
    live = sorted((expires, weight) for weight, expires in leases if expires > now_us)
    held = sum(weight for _, weight in live)
    remaining = max(0, limit - held)
    reset = max(0, live[-1][0] - now_us) if live else 0
    retry = 0
    if cost > remaining:
        excess = held + cost - limit
        for expires, weight in live:
            excess -= weight
            if excess <= 0:
                retry = expires - now_us
                break
    return View(limit, remaining, reset, retry)
