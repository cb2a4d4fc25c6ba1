"""The benchmark harness: its statistics, its ratios, its results file and the docs table.

The end-to-end test measures a real tiny scenario (health Check on a bare grpc.aio server in its own process,
with the same kind of server as peer) for a fraction of a second; it checks the bookkeeping, not the speed.
"""

from __future__ import annotations

import json
import math
import statistics
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import grpc
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.harness import (
    Case,
    Peer,
    Plan,
    Scenario,
    health_check,
    ratio_to_ceiling,
    run_scenario,
    write_results,
)
from bench.loadgen import RunStats, percentile, summarise
from bench.machine import git_dirty
from bench.report import BEGIN, END, render_table, update_docs
from bench.scenarios import available, load
from bench.scenarios.ceiling import bare_server, health_client


def _stats(throughput: float) -> RunStats:
    return RunStats("x", 1.0, int(throughput), throughput, 1.0, 2.0, 1.0)


def test_percentile_interpolates_between_ranks() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0) == 1.0
    assert percentile(values, 50) == pytest.approx(50.5)
    assert percentile(values, 99) == pytest.approx(99.01)
    assert percentile(values, 100) == 100.0
    assert percentile([7.0], 99) == 7.0
    assert math.isnan(percentile([], 50))
    with pytest.raises(ValueError):
        percentile(values, 101)


@given(st.lists(st.floats(min_value=-1e9, max_value=1e9), min_size=2, max_size=200))
def test_percentile_agrees_with_the_standard_library(values: list[float]) -> None:
    ordered = sorted(values)
    expected = statistics.quantiles(ordered, n=100, method="inclusive")
    for p in (1, 50, 99):
        assert percentile(ordered, p) == pytest.approx(expected[p - 1], rel=1e-9, abs=1e-6)


def test_summarise_converts_nanoseconds_and_counts_only_successes() -> None:
    stats = summarise("s", [1_000_000, 3_000_000, 2_000_000, 4_000_000], 2.0, Counter({"UNAVAILABLE": 3}))
    assert stats.calls == 4
    assert stats.throughput == 2.0
    assert stats.p50_ms == pytest.approx(2.5)
    assert stats.mean_ms == pytest.approx(2.5)
    assert stats.errors == {"UNAVAILABLE": 3}


def test_ratio_uses_the_ceiling_runs_around_each_scenario_run() -> None:
    ceilings = [_stats(1000), _stats(3000), _stats(2000)]
    ratios = ratio_to_ceiling([_stats(1000), _stats(2000)], ceilings)
    assert ratios == [pytest.approx(0.5), pytest.approx(0.8)]
    with pytest.raises(ValueError):
        ratio_to_ceiling([_stats(1000)], [_stats(1000)])


def test_results_are_strict_json_with_nan_as_null(tmp_path: Path) -> None:
    path = write_results(
        {"scenario": "x", "cases": [{"median": {"p99_ms": math.nan, "n": 1.23456}}]}, tmp_path
    )
    document = json.loads(path.read_text(), parse_constant=lambda name: pytest.fail(f"non-JSON {name}"))
    assert document["cases"][0]["median"] == {"p99_ms": None, "n": 1.2346}


def test_docs_table_replaces_only_the_marked_section(tmp_path: Path) -> None:
    docs = tmp_path / "performance.md"
    docs.write_text(f"# Performance\n\nMethod text.\n\n{BEGIN}\nold table\n{END}\n\nNotes after.\n")
    update_docs(docs, "| new |")
    update_docs(docs, "| newer |")
    text = docs.read_text()
    assert text == f"# Performance\n\nMethod text.\n\n{BEGIN}\n| newer |\n{END}\n\nNotes after.\n"


def test_docs_table_section_is_added_when_missing(tmp_path: Path) -> None:
    docs = tmp_path / "performance.md"
    docs.write_text("# Performance\n\nHand-written.\n")
    update_docs(docs, "| t |")
    assert docs.read_text() == f"# Performance\n\nHand-written.\n\n## Results\n\n{BEGIN}\n| t |\n{END}\n"


def test_scenarios_are_discovered_ceiling_first() -> None:
    names = available()
    assert names[0] == "ceiling"
    assert "store" in names
    assert [scenario.name for scenario in load(["store", "ceiling"])] == ["store", "ceiling"]
    with pytest.raises(KeyError, match="unknown scenario nope"):
        load(["nope"])


def test_a_tiny_real_scenario_is_measured_and_written(tmp_path: Path) -> None:
    sent = [0]

    def counted_check(channel: grpc.aio.Channel) -> Any:
        check = health_check(channel)

        async def send(worker: int) -> object:
            sent[0] += 1
            return await check(worker)

        return send

    async def counters(_channel: grpc.aio.Channel) -> dict[str, float]:
        return {"sent": float(sent[0])}

    case = Case(
        name="tiny",
        backend="-",
        server=bare_server,
        request=counted_check,
        target=0.5,
        peer=Peer("bare", server=bare_server, client=health_client),
        counters=counters,
        derive=lambda increase: {"sent_in_run": increase["sent"], "sent_per_s": increase["sent"] / 0.2},
    )
    scenario = Scenario("tiny", "health Check, briefly", cases=lambda: [case])
    plan = Plan(runs=2, duration_s=0.2, warmup_s=0.1, concurrency=8, quick=True)
    lines: list[str] = []

    path = write_results(run_scenario(scenario, plan, progress=lines.append), tmp_path)

    document = json.loads(path.read_text())
    assert path.name == "tiny.json"
    assert document["scenario"] == "tiny"
    assert document["plan"]["runs"] == 2
    assert document["machine"]["cpus_usable"] >= 1
    (result,) = document["cases"]
    assert len(result["runs"]) == 2
    for run in result["runs"]:
        bracket = (run["ceiling_before"]["throughput"] + run["ceiling_after"]["throughput"]) / 2
        assert run["ratio_to_ceiling"] == pytest.approx(run["scenario"]["throughput"] / bracket, rel=1e-3)
        assert run["peer_ratio"] == pytest.approx(
            run["scenario"]["throughput"] / run["peer"]["throughput"], rel=1e-3
        )
        assert run["scenario"]["calls"] > 0
        assert run["scenario"]["errors"] == {}
        assert 0 < run["scenario"]["p50_ms"] <= run["scenario"]["p99_ms"]
        assert run["peak_rss_mb"] > 1
        assert run["scenario"]["server_cpu_us_per_call"] > 0
        assert run["peer"]["server_cpu_us_per_call"] > 0
        # every call in the window was counted by the server-side counters read around the run
        assert run["derived"]["sent_in_run"] >= run["scenario"]["calls"]
        # a derived rate also comes as units per ceiling call of the same run
        assert run["derived"]["sent_per_ceiling_call"] == pytest.approx(
            run["derived"]["sent_per_s"] / bracket, rel=1e-3
        )
    median = result["median"]
    assert median["ratio_to_ceiling"] == pytest.approx(
        statistics.median(run["ratio_to_ceiling"] for run in result["runs"]), rel=1e-3
    )
    assert median["throughput"] == pytest.approx(
        statistics.median(run["scenario"]["throughput"] for run in result["runs"]), rel=1e-3
    )
    assert result["peer"]["name"] == "bare"
    assert len([line for line in lines if "run " in line]) == 2
    table = render_table([document])
    assert "| tiny | tiny | - |" in table
    assert "≥ 0.5×" in table


def test_a_dirty_tree_is_told_apart_from_what_the_benchmarks_write(tmp_path: Path) -> None:
    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    for path in ("code.py", "bench/results/x.json", "docs/performance.md"):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("1\n")
    git("add", ".")
    git("-c", "user.email=b@x", "-c", "user.name=b", "commit", "-q", "-m", "start")
    assert git_dirty(tmp_path) is False
    (tmp_path / "bench/results/x.json").write_text("2\n")  # the benchmarks' own output
    (tmp_path / "docs/performance.md").write_text("2\n")
    (tmp_path / "untracked.py").write_text("2\n")
    assert git_dirty(tmp_path) is False
    (tmp_path / "code.py").write_text("2\n")
    assert git_dirty(tmp_path) is True
    assert git_dirty(tmp_path / "no-such-dir") is None


def test_provenance_says_when_the_measured_tree_had_uncommitted_changes() -> None:
    def doc(dirty: bool) -> dict[str, Any]:
        return {
            "scenario": "s",
            "timestamp": "t",
            "plan": {"runs": 1, "duration_s": 1.0, "concurrency": 1},
            "machine": {"git_commit": "abc1234", "git_dirty": dirty},
            "cases": [],
        }

    assert "commit abc1234 with uncommitted changes," in render_table([doc(True)])
    assert "commit abc1234," in render_table([doc(False)])
