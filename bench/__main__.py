"""`python -m bench [scenario …] [--quick] [--list]`: run benchmark scenarios (all by default).

Each scenario writes `bench/results/<scenario>.json`; afterwards the results table of `docs/performance.md`
is regenerated from every results file. `--quick` runs short smoke runs (figures indicative only) and, unless
`--out` is given, writes them to a temporary directory, so the committed results of a full run stay intact.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from bench import scenarios
from bench.harness import Case, Plan, Scenario, read_results, run_scenario, write_results
from bench.report import render_table, update_docs
from bench.servers import ServerError

_REPO = Path(__file__).resolve().parent.parent
RESULTS_DIR = _REPO / "bench" / "results"
DOCS_FILE = _REPO / "docs" / "performance.md"


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument(
        "scenarios", nargs="*", help=f"scenarios to run (default: all of {scenarios.available()})"
    )
    parser.add_argument("--list", action="store_true", help="list the scenarios and their cases, run nothing")
    parser.add_argument("--quick", action="store_true", help="2 runs × 1 s after 0.5 s warm-up")
    parser.add_argument("--runs", type=int, help="measured runs per case (default 5)")
    parser.add_argument("--duration", type=float, help="seconds per measured run (default 5)")
    parser.add_argument("--warmup", type=float, help="seconds of warm-up per load (default 1)")
    parser.add_argument("--concurrency", type=int, help="calls in flight (default 64)")
    parser.add_argument("--case", help="only the cases whose `<name> (<backend>)` contains this text")
    parser.add_argument("--out", type=Path, help="results directory (default bench/results)")
    parser.add_argument("--no-docs", action="store_true", help="do not update docs/performance.md")
    return parser.parse_args(argv)


def _plan(args: argparse.Namespace) -> Plan:
    plan = Plan.quick_plan() if args.quick else Plan()
    return Plan(
        runs=args.runs or plan.runs,
        duration_s=args.duration or plan.duration_s,
        warmup_s=plan.warmup_s if args.warmup is None else args.warmup,
        concurrency=args.concurrency or plan.concurrency,
        quick=plan.quick,
    )


def _only_cases(scenario: Scenario, text: str) -> Scenario:
    def cases() -> list[Case]:
        return [case for case in scenario.cases() if text in f"{case.name} ({case.backend})"]

    return Scenario(scenario.name, scenario.description, cases)


def main(argv: list[str] | None = None) -> int:
    """Runs the chosen scenarios; returns the exit code (1 with a one-line error when a server fails)."""
    args = _arguments(argv)
    try:
        chosen = scenarios.load(args.scenarios)
    except KeyError as exc:
        print(f"error: {exc.args[0]}", file=sys.stderr)
        return 2
    if args.case:
        chosen = [_only_cases(scenario, args.case) for scenario in chosen]
    if args.list:
        for scenario in chosen:
            print(f"{scenario.name}: {scenario.description}")
            for case in scenario.cases():
                print(f"  - {case.name} ({case.backend})")
        return 0
    out = args.out or (Path(tempfile.mkdtemp(prefix="bench-quick-")) if args.quick else RESULTS_DIR)
    plan = _plan(args)
    try:
        for scenario in chosen:
            path = write_results(run_scenario(scenario, plan), out)
            print(f"wrote {path}", file=sys.stderr)
    except ServerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    table = render_table(read_results(out))
    print(table)
    if not args.no_docs and out == RESULTS_DIR:
        update_docs(DOCS_FILE, table)
        print(f"updated {DOCS_FILE}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
