"""`envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit` over the limiter, so Envoy, Istio and Envoy
Gateway use this service unchanged (see docs/envoy.md).

Each request descriptor is matched against the ratelimit-format configuration (services.limiter.envoy_config)
or carries its own `limit` override; all matched descriptors are decided in one `Limiters.check` in
INDEPENDENT mode: a descriptor within its limit consumes, one over it consumes nothing (envoyproxy/ratelimit
counts over-limit hits too; here a denied request never uses quota).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

from envoy.config.core.v3 import base_pb2
from envoy.service.ratelimit.v3 import rls_pb2, rls_pb2_grpc

from services.limiter import headers
from services.limiter.algorithms import FailureMode, View
from services.limiter.envoy_config import UNITS_US, EnvoyConfig, Rule, override_limiter_id
from services.limiter.service import Limiters
from services.limiter.validation import MAX_KEY_BYTES, Item, Violations

OK = rls_pb2.RateLimitResponse.OK
OVER_LIMIT = rls_pb2.RateLimitResponse.OVER_LIMIT
UNIT_NUMBERS = {name: rls_pb2.RateLimitResponse.RateLimit.Unit.Value(name.upper()) for name in UNITS_US}


@dataclass
class Plan:
    """What to do for one request descriptor."""

    rule: Rule | None
    limiter_id: str = ""
    key: str = ""
    cost: int = 1
    override: bool = False
    """The rule comes from the request's `limit`; its limiter is created on first use."""
    item: int = -1
    """Index of its Check item, or -1 when nothing is checked."""


def rule_values(rule: Rule, limiter_id: str) -> dict[str, object]:
    """The limiter definition of a rule."""
    return {
        "id": limiter_id,
        "algorithm": int(rule.algorithm),
        "limit_count": rule.requests_per_unit,
        "period_us": rule.period_us,
        "burst": rule.requests_per_unit,
        "failure_mode": int(FailureMode.FAIL_OPEN),
        "shadow": rule.shadow,
        "lease_ttl_us": None,
        "description": f"envoy domain {rule.domain}: {rule.path}",
    }


class EnvoyRateLimitServicer(rls_pb2_grpc.RateLimitServiceServicer):  # type: ignore[misc]
    """ShouldRateLimit on top of `Limiters`."""

    def __init__(self, limiters: Limiters, config: EnvoyConfig) -> None:
        self._limiters = limiters
        self._config = config
        self._overrides: set[str] = set()

    async def sync(self) -> None:
        """Creates or updates the limiter of every configured limit (at start)."""
        for rule in self._config.rules():
            if not rule.unlimited and rule.requests_per_unit > 0:
                await self._limiters.ensure(rule_values(rule, rule.limiter_id))

    async def ShouldRateLimit(
        self, request: rls_pb2.RateLimitRequest, context: object
    ) -> rls_pb2.RateLimitResponse:
        """Decides every descriptor of the request."""
        _validate(request)
        plans = [self._plan(request, i) for i in range(len(request.descriptors))]
        _apply_replaces(plans)
        items: list[Item] = []
        for plan in plans:
            rule = plan.rule
            if (
                rule is None
                or rule.unlimited
                or rule.requests_per_unit == 0
                or plan.cost > rule.requests_per_unit
            ):
                continue
            if plan.override and plan.limiter_id not in self._overrides:
                await self._limiters.ensure(rule_values(rule, plan.limiter_id))
                self._overrides.add(plan.limiter_id)
            plan.item = len(items)
            items.append(Item(plan.limiter_id, plan.key, plan.cost))
        outcomes = await self._limiters.check(items, all_or_nothing=False, dry_run=False) if items else []
        response = rls_pb2.RateLimitResponse(overall_code=OK)
        decided: list[tuple[bool, View, dict[str, str]]] = []
        for plan in plans:
            status = response.statuses.add(code=OK)
            rule = plan.rule
            if rule is None or rule.unlimited:
                continue
            status.current_limit.requests_per_unit = rule.requests_per_unit
            status.current_limit.unit = UNIT_NUMBERS[rule.unit]
            if plan.item < 0:  # a limit of 0, or more hits than the limit: never allowed
                until = _window_left_us(rule.period_us)
                status.code = OVER_LIMIT
                status.duration_until_reset.FromMicroseconds(until)
                view = View(rule.requests_per_unit, 0, until, until)
                decided.append((False, view, headers.for_item(plan.limiter_id, rule.period_us, view, False)))
                continue
            outcome = outcomes[plan.item]
            status.code = OK if outcome.allowed else OVER_LIMIT
            status.limit_remaining = min(outcome.view.remaining, 2**32 - 1)
            status.duration_until_reset.FromMicroseconds(outcome.view.reset_after_us)
            decided.append(
                (
                    outcome.allowed,
                    outcome.view,
                    headers.for_item(plan.limiter_id, rule.period_us, outcome.view, outcome.allowed),
                )
            )
        if any(status.code == OVER_LIMIT for status in response.statuses):
            response.overall_code = OVER_LIMIT
        for name, value in headers.most_restrictive(decided).items():
            response.response_headers_to_add.append(base_pb2.HeaderValue(key=name, value=value))
        return response

    def _plan(self, request: rls_pb2.RateLimitRequest, index: int) -> Plan:
        descriptor = request.descriptors[index]
        entries = [(entry.key, entry.value) for entry in descriptor.entries]
        cost = request.hits_addend or 1
        if descriptor.HasField("hits_addend"):
            cost = descriptor.hits_addend.value
        key = _counter_key(request.domain, entries)
        if descriptor.HasField("limit"):
            rpu = descriptor.limit.requests_per_unit
            unit = rls_pb2.RateLimitResponse.RateLimit.Unit.Name(descriptor.limit.unit).lower()
            override = Rule(request.domain, "override", rpu, unit)
            return Plan(override, override_limiter_id(rpu, unit), key, cost, override=True)
        matched = self._config.match(request.domain, entries)
        return Plan(matched, matched.limiter_id if matched else "", key, cost)


def _validate(request: rls_pb2.RateLimitRequest) -> None:
    v = Violations()
    if not request.domain:
        v.add("domain", "must not be empty")
    if not request.descriptors:
        v.add("descriptors", "must hold at least one descriptor")
    for i, descriptor in enumerate(request.descriptors):
        if not descriptor.entries:
            v.add(f"descriptors[{i}].entries", "must not be empty")
        for j, entry in enumerate(descriptor.entries):
            if not entry.key:
                v.add(f"descriptors[{i}].entries[{j}].key", "must not be empty")
        if descriptor.HasField("limit"):
            unit = rls_pb2.RateLimitResponse.RateLimit.Unit.Name(descriptor.limit.unit).lower()
            if unit not in UNITS_US:
                v.add(f"descriptors[{i}].limit.unit", f"must be one of {', '.join(UNITS_US)}")
    v.raise_if_any()


def _apply_replaces(plans: list[Plan]) -> None:
    """A matched rule that another matched rule `replaces` (by name) is not applied (ratelimit's rule)."""
    replaced = {name for plan in plans if plan.rule for name in plan.rule.replaces}
    for plan in plans:
        if plan.rule is not None and plan.rule.name and plan.rule.name in replaced:
            plan.rule = None


def _counter_key(domain: str, entries: list[tuple[str, str]]) -> str:
    """ratelimit's cache key of a descriptor: `domain.key_value.key_value…` (hashed past 1 KiB or with NUL)."""
    key = domain + "." + ".".join(k + (f"_{v}" if v else "") for k, v in entries)
    if "\x00" in key or len(key.encode()) > MAX_KEY_BYTES:
        # PostgreSQL's text cannot hold NUL; the hash keeps such keys distinct.
        key = key[:200].replace("\x00", "") + "#" + hashlib.sha256(key.encode()).hexdigest()
    return key


def _window_left_us(period_us: int) -> int:
    now = time.time_ns() // 1000
    return period_us - now % period_us
