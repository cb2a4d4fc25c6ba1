"""A description of the machine and software a benchmark ran on, stored with its results.

The figures only mean something next to this: the CPU, how many cores the benchmark could use, how busy the
machine already was (load average; the benchmark machine is shared), and the versions of the parts measured.
"""

from __future__ import annotations

import os
import platform
import sqlite3
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

_PACKAGES = ("grpcio", "protobuf", "SQLAlchemy", "psycopg", "redis", "limits")
_REPO = Path(__file__).resolve().parent.parent


def machine_info() -> dict[str, Any]:
    """CPU, memory, load, Python and package versions, and the git commit measured (and whether tracked files
    differed from it, apart from what the benchmarks write themselves)."""
    return {
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "memory_gb": _memory_gb(),
        "load_average": [round(value, 2) for value in os.getloadavg()],
        "platform": platform.platform(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "packages": {name: _version(name) for name in _PACKAGES},
        "git_commit": _git_commit(),
        "git_dirty": git_dirty(),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        pass
    return None


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _git_commit() -> str | None:
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=_REPO, capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return done.stdout.strip() or None


_WRITTEN_BY_BENCH = (":(exclude)bench/results", ":(exclude)docs/performance.md")


def git_dirty(repo: Path = _REPO) -> bool | None:
    """True when tracked files differ from the commit (the run measured code no commit holds), None without git."""
    try:
        done = subprocess.run(
            [
                "git",
                "--no-optional-locks",
                "status",
                "--porcelain",
                "--untracked-files=no",
                "--",
                ".",
                *_WRITTEN_BY_BENCH,
            ],
            cwd=repo,
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return bool(done.stdout.strip())
