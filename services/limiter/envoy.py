"""`envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit` over the limiter, so Envoy, Istio and Envoy
Gateway use this service unchanged (see docs/envoy.md).

Each request descriptor is matched against the ratelimit-format configuration (services.limiter.envoy_config)
or carries its own `limit` override; all matched descriptors are decided in one `Limiters.check` in
INDEPENDENT mode: a descriptor within its limit consumes, one over it consumes nothing (envoyproxy/ratelimit
counts over-limit hits too; here a denied request never uses quota).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from envoy.config.core.v3 import base_pb2
from envoy.service.ratelimit.v3 import rls_pb2, rls_pb2_grpc

from services.limiter import headers
from services.limiter.algorithms import Algorithm, FailureMode, View
from services.limiter.envoy_config import (
    UNITS_US,
    EnvoyConfig,
    Rule,
    counter_key,
    override_limiter_id,
)
from services.limiter.service import Limiters, Outcome
from services.limiter.validation import MAX_ITEMS, Item, Violations
from services.runtime.errors import NotFound

OK = rls_pb2.RateLimitResponse.OK
OVER_LIMIT = rls_pb2.RateLimitResponse.OVER_LIMIT
UNIT_NUMBERS = {name: rls_pb2.RateLimitResponse.RateLimit.Unit.Value(name.upper()) for name in UNITS_US}
MAX_UINT32 = 2**32 - 1
"""ratelimit's limit_remaining of an `unlimited` descriptor."""


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

    @property
    def unlimited(self) -> bool:
        """Matched an `unlimited` rule: OK without counting."""
        return self.rule is not None and self.rule.unlimited


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
        """Creates or updates the limiter of every configured limit (at start; replicas may run it at once)."""
        for rule in self._config.rules():
            if _counted(rule):
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
            if plan.rule is None or not _counted(plan.rule) or plan.cost > plan.rule.requests_per_unit:
                continue
            if plan.override and plan.limiter_id not in self._overrides:
                await self._limiters.ensure(rule_values(plan.rule, plan.limiter_id))
                self._overrides.add(plan.limiter_id)
            plan.item = len(items)
            items.append(Item(plan.limiter_id, plan.key, plan.cost))
        return _respond(plans, await self._decide(plans, items))

    async def _decide(self, plans: Sequence[Plan], items: list[Item]) -> list[Outcome]:
        if not items:
            return []
        try:
            return await self._limiters.check(items, all_or_nothing=False, dry_run=False)
        except NotFound:
            # One of our limiters was deleted through the API: the configuration (or the request's override)
            # still defines it, so define it again, as a restart would, and decide once more.
            for plan in plans:
                if plan.rule is not None and plan.item >= 0:
                    await self._limiters.ensure(rule_values(plan.rule, plan.limiter_id))
            return await self._limiters.check(items, all_or_nothing=False, dry_run=False)

    def _plan(self, request: rls_pb2.RateLimitRequest, index: int) -> Plan:
        descriptor = request.descriptors[index]
        entries = [(entry.key, entry.value) for entry in descriptor.entries]
        # ratelimit's rule: a descriptor's own hits_addend (0 allowed: a check without counting), else the
        # request's, where 0 (unset) means 1.
        cost = request.hits_addend or 1
        if descriptor.HasField("hits_addend"):
            cost = descriptor.hits_addend.value
        if descriptor.HasField("limit"):
            rpu = descriptor.limit.requests_per_unit
            unit = _unit_name(descriptor.limit.unit)
            override = Rule(request.domain, "override", rpu, unit)
            key = counter_key(request.domain, entries, {})
            return Plan(override, override_limiter_id(rpu, unit), key, cost, override=True)
        matched = self._config.match(request.domain, entries)
        if matched is None:
            return Plan(None)
        key = counter_key(request.domain, entries, matched.shared)
        return Plan(matched.rule, matched.rule.limiter_id, key, cost)


def _counted(rule: Rule) -> bool:
    """Whether a rule has a limiter (unlimited rules and limits of 0 decide without one)."""
    return not rule.unlimited and rule.requests_per_unit > 0


def _respond(plans: Sequence[Plan], outcomes: Sequence[Outcome]) -> rls_pb2.RateLimitResponse:
    """The response: a status per descriptor, the overall code, the most restrictive descriptor's headers."""
    response = rls_pb2.RateLimitResponse(overall_code=OK)
    decided: list[tuple[Rule, str, bool, View]] = []
    for plan in plans:
        status = response.statuses.add(code=OK)
        rule = plan.rule
        if plan.unlimited:
            status.limit_remaining = MAX_UINT32
            continue
        if rule is None:
            continue
        status.current_limit.requests_per_unit = rule.requests_per_unit
        status.current_limit.unit = UNIT_NUMBERS[rule.unit]
        if plan.item < 0:  # a limit of 0, or more hits than the limit: never allowed, nothing counted
            until = _window_left_us(rule.period_us)
            allowed, view = rule.shadow, View(rule.requests_per_unit, 0, until, until)
        else:
            outcome = outcomes[plan.item]
            allowed, view = outcome.allowed, outcome.view
        status.code = OK if allowed else OVER_LIMIT
        status.limit_remaining = min(view.remaining, MAX_UINT32)
        reset = view.reset_after_us
        if reset == 0 and rule.algorithm is Algorithm.FIXED_WINDOW:
            reset = _window_left_us(rule.period_us)  # ratelimit always names the window's end
        status.duration_until_reset.FromMicroseconds(reset)
        decided.append((rule, plan.limiter_id, allowed, view))
    # ratelimit's quota_mode: over a quota limit blocks the request only when every quota descriptor is over.
    quotas = [allowed for rule, _, allowed, _ in decided if rule.quota]
    quotas_over = bool(quotas) and not any(quotas)
    blocked = [not allowed and (not rule.quota or quotas_over) for rule, _, allowed, _ in decided]
    if any(blocked):
        response.overall_code = OVER_LIMIT
    chosen = headers.most_restrictive(
        [
            (not block, view, headers.for_item(limiter_id, rule.period_us, view, not block))
            for (rule, limiter_id, _, view), block in zip(decided, blocked, strict=True)
        ]
    )
    for name, value in chosen.items():
        response.response_headers_to_add.append(base_pb2.HeaderValue(key=name, value=value))
    return response


def _validate(request: rls_pb2.RateLimitRequest) -> None:
    v = Violations()
    if not request.domain:
        v.add("domain", "must not be empty")
    elif "\x00" in request.domain:
        v.add("domain", "must not contain NUL (U+0000)")
    if not request.descriptors:
        v.add("descriptors", "must hold at least one descriptor")
    elif len(request.descriptors) > MAX_ITEMS:
        v.add("descriptors", f"at most {MAX_ITEMS} descriptors")
    for i, descriptor in enumerate(request.descriptors):
        if not descriptor.entries:
            v.add(f"descriptors[{i}].entries", "must not be empty")
        for j, entry in enumerate(descriptor.entries):
            if not entry.key:
                v.add(f"descriptors[{i}].entries[{j}].key", "must not be empty")
        if descriptor.HasField("limit"):
            unit = _unit_name(descriptor.limit.unit)
            if unit not in UNITS_US:
                v.add(f"descriptors[{i}].limit.unit", f"must be one of {', '.join(UNITS_US)}")

    v.raise_if_any()


def _unit_name(number: int) -> str:
    """`second`, `minute`, …; '' for UNKNOWN or a number this proto does not know (open enums)."""
    name = rls_pb2.RateLimitResponse.RateLimit.Unit.Name
    return name(number).lower() if number in UNIT_NUMBERS.values() else ""


def _apply_replaces(plans: list[Plan]) -> None:
    """A matched rule that another matched rule `replaces` (by name) is not applied (ratelimit's rule)."""
    replaced = {name for plan in plans if plan.rule for name in plan.rule.replaces}
    for plan in plans:
        rule = plan.rule
        if rule is not None and not rule.unlimited and rule.name and rule.name in replaced:
            plan.rule = None


def _window_left_us(period_us: int) -> int:
    now = time.time_ns() // 1000
    return period_us - now % period_us
