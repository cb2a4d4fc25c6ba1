"""`foundation limiter …` as a person or a script uses it: a real process against a real limiter."""

from __future__ import annotations

import asyncio
import json
import sys

from tests.e2e.processes import clean_environment
from tests.harness import running_service


async def foundation(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.runtime.cli",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=clean_environment(),
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_a_session_from_the_shell(sqlite_url: str) -> None:
    async with running_service("limiter", sqlite_url) as svc:
        at = ["--address", svc.address]
        code, out, _ = await foundation("limiter", "create", "api", "--limit", "2", "--period", "1h", *at)
        assert code == 0
        assert out.strip() == "limiters/api  gcra 2 per 3600s burst 2 fail_open"
        code, out, _ = await foundation("limiter", "list", *at)
        assert "limiters/api" in out
        outcomes = [
            await foundation("limiter", "check", "api", "alice", "--fail-if-denied", *at) for _ in range(3)
        ]
        assert [code for code, _, _ in outcomes] == [0, 0, 3]
        assert outcomes[2][1].startswith("denied, retry after ")
        code, out, _ = await foundation("limiter", "status", "api", "alice", "--json", *at)
        assert code == 0
        assert json.loads(out)["limit"] == "2"  # proto3 JSON writes int64 as a string
        code, out, _ = await foundation("limiter", "update", "api", "--limit", "5", *at)
        assert "gcra 5 per 3600s burst 5" in out
        assert (await foundation("limiter", "reset", "api", "alice", *at))[1].strip() == "reset"
        code, out, _ = await foundation("limiter", "stats", "api", *at)
        assert "checks 3 allowed 2 denied 1" in out
        code, out, _ = await foundation("limiter", "delete", "api", *at)
        assert out.strip() == "deleted limiters/api (0 keys)"


async def test_errors_are_one_line_naming_the_fault(sqlite_url: str) -> None:
    async with running_service("limiter", sqlite_url) as svc:
        at = ["--address", svc.address]
        code, _, err = await foundation("limiter", "create", "api", "--limit", "0", *at)
        assert code == 1
        assert err.splitlines()[0].startswith("error: INVALID_ARGUMENT: ")
        assert "  limiter.limit: must be at least 1" in err
        assert "Traceback" not in err
        code, _, err = await foundation("limiter", "get", "missing", *at)
        assert code == 1
        assert err.strip() == "error: NOT_FOUND: limiters/missing not found"
        code, _, err = await foundation("limiter", "create", "x", "--period", "soon", *at)
        assert code == 1
        assert "'soon' is not a duration" in err
    code, _, err = await foundation("limiter", "get", "api", "--address", "127.0.0.1:1")
    assert code == 1
    assert err.startswith("error: UNAVAILABLE: ")
    assert len(err.strip().splitlines()) == 1
