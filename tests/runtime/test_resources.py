"""The resource manager: exact thresholds, load shedding with RetryInfo, listeners, broken measurements."""

from __future__ import annotations

import asyncio
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.runtime.config import ResourceSettings
from services.runtime.errors import ResourceExhausted
from services.runtime.resources import OVERALL, ResourceManager, StateChange
from tests.harness import eventually


class Gauge:
    """A measured value the test sets; optionally raises instead."""

    def __init__(self, value: int = 0) -> None:
        self.value = value
        self.error: Exception | None = None

    def __call__(self) -> int:
        if self.error is not None:
            raise self.error
        return self.value


def overall(resources: ResourceManager) -> str:
    """The overall state (a function, so the type checker does not pin it between measurements)."""
    return resources.state


def manager(**settings: float) -> ResourceManager:
    return ResourceManager(ResourceSettings.model_validate(settings))


async def test_states_change_exactly_above_the_ratios() -> None:
    resources = manager()
    gauge = Gauge()
    resources.register("table", 1000, gauge)
    expected = {0: "normal", 900: "normal", 901: "moderate", 950: "moderate", 951: "severe", 1000: "severe"}
    for used, state in expected.items():
        gauge.value = used
        await resources.measure()
        assert resources.usage()[0].state == state, used
        assert overall(resources) == state
    [usage] = resources.usage()
    assert (usage.name, usage.bound, usage.used, usage.ratio) == ("table", 1000, 1000, 1.0)


@given(
    bound=st.integers(min_value=1, max_value=10**12),
    fraction=st.fractions(min_value=0, max_value=2),
)
async def test_state_is_the_exact_comparison_of_used_over_bound(bound: int, fraction: Fraction) -> None:
    used = int(fraction * bound)
    resources = manager()
    resources.register("r", bound, lambda: used)
    await resources.measure()
    ratio = Fraction(used, bound)
    expected = "severe" if ratio > Fraction(95, 100) else "moderate" if ratio > Fraction(9, 10) else "normal"
    assert overall(resources) == expected


@given(bound=st.integers(max_value=0))
def test_bounds_below_one_are_refused(bound: int) -> None:
    with pytest.raises(ValueError, match="bound"):
        manager().register("r", bound, lambda: 0)


def test_duplicate_and_reserved_names_are_refused() -> None:
    resources = manager()
    resources.register("r", 10, lambda: 0)
    with pytest.raises(ValueError, match="already"):
        resources.register("r", 10, lambda: 0)
    with pytest.raises(ValueError, match="reserved"):
        resources.register(OVERALL, 10, lambda: 0)


async def test_check_writes_sheds_at_severe_with_retry_info() -> None:
    resources = manager(measure_interval_s=2.5)
    full, fine = Gauge(96), Gauge(1)
    resources.register("full", 100, full)
    resources.register("fine", 100, fine)
    resources.check_writes()
    await resources.measure()
    with pytest.raises(ResourceExhausted) as shed:
        resources.check_writes()
    assert shed.value.reason == "RESOURCE_SEVERE"
    assert shed.value.retry_after == 2.5
    assert shed.value.subject == "full"
    with pytest.raises(ResourceExhausted):
        resources.check_writes("full")
    resources.check_writes("fine")  # only the named resource counts
    resources.check_writes("unknown")
    full.value = 95
    await resources.measure()
    resources.check_writes()  # moderate does not shed


async def test_listeners_hear_each_change_once_per_resource_and_overall() -> None:
    resources = manager()
    heard: list[StateChange] = []
    resources.add_listener(heard.append)
    a, b = Gauge(), Gauge()
    resources.register("a", 100, a)
    resources.register("b", 100, b)
    await resources.measure()
    assert heard == []
    a.value = 91
    await resources.measure()
    await resources.measure()  # no change, no call
    assert [(c.name, c.old, c.new) for c in heard] == [
        ("a", "normal", "moderate"),
        (OVERALL, "normal", "moderate"),
    ]
    heard.clear()
    b.value = 99
    await resources.measure()
    assert [(c.name, c.old, c.new) for c in heard] == [
        ("b", "normal", "severe"),
        (OVERALL, "moderate", "severe"),
    ]
    assert (heard[1].used, heard[1].bound) == (99, 100)
    heard.clear()
    a.value = b.value = 0
    await resources.measure()
    assert [(c.name, c.new) for c in heard] == [("a", "normal"), ("b", "normal"), (OVERALL, "normal")]


async def test_a_failing_listener_does_not_stop_the_others() -> None:
    resources = manager()
    heard: list[str] = []

    def broken(change: StateChange) -> None:
        raise RuntimeError("listener bug")

    resources.add_listener(broken)
    resources.add_listener(lambda change: heard.append(change.name))
    resources.register("a", 10, lambda: 10)
    await resources.measure()
    assert heard == ["a", OVERALL]


async def test_a_failing_measurement_keeps_the_last_value_and_is_counted() -> None:
    resources = manager()
    gauge, other = Gauge(97), Gauge(5)
    resources.register("flaky", 100, gauge)
    resources.register("other", 100, other)
    await resources.measure()
    gauge.error = OSError("cannot count")
    other.value = 6
    await resources.measure()
    flaky, steady = resources.usage()
    assert (flaky.used, flaky.state, flaky.measure_failures) == (97, "severe", 1)
    assert steady.used == 6  # the others were still measured
    assert resources.measure_failures == 1
    assert overall(resources) == "severe"


async def test_async_measure_functions_are_awaited() -> None:
    resources = manager()

    async def count() -> int:
        return 92

    resources.register("async", 100, count)
    await resources.measure()
    assert resources.usage()[0].used == 92
    assert overall(resources) == "moderate"


async def test_custom_ratios_are_used() -> None:
    resources = manager(moderate_ratio=0.5, severe_ratio=0.75)
    gauge = Gauge(51)
    resources.register("r", 100, gauge)
    await resources.measure()
    assert overall(resources) == "moderate"
    gauge.value = 76
    await resources.measure()
    assert overall(resources) == "severe"
    with pytest.raises(ValueError):
        manager(moderate_ratio=0.9, severe_ratio=0.8)


async def test_unregister_forgets_a_resource() -> None:
    resources = manager()
    resources.register("gone", 10, lambda: 10)
    await resources.measure()
    assert overall(resources) == "severe"
    resources.unregister("gone")
    await resources.measure()
    assert overall(resources) == "normal"
    assert resources.usage() == []


async def test_writes_are_shed_once_a_resource_is_severe_while_others_are_still_measured() -> None:
    resources = manager()
    resources.register("full", 100, Gauge(99))
    slow_measure_may_finish = asyncio.Event()

    async def slow() -> int:  # e.g. a count that waits on a busy store
        await slow_measure_may_finish.wait()
        return 1

    resources.register("slow", 100, slow)
    measuring = asyncio.ensure_future(resources.measure())
    await eventually(lambda: resources.usage()[0].state == "severe")
    with pytest.raises(ResourceExhausted):
        resources.check_writes()  # before the measurement reached the other resource
    slow_measure_may_finish.set()
    await measuring
    resources.unregister("full")
    resources.check_writes()  # the severe resource is gone
    resources.register("full", 100, Gauge(99))
    await resources.measure()
    with pytest.raises(ResourceExhausted):
        resources.check_writes()
