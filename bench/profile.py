"""`python -m bench.profile <scenario> <case text>`: one benchmark case under load, its server sampled by py-spy.

Starts the case's server as the benchmark does, warms it up, then keeps the case's requests in flight while
`py-spy record` samples the server process, and prints where the time went: threads, then functions by own
and by inclusive samples. With `--gil` (the default) only the thread holding the GIL is sampled, which is
what bounds a grpc.aio server (samples ÷ (rate × seconds) is the share of time the GIL was held); `--idle` samples every thread, waiting ones too (who waits on whom). The raw
samples stay in `--out` for a closer look (one `stack count` line per distinct stack).

    .venv/bin/python -m bench.profile limiter "single-item Check, distinct keys (sqlite)"
    .venv/bin/python -m bench.profile limiter "100 items (ALL_OR_NOTHING), distinct keys (sqlite)" --top 40
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import sys
import tempfile
from collections import Counter
from pathlib import Path

import grpc

from bench import scenarios
from bench.harness import Case
from bench.loadgen import generate_load


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.splitlines()[0])
    parser.add_argument("scenario", help=f"one of {scenarios.available()}")
    parser.add_argument(
        "case", help="text the case's `<name> (<backend>)` contains (the first match is used)"
    )
    parser.add_argument("--seconds", type=int, default=12, help="seconds sampled under load (default 12)")
    parser.add_argument("--rate", type=int, default=100, help="samples per second (default 100)")
    parser.add_argument("--idle", action="store_true", help="sample every thread, not only the GIL holder")
    parser.add_argument("--concurrency", type=int, default=64, help="calls in flight (default 64)")
    parser.add_argument("--top", type=int, default=25, help="functions listed per table (default 25)")
    parser.add_argument("--out", type=Path, help="raw samples file (default: a temporary file)")
    return parser.parse_args(argv)


def _case(scenario: str, text: str) -> Case:
    (chosen,) = scenarios.load([scenario])
    for case in chosen.cases():
        if text in f"{case.name} ({case.backend})":
            return case
    raise SystemExit(f"no case of {scenario!r} matches {text!r}")


def _py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(found).exists():
        raise SystemExit("py-spy is not installed: `make venv` installs the dev extras")
    return found


async def _profile(case: Case, args: argparse.Namespace, out: Path) -> float:
    """Runs the load and the sampler; returns the calls per second completed while sampling."""
    with case.server() as server:
        channel = grpc.aio.insecure_channel(server.address)
        request = case.request(channel)
        await generate_load(request, label="warm-up", concurrency=args.concurrency, duration_s=1.5)
        command = [_py_spy(), "record", "-p", str(server.pid), "-d", str(args.seconds), "-r", str(args.rate)]
        command += ["-f", "raw", "-o", str(out), "--threads", "--idle" if args.idle else "--gil"]
        sampler = await asyncio.create_subprocess_exec(
            *command, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
        )
        stats = await generate_load(
            request, label="profiled", concurrency=args.concurrency, duration_s=args.seconds
        )
        _, errors = await sampler.communicate()
        await channel.close(None)
        if sampler.returncode != 0:
            raise SystemExit(f"py-spy failed (it needs ptrace: run as root or allow it):\n{errors.decode()}")
        return stats.throughput


def summarise(raw: str, top: int) -> str:
    """Threads, then functions by own share of the samples (py-spy's raw format), then the project's own
    functions (services/, gateway/) by inclusive share: what a change could move."""
    threads: Counter[str] = Counter()
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [re.sub(r":\d+\)$", ")", frame) for frame in stack.split(";")]
        thread, calls = frames[0], frames[1:]
        total += n
        threads[re.sub(r"\s*\(\d+\)", "", thread)] += n
        if calls:
            own[calls[-1]] += n
        for frame in set(calls):
            if ("(services/" in frame or "(gateway/" in frame) and "(services/runtime/cli.py)" not in frame:
                inclusive[frame] += n
    if not total:
        return "no samples (was the server busy?)"
    lines = [f"{total} samples"]
    for title, counts, limit in (
        ("threads", threads, 10),
        ("own", own, top),
        ("project code, inclusive", inclusive, top),
    ):
        lines.append(f"--- {title}")
        lines += [f"{count / total * 100:5.1f}%  {name}" for name, count in counts.most_common(limit)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    case = _case(args.scenario, args.case)
    out = args.out or Path(tempfile.mkdtemp(prefix="bench-profile-")) / "samples.txt"
    throughput = asyncio.run(_profile(case, args, out))
    print(f"{case.name} ({case.backend}): {throughput:,.0f} calls/s while sampled (py-spy slows the server)")
    print(summarise(out.read_text(), args.top))
    print(f"raw samples: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
