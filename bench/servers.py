"""Server processes under test: start one, learn its address, read its peak memory, stop it.

Every server the benchmarks measure runs in its own process, so the load generator never shares its GIL. A
Foundation process announces itself with one stdout line, `READY <service> <host>:<port> metrics=<port|off>`;
a peer such as redis-server is started on a free port chosen here and is ready once that port accepts a TCP
connection. Stderr goes to a log file whose tail is shown when a server fails to start.

Databases are throw-away: `temp_database("sqlite")` is a file in a temporary directory,
`temp_database("postgresql")` a database created on `$FOUNDATION_BENCH_PG_URL` (default the local server) and
dropped with `WITH (FORCE)` afterwards.
"""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Literal

import sqlalchemy as sa

Backend = Literal["sqlite", "postgresql"]

DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
_REPO = Path(__file__).resolve().parent.parent


class ServerError(Exception):
    """A server process could not be started (the message ends with the tail of its log)."""


class BackendUnavailable(Exception):
    """The database a case needs is not reachable; the harness skips such cases and says why."""


class ServerProcess:
    """A running server process: where to dial it and how much memory it has used."""

    def __init__(self, name: str, process: subprocess.Popen[str], address: str, log_path: Path) -> None:
        self.name = name
        self.process = process
        self.address = address
        self.log_path = log_path
        self.metrics_port: int | None = None

    @property
    def pid(self) -> int:
        """The process id (its /proc entry gives the memory figures)."""
        return self.process.pid

    def peak_rss_mb(self) -> float:
        """Peak resident memory (VmHWM) since start or since the last `reset_peak_rss`, in MiB."""
        status = Path(f"/proc/{self.pid}/status").read_text()
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        raise ServerError(f"{self.name}: no VmHWM in /proc/{self.pid}/status")

    def cpu_seconds(self) -> float:
        """User plus system CPU time of all the process's threads so far (from /proc/<pid>/stat)."""
        stat = Path(f"/proc/{self.pid}/stat").read_text()
        fields = stat.rsplit(")", 1)[1].split()  # the command name may contain spaces and parentheses
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def reset_peak_rss(self) -> None:
        """Starts a new peak-memory window (Linux `clear_refs` 5 resets VmHWM to the current RSS)."""
        try:
            Path(f"/proc/{self.pid}/clear_refs").write_text("5")
        except OSError:
            pass  # not permitted here: the peak then covers the whole life of the process

    def log_tail(self, lines: int = 20) -> str:
        """The last lines the server wrote to stderr."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.strip().splitlines()[-lines:])

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> int:
        """SIGTERM, wait up to `timeout`, then SIGKILL; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (for peers that cannot bind port 0)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def server_process(
    name: str,
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    address: str | None = None,
    timeout: float = START_TIMEOUT_S,
) -> Iterator[ServerProcess]:
    """Runs `argv` for the duration of the block.

    Without `address` the process must print a READY line; with one, it is ready once the address accepts a
    TCP connection. The process is stopped (and its log removed) when the block ends.
    """
    log_dir = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
    log_path = log_dir / "stderr.log"
    full_env = {**os.environ, "PYTHONPATH": _pythonpath(), **(env or {})}
    with log_path.open("w") as log:
        process = subprocess.Popen(
            list(argv),
            stdout=subprocess.PIPE,
            stderr=log,
            stdin=subprocess.DEVNULL,
            text=True,
            env=full_env,
            cwd=_REPO,
        )
    lines = _line_reader(process)
    server = ServerProcess(name, process, address or "", log_path)
    try:
        if address is None:
            _await_ready_line(server, lines, timeout)
        else:
            _await_port(server, address, timeout)
        yield server
    finally:
        server.stop()
        log_path.unlink(missing_ok=True)
        log_dir.rmdir()


def foundation_command(module: str, *args: str) -> list[str]:
    """argv running a Python module of this repository with the interpreter running the benchmarks."""
    return [sys.executable, "-m", module, *args]


def foundation_env(database_url: str, **settings: str | int | float) -> dict[str, str]:
    """Environment configuring a Foundation process: the database plus `section__field=value` settings.

    Example: `foundation_env(url, limiter__port=0, store__max_batch=128)`.
    """
    env = {"FOUNDATION_DATABASE_URL": database_url, "FOUNDATION_LOG_LEVEL": "warning"}
    env.update({f"FOUNDATION_{key.upper()}": str(value) for key, value in settings.items()})
    return env


@contextmanager
def foundation_process(
    name: str, argv: Sequence[str], backend: Backend, **settings: str | int | float
) -> Iterator[ServerProcess]:
    """A Foundation process (`argv`) on a throw-away `backend` database, configured by `settings`."""
    with (
        temp_database(backend) as url,
        server_process(name, argv, env=foundation_env(url, **settings)) as server,
    ):
        yield server


def service_process(
    service: str, backend: Backend = "sqlite", **settings: str | int | float
) -> AbstractContextManager[ServerProcess]:
    """`foundation serve <service>` on port 0 and a throw-away database (the usual scenario server)."""
    argv = foundation_command("services.runtime.cli", "serve", service)
    return foundation_process(service, argv, backend, **{f"{service}__port": 0, **settings})


@contextmanager
def temp_database(backend: Backend) -> Iterator[str]:
    """URL of an empty database that exists for the duration of the block."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="bench-sqlite-") as directory:
            yield f"sqlite:///{directory}/bench.db"
        return
    admin_url = os.environ.get("FOUNDATION_BENCH_PG_URL", DEFAULT_PG_URL)
    if admin_url.startswith("postgresql://"):
        admin_url = "postgresql+psycopg://" + admin_url[len("postgresql://") :]
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"foundation_bench_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        admin.dispose()
        raise BackendUnavailable(f"PostgreSQL unreachable at {_shown(admin_url)}: {exc.orig}") from None
    try:
        yield sa.make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _shown(url: str) -> str:
    return sa.make_url(url).render_as_string(hide_password=True)


def _pythonpath() -> str:
    parts = [str(_REPO), str(_REPO / "gen")]
    existing = os.environ.get("PYTHONPATH")
    return os.pathsep.join([*parts, existing] if existing else parts)


def _line_reader(process: subprocess.Popen[str]) -> queue.Queue[str | None]:
    """Drains the process's stdout in a thread (a full pipe would block the server); None marks the end."""
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, name="bench-stdout", daemon=True).start()
    return lines


def _await_ready_line(server: ServerProcess, lines: queue.Queue[str | None], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        try:
            line = lines.get(timeout=max(0.0, remaining))
        except queue.Empty:
            raise _start_failure(server, f"no READY line within {timeout:g}s") from None
        if line is None:
            code = server.process.wait()
            raise _start_failure(server, f"exited with code {code} before READY")
        words = line.split()
        if len(words) >= 3 and words[0] == "READY":
            server.address = _dialable(words[2])
            extras = dict(word.split("=", 1) for word in words[3:] if "=" in word)
            metrics = extras.get("metrics", "off")
            server.metrics_port = None if metrics == "off" else int(metrics)
            return


def _await_port(server: ServerProcess, address: str, timeout: float) -> None:
    host, _, port = address.rpartition(":")
    deadline = time.monotonic() + timeout
    while True:
        if server.process.poll() is not None:
            raise _start_failure(server, f"exited with code {server.process.returncode}")
        try:
            with socket.create_connection((host, int(port)), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise _start_failure(
                    server, f"{address} not accepting connections after {timeout:g}s"
                ) from None
            time.sleep(0.05)  # polling a port that is not open yet, bounded by the deadline


def _dialable(address: str) -> str:
    host, _, port = address.rpartition(":")
    return f"127.0.0.1:{port}" if host in ("0.0.0.0", "[::]", "::", "") else address


def _start_failure(server: ServerProcess, problem: str) -> ServerError:
    server.stop()
    tail = server.log_tail()
    return ServerError(f"{server.name}: {problem}" + (f"\n{tail}" if tail else ""))
