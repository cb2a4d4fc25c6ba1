"""Benchmark scenarios: one module a scenario, found by name.

To add one, create `bench/scenarios/<name>.py` exposing `SCENARIO = Scenario(name="<name>", description=…,
cases=<function returning Case objects>)`. A `Case` (bench.harness) needs:

- `name`, `backend` (`sqlite`, `postgresql` or `-`) and optionally `target` (the promised ratio to the ceiling);
- `server`: a function returning a context manager that runs the server under test, usually
  `lambda: service_process("limiter", "sqlite")` (bench.servers) or `server_process(...)` for a custom one;
- `request`: given a `grpc.aio.Channel` to that server, the coroutine function sending one request (it gets the
  worker index, 0…63, e.g. to choose a key);
- optionally `peer` (bench.harness.Peer: the product a user would pick instead, with its own server process and
  client), and `counters`/`derive` to report server-side figures such as mean batch size.

The harness measures the ceiling (health Check on the same process), interleaves runs, and writes
`bench/results/<name>.json`; `ceiling.py` is a complete example in under 60 lines. Modules whose names start
with `_` are helpers, not scenarios.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Sequence

from bench.harness import Scenario


def available() -> list[str]:
    """Names of every scenario module, the ceiling first."""
    names = [info.name for info in pkgutil.iter_modules(__path__) if not info.name.startswith("_")]
    return sorted(names, key=lambda name: (name != "ceiling", name))


def load(names: Sequence[str] | None = None) -> list[Scenario]:
    """The scenarios called `names` (all when None); KeyError names an unknown one."""
    known = available()
    chosen = known if not names else list(names)
    unknown = [name for name in chosen if name not in known]
    if unknown:
        raise KeyError(f"unknown scenario {', '.join(unknown)}; known: {', '.join(known)}")
    scenarios = []
    for name in chosen:
        scenario: Scenario = importlib.import_module(f"{__name__}.{name}").SCENARIO
        scenarios.append(scenario)
    return scenarios
