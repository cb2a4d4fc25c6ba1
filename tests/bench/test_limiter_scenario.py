"""The limiter scenario's requests against a real limiter (both backends) and its peer against a real Redis.

The benchmark measures speed only; this checks that what it measures is what it claims: every check of the
open loads is a real allowed decision, the half-denied load denies exactly the checks on used-up keys, the
counters the table reports add up, and the peer makes the same decisions on the same keys.
"""

from __future__ import annotations

import pytest

from bench.limits_peer import limits_peer, redis_server
from bench.scenarios.limiter import (
    BATCH,
    CLOSED_KEYS_PER_WORKER,
    CLOSED_PER_DAY,
    LOADS,
    OPEN_PER_SECOND,
    Load,
    checker,
    decision_counters,
    decision_figures,
)
from foundation.limiter.v1 import limiter_pb2 as pb
from tests.harness import running_service

CALLS = 4 * CLOSED_KEYS_PER_WORKER
"""Per worker: half of them on the closed limiter, each of its keys checked twice (allowed, then denied)."""


async def test_every_load_decides_what_it_claims(db_url: str) -> None:
    async with running_service("limiter", db_url) as svc:
        expected_checks = 0.0
        for load in LOADS:
            send = checker(svc.channel, load)
            for _ in range(CALLS if load.items == 1 else 2):
                response = await send(0)
                assert isinstance(response, pb.CheckResponse)
                assert len(response.results) == load.items
                assert all(result.limit for result in response.results)
            expected_checks += CALLS if load.items == 1 else 2 * BATCH
        counters = await decision_counters(svc.channel)
        assert counters["decisions"] == expected_checks
        # Only the half-denied load denies: the second round of the worker's closed keys.
        assert counters["denied"] == CLOSED_KEYS_PER_WORKER


async def test_half_denied_load_denies_half_once_its_closed_keys_are_used(db_url: str) -> None:
    load = Load(half_denied=True)
    async with running_service("limiter", db_url) as svc:
        send = checker(svc.channel, load)
        for _ in range(2 * CLOSED_KEYS_PER_WORKER):  # the warm-up: each closed key allowed once
            await send(0)
        before = await decision_counters(svc.channel)
        verdicts = []
        for _ in range(CALLS):
            response = await send(0)
            assert isinstance(response, pb.CheckResponse)
            verdicts.append(response.allowed)
            if not response.allowed:
                assert response.results[0].headers["Retry-After"]
        after = await decision_counters(svc.channel)
    assert verdicts == [True, False] * (CALLS // 2)
    figures = decision_figures({key: after[key] - before[key] for key in after})
    assert figures["denied_share"] == pytest.approx(0.5)
    assert figures["decisions_per_s"] > 0


async def test_peer_makes_the_same_decisions_on_the_same_keys() -> None:
    load = Load(half_denied=True)
    peer = limits_peer(
        load.picker, open_per_second=OPEN_PER_SECOND, strict=False, closed_per_day=CLOSED_PER_DAY
    )
    with redis_server() as server:
        async with peer.client(server.address) as hit:
            verdicts = [await hit(0) for _ in range(2 * CALLS)]
    # As the limiter: the first round of the closed keys is allowed, later ones denied, open checks allowed.
    warm_up = 2 * CLOSED_KEYS_PER_WORKER
    assert verdicts[:warm_up] == [True] * warm_up
    assert verdicts[warm_up:] == [True, False] * ((2 * CALLS - warm_up) // 2)


async def test_strict_peer_refuses_a_denial() -> None:
    peer = limits_peer(Load(half_denied=True).picker, open_per_second=OPEN_PER_SECOND, strict=True)
    with redis_server() as server:
        async with peer.client(server.address) as hit:
            for _ in range(2 * CLOSED_KEYS_PER_WORKER + 1):
                await hit(0)
            with pytest.raises(RuntimeError, match="denied"):
                await hit(0)  # a closed key used up in the first round
