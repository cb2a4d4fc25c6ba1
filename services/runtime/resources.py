"""The resource manager (the seed's ResourceManager, SEED.md §5): every bounded table and queue, measured.

Each table or queue registers its bound and a function that measures its use. `measure()` (called by the
supervisor every `measure_interval_s`; this class runs nothing in the background) recomputes each
resource's state: `normal`, `moderate` when use is above `moderate_ratio` of the bound, `severe` above
`severe_ratio`. In `severe`, `check_writes` sheds new writes with RESOURCE_EXHAUSTED. Listeners hear every
change of state, per resource and of the overall state (the worst of all; its name is `OVERALL`).

Thresholds compare exact fractions (901 of 1000 is above 0.9, 900 is not) rather than floats.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

import structlog

from services.runtime.config import ResourceSettings
from services.runtime.errors import ResourceExhausted

ResourceState = Literal["normal", "moderate", "severe"]

OVERALL = "overall"
"""The name in a StateChange of the overall state (the worst over all resources)."""

_RANK: dict[ResourceState, int] = {"normal": 0, "moderate": 1, "severe": 2}

log = structlog.get_logger(__name__)

Measure = Callable[[], int | Awaitable[int]]


@dataclass(frozen=True)
class Usage:
    """The last measurement of one resource."""

    name: str
    bound: int
    used: int
    ratio: float
    state: ResourceState
    measure_failures: int = 0
    """How many times its measure function raised (the last good value is kept)."""


@dataclass(frozen=True)
class StateChange:
    """A resource (or `OVERALL`) moved from one state to another."""

    name: str
    old: ResourceState
    new: ResourceState
    used: int
    bound: int
    ratio: float


@dataclass
class _Resource:
    name: str
    bound: int
    measure: Measure
    used: int = 0
    state: ResourceState = "normal"
    failures: int = 0

    @property
    def ratio(self) -> float:
        return self.used / self.bound


class ResourceManager:
    """Bounds, measurements and load-shedding state of a process's tables and queues."""

    def __init__(self, settings: ResourceSettings) -> None:
        if settings.severe_ratio < settings.moderate_ratio:
            raise ValueError("severe_ratio must not be below moderate_ratio")
        self._settings = settings
        # Fraction(str(x)) is the decimal the person wrote (0.9 is exactly 9/10), not the float's binary value.
        self._moderate = Fraction(str(settings.moderate_ratio))
        self._severe = Fraction(str(settings.severe_ratio))
        self._resources: dict[str, _Resource] = {}
        self._listeners: list[Callable[[StateChange], None]] = []
        self._state: ResourceState = "normal"
        self._severe_count = 0
        """Registered resources whose state is severe, kept as each state changes: writes are shed as soon as
        one is measured severe, not only once `measure()` has gone through every resource (a measure may wait
        on a busy store)."""
        self.measure_failures = 0
        """Measure functions that raised, over all resources."""

    def register(self, name: str, bound: int, measure: Measure) -> None:
        """Adds a resource with its bound; `measure` returns its current use (plain or awaitable int).

        It is first measured at the next `measure()`. Registering a name twice is an error.
        """
        if name == OVERALL:
            raise ValueError(f"{OVERALL!r} is reserved for the overall state")
        if name in self._resources:
            raise ValueError(f"resource {name!r} is already registered")
        if bound < 1:
            raise ValueError(f"resource {name!r}: bound must be at least 1, got {bound}")
        self._resources[name] = _Resource(name, bound, measure)

    def unregister(self, name: str) -> None:
        """Forgets a resource (e.g. a cache that was deleted); unknown names are ignored."""
        resource = self._resources.pop(name, None)
        if resource is not None and resource.state == "severe":
            self._severe_count -= 1

    async def measure(self) -> None:
        """Measures every resource once and recomputes the states, telling listeners of each change.

        A measure function that raises is logged and counted; its resource keeps its last value.
        """
        changes: list[StateChange] = []
        for resource in list(self._resources.values()):
            try:
                value = resource.measure()
                if inspect.isawaitable(value):
                    value = await value
                used = int(value)
            except Exception as exc:  # noqa: BLE001 - one broken measurement must not stop the others
                resource.failures += 1
                self.measure_failures += 1
                log.warning("resource measurement failed", resource=resource.name, error=repr(exc))
                continue
            resource.used = used
            new = self._state_of(used, resource.bound)
            if new != resource.state:
                changes.append(
                    StateChange(
                        resource.name, resource.state, new, used, resource.bound, used / resource.bound
                    )
                )
                if self._resources.get(resource.name) is resource:  # not unregistered while measured
                    self._severe_count += (new == "severe") - (resource.state == "severe")
                resource.state = new
        overall = self._overall_change()
        if overall is not None:
            changes.append(overall)
        for change in changes:
            self._announce(change)

    def usage(self) -> list[Usage]:
        """The last measurement of every resource, in registration order."""
        return [
            Usage(r.name, r.bound, r.used, r.ratio, r.state, r.failures) for r in self._resources.values()
        ]

    @property
    def state(self) -> ResourceState:
        """The worst state over all resources (as of the last `measure()`)."""
        return self._state

    def check_writes(self, name: str | None = None) -> None:
        """Sheds a write: ResourceExhausted(reason="RESOURCE_SEVERE") when `name` (or, with no name, any
        resource) is severe. RetryInfo says to come back after the next measurement."""
        if not self._severe_count:  # the usual case, on every write: nothing to look at
            return
        if name is not None:
            resource = self._resources.get(name)
            severe = [resource] if resource is not None and resource.state == "severe" else []
        else:
            severe = [r for r in self._resources.values() if r.state == "severe"]
        if not severe:
            return
        worst = max(severe, key=lambda r: r.ratio)
        raise ResourceExhausted(
            f"{worst.name} is at {worst.used} of its bound {worst.bound}; writes are shed until it drains",
            retry_after=self._settings.measure_interval_s,
            subject=worst.name,
            reason="RESOURCE_SEVERE",
        )

    def add_listener(self, fn: Callable[[StateChange], None]) -> None:
        """Calls `fn` on every state change (per resource and `OVERALL`); exceptions in it are logged."""
        self._listeners.append(fn)

    def _state_of(self, used: int, bound: int) -> ResourceState:
        ratio = Fraction(used, bound)
        if ratio > self._severe:
            return "severe"
        if ratio > self._moderate:
            return "moderate"
        return "normal"

    def _overall_change(self) -> StateChange | None:
        resources = list(self._resources.values())
        worst = max(resources, key=lambda r: (_RANK[r.state], r.ratio), default=None)
        new: ResourceState = worst.state if worst is not None else "normal"
        if new == self._state:
            return None
        old, self._state = self._state, new
        used, bound = (worst.used, worst.bound) if worst is not None else (0, 1)
        return StateChange(OVERALL, old, new, used, bound, used / bound)

    def _announce(self, change: StateChange) -> None:
        level = "warning" if _RANK[change.new] > _RANK[change.old] else "info"
        getattr(log, level)(
            "resource state changed",
            resource=change.name,
            old=change.old,
            new=change.new,
            used=change.used,
            bound=change.bound,
            ratio=round(change.ratio, 4),
        )
        for listener in list(self._listeners):
            try:
                listener(change)
            except Exception as exc:  # a broken listener must not stop the others
                log.exception("resource state listener failed", listener=repr(listener), error=repr(exc))
