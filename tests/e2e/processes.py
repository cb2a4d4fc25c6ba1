"""Helpers to run `foundation` commands as real processes and watch them from a test.

Output goes to files rather than pipes: a chatty child can never block on a full pipe, and a test can read
what was written so far at any moment.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FOUNDATION = [sys.executable, "-m", "services.runtime.cli"]
READY_TIMEOUT = 60.0
"""Generous: the machine is shared and each process spends about a second importing."""


def clean_environment(**extra: str) -> dict[str, str]:
    """The environment of this test process without any FOUNDATION_* variable, plus `extra`."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("FOUNDATION_")}
    env.update(extra)
    return env


def write_config(path: Path, database_url: str, **sections: Mapping[str, Any]) -> Path:
    """A TOML config with every port 0 (learnt from READY lines), a short grace, and `sections` on top."""
    defaults: dict[str, dict[str, Any]] = {
        name: {"port": 0} for name in ("signals", "limiter", "cache", "pool", "gateway")
    }
    defaults["gateway"]["http_port"] = 0
    for name, values in sections.items():
        defaults.setdefault(name, {}).update(values)
    lines = [
        f"database_url = {json.dumps(database_url)}",
        "shutdown_grace_s = 2.0",
        f"startup_timeout_s = {READY_TIMEOUT}",
    ]
    for name, values in defaults.items():
        lines.append(f"[{name}]")
        lines.extend(f"{key} = {json.dumps(value)}" for key, value in values.items())
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass
class Proc:
    """A `foundation` process started by a test, with its output in files."""

    popen: subprocess.Popen[bytes]
    out_path: Path
    err_path: Path

    @property
    def pid(self) -> int:
        """The process id."""
        return self.popen.pid

    def stdout(self) -> str:
        """Everything written to stdout so far."""
        return self.out_path.read_text(errors="replace")

    def stderr(self) -> str:
        """Everything written to stderr so far."""
        return self.err_path.read_text(errors="replace")

    def describe(self) -> str:
        """Both outputs, for assertion messages."""
        return f"exit={self.popen.poll()}\n--- stdout\n{self.stdout()}\n--- stderr\n{self.stderr()[-6000:]}"

    async def wait_for_stdout(self, text: str, within: float = READY_TIMEOUT) -> str:
        """Polls stdout until it contains `text`; fails early if the process exits first."""
        deadline = time.monotonic() + within
        while text not in (out := self.stdout()):
            if self.popen.poll() is not None:
                raise AssertionError(f"process exited before printing {text!r}\n{self.describe()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} not printed within {within}s\n{self.describe()}")
            await asyncio.sleep(0.05)
        return out

    async def wait_exit(self, within: float) -> int:
        """Polls until the process exits; returns its exit code, fails after `within` seconds."""
        deadline = time.monotonic() + within
        while (code := self.popen.poll()) is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"process still running after {within}s\n{self.describe()}")
            await asyncio.sleep(0.05)
        return code

    def signal(self, signum: int) -> None:
        """Sends a signal to the process."""
        self.popen.send_signal(signum)

    def kill(self) -> None:
        """SIGKILL, if still running (for cleanup after a failed test)."""
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait()

    def children(self) -> dict[str, int]:
        """Service name → pid of each child the launcher reported starting (from its JSON log lines)."""
        pids: dict[str, int] = {}
        for line in self.stderr().splitlines():
            if not line.startswith("{"):
                continue
            record = json.loads(line)
            if record.get("service") == "launcher" and record.get("event") == "started":
                pids[record["child"]] = int(record["pid"])
        return pids


def start(args: list[str], tmp_path: Path, env: Mapping[str, str], name: str = "foundation") -> Proc:
    """Starts `foundation <args>` in `tmp_path` with output to files there."""
    out_path, err_path = tmp_path / f"{name}.out", tmp_path / f"{name}.err"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        popen = subprocess.Popen(
            [*FOUNDATION, *args],
            cwd=tmp_path,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
        )
    return Proc(popen, out_path, err_path)


def run_to_end(
    args: list[str], tmp_path: Path, env: Mapping[str, str], timeout: float = 60.0, name: str = "foundation"
) -> Proc:
    """Runs `foundation <args>` to completion."""
    proc = start(args, tmp_path, env, name)
    try:
        proc.popen.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError(
            f"foundation {' '.join(args)} did not finish in {timeout}s\n{proc.describe()}"
        ) from None
    return proc


def process_gone(pid: int) -> bool:
    """True when `pid` no longer runs: no such process, or a zombie its (new) parent has not reaped yet."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


async def wait_gone(pids: Mapping[str, int], within: float) -> None:
    """Polls until every pid has stopped; fails naming the survivors after `within` seconds."""
    deadline = time.monotonic() + within
    while alive := {name: pid for name, pid in pids.items() if not process_gone(pid)}:
        if time.monotonic() > deadline:
            for pid in alive.values():
                os.kill(pid, signal.SIGKILL)
            raise AssertionError(f"still running after {within}s: {alive}")
        await asyncio.sleep(0.05)


def error_lines(text: str) -> list[str]:
    """The `error: …` lines of an output."""
    return [line for line in text.splitlines() if line.startswith("error: ")]


def service_lines(stdout: str) -> dict[str, list[str]]:
    """`foundation run`'s per-service lines: name → the words after it."""
    lines: dict[str, list[str]] = {}
    for line in stdout.splitlines():
        words = line.split()
        if words and words[0] in ("signals", "limiter", "cache", "pool", "gateway"):
            lines[words[0]] = words[1:]
    return lines
