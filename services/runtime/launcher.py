"""The multi-process launcher behind `foundation run` (and `make run`).

Each service runs as its own child process, `python -m services.runtime.cli serve <svc>`, started level by level
in `registry.START_ORDER`: a level starts only once every service of the previous levels has printed its READY
line and answers SERVING on `grpc.health.v1`. Children share the launcher's configuration (file and
environment); their ports are learnt from their READY lines, so every port may be 0.

Stopping: SIGINT/SIGTERM stops the children level by level in reverse start order (SIGTERM, then SIGKILL after
the shutdown grace plus a margin); a second signal kills the stragglers at once. A child that dies while the
suite runs is not restarted: the launcher stops the others and exits non-zero, so a half suite never runs
silently (restart policy belongs to whatever runs the launcher, e.g. systemd). Children are bound to the
launcher with PR_SET_PDEATHSIG, so they stop even when the launcher is killed with SIGKILL.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from services.runtime import registry
from services.runtime.child_output import LogSink, ReadyLine, exit_text, read_lines, reason_of
from services.runtime.client import dial_address, wait_serving
from services.runtime.config import Settings

LAUNCHER_PID_ENV = "FOUNDATION_LAUNCHER_PID"
"""Set in each child's environment; a child seeing it binds its life to that parent (bind_to_launcher)."""

STOP_MARGIN_S = 5.0
"""Time beyond `shutdown_grace_s` a child gets to flush and close before it is killed."""

_PR_SET_PDEATHSIG = 1
_LINE_LIMIT = 1 << 20


class LaunchError(Exception):
    """A problem that stops the launcher, phrased as one line for a person."""


def bind_to_launcher() -> None:
    """In a child of the launcher: have the kernel SIGTERM this process when the launcher dies (Linux only).

    Without it a `kill -9` of the launcher would leave the services running as orphans. The check of the
    parent pid afterwards covers a launcher that died between our fork and the prctl call.
    """
    launcher_pid = os.environ.pop(LAUNCHER_PID_ENV, None)
    if launcher_pid is None or not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != int(launcher_pid):
        raise LaunchError("the launcher exited before this service started")


@dataclass
class Child:
    """One service process and what the launcher has learnt about it."""

    name: str
    process: asyncio.subprocess.Process
    ready: ReadyLine | None = None
    last_line: str = ""
    """The last line the child wrote to stderr: the reason it gives when it fails."""
    returncode: int | None = None
    """Set once the process has exited and its output has been read to the end."""

    @property
    def running(self) -> bool:
        """True until the process has exited."""
        return self.returncode is None

    def describe(self) -> str:
        """The line `foundation run` prints for this service once it is SERVING."""
        assert self.ready is not None
        metrics = self.ready.extras.get("metrics", "off")
        parts = [f"{self.name:<8}", f"{self.ready.address:<16}", "metrics " + _port_text(metrics)]
        http = self.ready.extras.get("http")
        if http is not None:
            parts.append("http " + _port_text(http))
        return "  ".join(parts)


def _port_text(port: str) -> str:
    return port if port == "off" else f":{port}"


def plan(services: Sequence[str] | None = None) -> list[tuple[str, ...]]:
    """The start levels restricted to `services` (all when None); raises LaunchError for unknown names."""
    if services is None:
        return [level for level in registry.START_ORDER if level]
    unknown = [name for name in services if name not in registry.MODULES]
    if unknown:
        raise LaunchError(f"unknown service {unknown[0]!r}; known: {', '.join(registry.MODULES)}")
    levels = [tuple(name for name in level if name in services) for level in registry.START_ORDER]
    return [level for level in levels if level]


class Launcher:
    """Runs the suite (or part of it) as child processes until a signal or a failure; see the module doc."""

    def __init__(
        self,
        settings: Settings,
        levels: Sequence[tuple[str, ...]],
        *,
        config_file: Path | None = None,
        stdout: TextIO | None = None,
        stderr: TextIO | None = None,
    ) -> None:
        self.settings = settings
        self.levels = list(levels)
        self.config_file = config_file
        self.stdout = stdout or sys.stdout
        self.stderr = stderr or sys.stderr
        if settings.log_format == "auto":
            json_logs = not self.stderr.isatty()
        else:
            json_logs = settings.log_format == "json"
        self.log = LogSink(self.stderr, json_logs)
        self.children: list[Child] = []
        self._signals = 0
        self._changed = asyncio.Event()
        self._pumps: asyncio.TaskGroup | None = None

    async def run(self) -> int:
        """Starts, supervises and stops the children; returns the exit code (0 after a requested stop)."""
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, self._on_signal, signum)
        try:
            # The pumps live exactly as long as their child; the task group waits for them before returning.
            async with asyncio.TaskGroup() as pumps:
                self._pumps = pumps
                failure = await self._run_suite()
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)
        if failure is not None:
            self._error(failure)
            return 1
        self.log.note("stopped")
        return 0

    async def _run_suite(self) -> str | None:
        started: list[list[Child]] = []
        try:
            for level in self.levels:
                children: list[Child] = []
                started.append(children)
                for name in level:
                    children.append(await self._spawn(name))
                failure = await self._await_level(children)
                if failure is not None or self._signals:
                    return failure
                for child in children:
                    self._say(child.describe())
            self._say("Foundation is up — Ctrl-C to stop")
            return await self._watch()
        except LaunchError as exc:
            return str(exc)
        finally:
            for children in reversed(started):
                await self._stop_level(children)

    async def _spawn(self, name: str) -> Child:
        # Children get their own process group, so a terminal's Ctrl-C reaches only the launcher, which then
        # stops them in order.
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "services.runtime.cli",
                "serve",
                name,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=self._child_environment(),
                process_group=0,
                limit=_LINE_LIMIT,
            )
        except OSError as exc:
            raise LaunchError(f"cannot start {name}: {exc}") from None
        child = Child(name, process)
        self.children.append(child)
        self.log.note("started", child=name, pid=child.process.pid)
        assert self._pumps is not None
        self._pumps.create_task(self._pump(child), name=f"pump-{name}")
        return child

    def _child_environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env[LAUNCHER_PID_ENV] = str(os.getpid())
        env["PYTHONUNBUFFERED"] = "1"
        # The launcher migrated already; children migrating at once would only contend for the schema lock.
        env["FOUNDATION_STORE__MIGRATE_ON_START"] = "false"
        if self.config_file is not None:
            env["FOUNDATION_CONFIG"] = str(self.config_file.resolve())
        if self.settings.log_format == "auto":
            env["FOUNDATION_LOG_FORMAT"] = "json" if self.log.json_mode else "console"
        return env

    async def _pump(self, child: Child) -> None:
        try:
            await asyncio.gather(self._read_stdout(child), self._read_stderr(child))
        finally:
            child.returncode = await child.process.wait()
            self._notify()

    async def _read_stdout(self, child: Child) -> None:
        assert child.process.stdout is not None
        async for line in read_lines(child.process.stdout):
            ready = ReadyLine.parse(line)
            if ready is not None and child.ready is None:
                child.ready = ready
                self._notify()
            else:
                self.log.child_line(child.name, line)

    async def _read_stderr(self, child: Child) -> None:
        assert child.process.stderr is not None
        async for line in read_lines(child.process.stderr):
            if line.strip():
                child.last_line = line
                self.log.child_line(child.name, line)

    async def _await_level(self, children: list[Child]) -> str | None:
        timeout = self.settings.startup_timeout_s
        deadline = time.monotonic() + timeout
        while not self._signals:
            for child in children:
                if not child.running:
                    return self._early_exit(child)
            waiting = [child for child in children if child.ready is None]
            if not waiting:
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return self._timed_out(waiting[0], timeout)
            await self._changed_within(remaining)
        if self._signals:
            return None
        remaining = max(1.0, deadline - time.monotonic())
        results = await asyncio.gather(
            *(wait_serving(_address(child), within_s=remaining) for child in children)
        )
        for child, result in zip(children, results, strict=True):
            if not result.serving:
                detail = f" ({result.detail})" if result.detail else ""
                return f"{child.name} at {result.address} is not SERVING: {result.status}{detail}"
        return None

    def _early_exit(self, child: Child) -> str:
        reason = reason_of(child.last_line) if child.last_line else "no output"
        return f"{child.name} failed to start ({exit_text(child.returncode)}): {reason}"

    def _timed_out(self, child: Child, timeout: float) -> str:
        last = f"; last log: {reason_of(child.last_line)}" if child.last_line else ""
        return f"{child.name} did not become SERVING within {timeout:g}s (startup_timeout_s){last}"

    async def _watch(self) -> str | None:
        while not self._signals:
            for child in self.children:
                if not child.running:
                    reason = reason_of(child.last_line) if child.last_line else "no output"
                    self.log.note("exited unexpectedly", child=child.name, code=child.returncode)
                    return f"{child.name} exited unexpectedly ({exit_text(child.returncode)}): {reason}"
            await self._changed_within(None)
        return None

    async def _stop_level(self, children: list[Child]) -> None:
        running = [child for child in children if child.running]
        for child in running:
            self.log.note("stopping", child=child.name, pid=child.process.pid)
            _send(child, signal.SIGTERM)
        deadline = time.monotonic() + self.settings.shutdown_grace_s + STOP_MARGIN_S
        while any(child.running for child in running) and self._signals < 2:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            await self._changed_within(remaining)
        for child in running:
            if child.running:
                self.log.note("killing", child=child.name, pid=child.process.pid)
                _send(child, signal.SIGKILL)
        for child in running:
            while child.running:
                await self._changed_within(None)
            if child.returncode not in (0, None):
                self.log.note("exited", child=child.name, code=child.returncode, reason=child.last_line)

    def _on_signal(self, signum: int) -> None:
        self._signals += 1
        action = "stopping" if self._signals == 1 else "killing what is left"
        self.log.note(f"received {signal.Signals(signum).name}, {action}")
        self._notify()

    def _notify(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def _changed_within(self, limit_s: float | None) -> None:
        changed = self._changed
        try:
            async with asyncio.timeout(limit_s):
                await changed.wait()
        except TimeoutError:
            pass

    def _say(self, line: str) -> None:
        try:
            print(line, file=self.stdout, flush=True)
        except (BrokenPipeError, ValueError):
            pass

    def _error(self, message: str) -> None:
        try:
            print(f"error: {message}", file=self.stderr, flush=True)
        except (BrokenPipeError, ValueError):
            pass


def _address(child: Child) -> str:
    assert child.ready is not None
    return dial_address(child.ready.address)


def _send(child: Child, signum: int) -> None:
    try:
        child.process.send_signal(signum)
    except ProcessLookupError:
        pass
