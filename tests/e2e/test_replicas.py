"""Several replicas of one service on one PostgreSQL database, as the README tells operators to run them."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from services.runtime.child_output import ReadyLine
from services.runtime.client import check_health, list_services
from tests.e2e.processes import Proc, clean_environment, start, wait_gone


@pytest.mark.pg
async def test_two_limiter_replicas_serve_side_by_side_and_stop_cleanly(pg_url: str, tmp_path: Path) -> None:
    env = clean_environment(FOUNDATION_DATABASE_URL=pg_url, FOUNDATION_SHUTDOWN_GRACE_S="2")
    replicas: list[Proc] = []
    try:
        for index in range(2):
            workdir = tmp_path / f"replica{index}"
            workdir.mkdir()
            replicas.append(start(["serve", "limiter", "--port", "0"], workdir, env, name="limiter"))
        addresses = []
        for replica in replicas:
            ready = ReadyLine.parse((await replica.wait_for_stdout("\n")).splitlines()[0])
            assert ready is not None, replica.describe()
            addresses.append(ready.address)
        assert addresses[0] != addresses[1]
        for address in addresses:
            assert (await check_health(address)).serving
            assert "foundation.limiter.v1.LimiterService" in await list_services(address)

        for replica in replicas:
            replica.signal(signal.SIGTERM)
        for replica in replicas:
            assert await replica.wait_exit(15) == 0, replica.describe()
        await wait_gone({f"replica{i}": replica.pid for i, replica in enumerate(replicas)}, within=5)
    finally:
        for replica in replicas:
            replica.kill()
