"""Reference models of the four algorithms, written independently of the service (exact Fractions).

GCRA here is the textbook virtual-scheduling form (a theoretical arrival time, TAT), not the scaled token bucket
the service stores; the windows count per window index; CONCURRENCY keeps a list of leases. A model answers a
check with (allowed, remaining, retry_after_us) for a cost at an integer time in microseconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction


@dataclass
class Answer:
    """A model's decision on one check."""

    allowed: bool
    remaining: int
    retry_after_us: int


@dataclass
class GcraModel:
    """GCRA by virtual scheduling: allow cost c at t iff max(TAT, t) + c·T − t ≤ burst·T, T = period/limit."""

    limit: int
    period_us: int
    burst: int
    tat: dict[str, Fraction] = field(default_factory=dict)

    def _tokens(self, key: str, now: int) -> Fraction:
        t = Fraction(self.period_us, self.limit)
        tat = max(self.tat.get(key, Fraction(now)), Fraction(now))
        return self.burst - (tat - now) / t

    def check(self, key: str, cost: int, now: int) -> Answer:
        """Decides and consumes (when allowed)."""
        tokens = self._tokens(key, now)
        t = Fraction(self.period_us, self.limit)
        if tokens >= cost:
            self.tat[key] = max(self.tat.get(key, Fraction(now)), Fraction(now)) + cost * t
            return Answer(True, math.floor(tokens - cost), 0)
        wait = math.ceil((cost - tokens) * t)
        return Answer(False, math.floor(tokens), wait)

    def peek(self, key: str, now: int) -> Answer:
        """Whether a cost-1 check would pass; changes nothing."""
        tokens = self._tokens(key, now)
        t = Fraction(self.period_us, self.limit)
        wait = 0 if tokens >= 1 else math.ceil((1 - tokens) * t)
        return Answer(tokens >= 1, math.floor(tokens), wait)

    def reset(self, key: str) -> None:
        """Forgets the key."""
        self.tat.pop(key, None)


@dataclass
class FixedModel:
    """`limit` per window [k·period, (k+1)·period)."""

    limit: int
    period_us: int
    counts: dict[tuple[str, int], int] = field(default_factory=dict)

    def check(self, key: str, cost: int, now: int) -> Answer:
        """Decides and consumes (when allowed)."""
        window = now // self.period_us
        used = self.counts.get((key, window), 0)
        if used + cost <= self.limit:
            self.counts[(key, window)] = used + cost
            return Answer(True, self.limit - used - cost, 0)
        return Answer(False, self.limit - used, (window + 1) * self.period_us - now)

    def peek(self, key: str, now: int) -> Answer:
        """Whether a cost-1 check would pass; changes nothing."""
        window = now // self.period_us
        used = self.counts.get((key, window), 0)
        allowed = used + 1 <= self.limit
        return Answer(allowed, self.limit - used, 0 if allowed else (window + 1) * self.period_us - now)

    def reset(self, key: str) -> None:
        """Forgets the key."""
        for k in [k for k in self.counts if k[0] == key]:
            del self.counts[k]


@dataclass
class SlidingModel:
    """Sliding-window counter: prev·(1 − elapsed/period) + curr + cost ≤ limit."""

    limit: int
    period_us: int
    counts: dict[tuple[str, int], int] = field(default_factory=dict)

    def _estimate(self, key: str, now: int) -> Fraction:
        window = now // self.period_us
        elapsed = now - window * self.period_us
        prev = self.counts.get((key, window - 1), 0)
        curr = self.counts.get((key, window), 0)
        return prev * Fraction(self.period_us - elapsed, self.period_us) + curr

    def _fits(self, key: str, cost: int, now: int) -> bool:
        return self._estimate(key, now) + cost <= self.limit

    def _wait(self, key: str, cost: int, now: int) -> int:
        # The least whole µs after which the cost fits (the estimate only falls while nothing is added).
        # Windows change at most twice before everything has aged out, so search each stretch exactly.
        t = now
        for _ in range(3):
            window_end = (t // self.period_us + 1) * self.period_us
            lo, hi = t, window_end - 1
            if self._fits(key, cost, hi):
                while lo < hi:
                    mid = (lo + hi) // 2
                    if self._fits(key, cost, mid):
                        hi = mid
                    else:
                        lo = mid + 1
                return lo - now
            t = window_end
        return t - now

    def check(self, key: str, cost: int, now: int) -> Answer:
        """Decides and consumes (when allowed)."""
        estimate = self._estimate(key, now)
        window = now // self.period_us
        if estimate + cost <= self.limit:
            self.counts[(key, window)] = self.counts.get((key, window), 0) + cost
            return Answer(True, max(0, math.floor(self.limit - estimate - cost)), 0)
        return Answer(False, max(0, math.floor(self.limit - estimate)), self._wait(key, cost, now))

    def peek(self, key: str, now: int) -> Answer:
        """Whether a cost-1 check would pass; changes nothing."""
        estimate = self._estimate(key, now)
        allowed = estimate + 1 <= self.limit
        return Answer(
            allowed, max(0, math.floor(self.limit - estimate)), 0 if allowed else self._wait(key, 1, now)
        )

    def reset(self, key: str) -> None:
        """Forgets the key."""
        for k in [k for k in self.counts if k[0] == key]:
            del self.counts[k]


@dataclass
class ConcurrencyModel:
    """At most `limit` units held at once; a lease lives `ttl_us` unless released."""

    limit: int
    ttl_us: int
    leases: dict[str, list[tuple[int, int, str]]] = field(default_factory=dict)

    def _live(self, key: str, now: int) -> list[tuple[int, int, str]]:
        return sorted(lease for lease in self.leases.get(key, []) if lease[0] > now)

    def _answer(self, key: str, cost: int, now: int) -> Answer:
        live = self._live(key, now)
        held = sum(weight for _, weight, _ in live)
        if held + cost <= self.limit:
            return Answer(True, self.limit - held - cost, 0)
        excess = held + cost - self.limit
        for expires, weight, _ in live:
            excess -= weight
            if excess <= 0:
                return Answer(False, self.limit - held, expires - now)
        raise AssertionError("cost above the limit")

    def check(self, key: str, cost: int, now: int, lease_id: str) -> Answer:
        """Decides and takes a lease (when allowed)."""
        answer = self._answer(key, cost, now)
        if answer.allowed:
            self.leases.setdefault(key, []).append((now + self.ttl_us, cost, lease_id))
        return answer

    def peek(self, key: str, now: int) -> Answer:
        """Whether a cost-1 lease would be granted; changes nothing."""
        answer = self._answer(key, 1, now)
        return Answer(answer.allowed, answer.remaining + (1 if answer.allowed else 0), answer.retry_after_us)

    def release(self, lease_id: str, now: int) -> bool:
        """Frees a lease; whether it was live."""
        for leases in self.leases.values():
            for lease in leases:
                if lease[2] == lease_id:
                    leases.remove(lease)
                    return lease[0] > now
        return False

    def reset(self, key: str) -> None:
        """Forgets the key."""
        self.leases.pop(key, None)
