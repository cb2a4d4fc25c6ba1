"""`foundation run` as a real process tree: start-up in order, reflection, Ctrl-C, kill -9, failures."""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.runtime.client import check_health, list_services
from tests.e2e.processes import (
    Proc,
    clean_environment,
    error_lines,
    run_to_end,
    service_lines,
    start,
    wait_gone,
    write_config,
)

ALL = ("signals", "limiter", "cache", "pool", "gateway")
STOP_BOUND = 40.0
"""Three levels, each within shutdown grace (2 s in these configs) + the launcher's margin, with slack."""


@pytest.fixture
def sqlite_config(tmp_path: Path) -> Path:
    return write_config(tmp_path / "foundation.toml", f"sqlite:///{tmp_path / 'data' / 'foundation.db'}")


@pytest.fixture
def procs() -> Iterator[list[Proc]]:
    """Processes a test started; killed at the end if the test left them running."""
    started: list[Proc] = []
    yield started
    for proc in started:
        proc.kill()


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port held by a listening socket for the whole test."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


async def test_run_starts_the_suite_in_order_and_ctrl_c_stops_it(
    tmp_path: Path, sqlite_config: Path, procs: list[Proc]
) -> None:
    proc = start(["--config", str(sqlite_config), "run"], tmp_path, clean_environment())
    procs.append(proc)
    out = await proc.wait_for_stdout("Foundation is up — Ctrl-C to stop")

    lines = service_lines(out)
    assert list(lines) == list(ALL), out
    assert lines["signals"] == [lines["signals"][0], "metrics", lines["signals"][2]]
    addresses = {name: words[0] for name, words in lines.items()}
    for name in ALL:
        assert (await check_health(addresses[name])).serving, name
    assert "foundation.limiter.v1.LimiterService" in await list_services(addresses["limiter"])
    pids = proc.children()
    assert set(pids) == set(ALL)

    health = run_to_end(
        ["health", *addresses.values(), "127.0.0.1:1"], tmp_path / "data", clean_environment(), timeout=30
    )
    assert health.popen.returncode == 1, health.describe()
    assert health.stdout().count(" SERVING") == len(ALL), health.describe()
    assert error_lines(health.stderr()) == ["error: 1 of 6 not SERVING"]

    proc.signal(signal.SIGINT)
    assert await proc.wait_exit(STOP_BOUND) == 0, proc.describe()
    await wait_gone(pids, within=5)
    assert "Traceback" not in proc.stderr()


async def test_kill_9_of_the_launcher_takes_its_children_down(
    tmp_path: Path, sqlite_config: Path, procs: list[Proc]
) -> None:
    proc = start(
        ["--config", str(sqlite_config), "run", "--only", "signals,limiter"], tmp_path, clean_environment()
    )
    procs.append(proc)
    await proc.wait_for_stdout("Foundation is up")
    pids = proc.children()
    assert set(pids) == {"signals", "limiter"}

    proc.signal(signal.SIGKILL)
    # pdeathsig delivers SIGTERM: each child stops gracefully within its grace period.
    await wait_gone(pids, within=15)


async def test_a_child_dying_stops_the_rest_and_fails_the_launcher(
    tmp_path: Path, sqlite_config: Path, procs: list[Proc]
) -> None:
    proc = start(
        ["--config", str(sqlite_config), "run", "--only", "signals,limiter"], tmp_path, clean_environment()
    )
    procs.append(proc)
    await proc.wait_for_stdout("Foundation is up")
    pids = proc.children()

    os.kill(pids["limiter"], signal.SIGKILL)
    assert await proc.wait_exit(STOP_BOUND) == 1, proc.describe()
    await wait_gone(pids, within=5)
    errors = error_lines(proc.stderr())
    assert len(errors) == 1, proc.describe()
    assert errors[0].startswith("error: limiter exited unexpectedly (killed by SIGKILL)"), errors


async def test_a_service_that_cannot_start_stops_the_ones_started_and_is_named(
    tmp_path: Path, taken_port: int, procs: list[Proc]
) -> None:
    config = write_config(
        tmp_path / "foundation.toml", f"sqlite:///{tmp_path / 'f.db'}", cache={"port": taken_port}
    )
    proc = start(
        ["--config", str(config), "run", "--only", "signals,limiter,cache"], tmp_path, clean_environment()
    )
    procs.append(proc)
    assert await proc.wait_exit(STOP_BOUND + 60) == 1, proc.describe()

    pids = proc.children()
    assert set(pids) == {"signals", "limiter", "cache"}, proc.describe()
    await wait_gone(pids, within=5)
    errors = error_lines(proc.stderr())
    assert len(errors) == 1, proc.describe()
    assert errors[0].startswith("error: cache failed to start (exit code 1): port "), errors
    assert str(taken_port) in errors[0], errors
    assert "Foundation is up" not in proc.stdout()


async def test_a_service_not_serving_within_the_startup_timeout_is_stopped_and_named(
    tmp_path: Path, procs: list[Proc]
) -> None:
    config = write_config(tmp_path / "foundation.toml", f"sqlite:///{tmp_path / 'f.db'}")
    # Importing the runtime alone takes longer than this, so signals cannot be SERVING in time.
    env = clean_environment(FOUNDATION_STARTUP_TIMEOUT_S="0.2")
    proc = start(["--config", str(config), "run", "--only", "signals,limiter"], tmp_path, env)
    procs.append(proc)
    assert await proc.wait_exit(STOP_BOUND) == 1, proc.describe()

    pids = proc.children()
    assert set(pids) == {"signals"}, proc.describe()
    await wait_gone(pids, within=5)
    errors = error_lines(proc.stderr())
    assert len(errors) == 1, proc.describe()
    assert errors[0].startswith("error: signals did not become SERVING within 0.2s (startup_timeout_s)"), (
        errors
    )
