"""`foundation limiter …` as a person or a script uses it: a real process against a real limiter."""

from __future__ import annotations

import asyncio
import json
import re
import sys
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from services.limiter.cli import LimiterCliError, parse_item
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
        assert code == 2
        assert "'soon' is not a duration" in err
    code, _, err = await foundation("limiter", "get", "api", "--address", "127.0.0.1:1")
    assert code == 1
    assert err.startswith("error: UNAVAILABLE: ")
    assert len(err.strip().splitlines()) == 1


async def test_several_items_all_or_nothing_or_independent(sqlite_url: str) -> None:
    async with running_service("limiter", sqlite_url) as svc:
        at = ["--address", svc.address]
        for name, limit in (("one", "1"), ("five", "5")):
            assert (await foundation("limiter", "create", name, "--limit", limit, "--period", "1h", *at))[
                0
            ] == 0
        both = ["--item", "one:u", "--item", "five:u:2"]
        code, out, _ = await foundation("limiter", "check", *both, "--fail-if-denied", *at)
        assert (code, out.splitlines()) == (
            0,
            ["allowed", "one u: allowed: 0 of 1 left", "five u: allowed: 3 of 5 left"],
        )
        code, out, _ = await foundation("limiter", "check", *both, "--fail-if-denied", *at)
        assert code == 3
        assert out.splitlines()[0] == "denied"
        # The denied item says how long to wait even though the whole check was rolled back.
        assert re.fullmatch(r"one u: denied, retry after [1-9]\d* ms: 0 of 1 left", out.splitlines()[1])
        assert out.splitlines()[2] == "five u: within limit, not consumed: 3 of 5 left"
        code, out, _ = await foundation("limiter", "check", *both, "--independent", *at)
        assert code == 0
        assert out.splitlines()[2] == "five u: allowed: 1 of 5 left"
        code, out, _ = await foundation("limiter", "check", "five", "u", "--dry-run", *at)
        assert out.strip() == "dry run, nothing consumed: allowed: 1 of 5 left"
        code, out, _ = await foundation("limiter", "check", "one", "u", "--dry-run", "--fail-if-denied", *at)
        assert code == 3
        assert re.fullmatch(
            r"dry run, nothing consumed: denied, retry after [1-9]\d* ms: 0 of 1 left", out.strip()
        )
        assert (await foundation("limiter", "status", "five", "u", *at))[1].startswith("1 of 5 left")


async def test_a_concurrency_lease_is_released_by_id(sqlite_url: str) -> None:
    async with running_service("limiter", sqlite_url) as svc:
        at = ["--address", svc.address]
        args = ["--algorithm", "concurrency", "--limit", "1", "--lease-ttl", "30s"]
        _, out, _ = await foundation("limiter", "create", "jobs", *args, *at)
        assert out.startswith("limiters/jobs  concurrency 1")
        _, out, _ = await foundation("limiter", "check", "jobs", "runner", "--json", *at)
        lease_id = json.loads(out)["results"][0]["leaseId"]
        assert (await foundation("limiter", "check", "jobs", "runner", "--fail-if-denied", *at))[0] == 3
        assert (await foundation("limiter", "release", lease_id, *at))[1].strip() == "released"
        assert (await foundation("limiter", "check", "jobs", "runner", "--fail-if-denied", *at))[0] == 0


@given(
    limiter_id=st.from_regex(r"[a-z0-9][a-z0-9._-]{0,62}", fullmatch=True),
    key=st.text(min_size=1).filter(lambda k: re.search(r":\d+$", k) is None),
    cost=st.none() | st.integers(min_value=0, max_value=10**12),
)
def test_an_item_reads_back_as_written(limiter_id: str, key: str, cost: int | None) -> None:
    text = f"{limiter_id}:{key}" if cost is None else f"{limiter_id}:{key}:{cost}"
    item = parse_item(text)
    assert (item.limiter, item.key) == (f"limiters/{limiter_id}", key)
    assert (item.cost if item.HasField("cost") else None) == cost


@given(st.text())
def test_any_item_text_parses_back_to_itself_or_is_a_one_line_error(text: str) -> None:
    try:
        item = parse_item(text)
    except LimiterCliError as error:
        message = error.message
        assert "\n" not in message
        assert message.startswith("--item ")
        return
    cost = f":{item.cost}" if item.HasField("cost") else ""
    assert f"{item.limiter.removeprefix('limiters/')}:{item.key}{cost}" == text


async def test_the_address_defaults_to_the_configured_limiter(sqlite_url: str, tmp_path: Path) -> None:
    async with running_service("limiter", sqlite_url) as svc:
        config = tmp_path / "foundation.toml"
        config.write_text(f'[limiter]\nhost = "0.0.0.0"\nport = {svc.app.port}\n')
        code, out, err = await foundation("--config", str(config), "limiter", "create", "api")
        assert (code, err) == (0, "")
        assert out.strip() == "limiters/api  gcra 1000 per 60s burst 1000 fail_open"
    code, _, err = await foundation("--config", str(tmp_path / "missing.toml"), "limiter", "list")
    assert code == 2
    assert err.strip() == f"error: config file {tmp_path / 'missing.toml'}: not found"
