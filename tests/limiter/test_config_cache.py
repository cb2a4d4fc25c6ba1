"""The per-process cache of limiter definitions: a read in flight never replaces what this process wrote since."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator

from foundation.limiter.v1 import limiter_pb2 as pb
from foundation.limiter.v1 import limiter_pb2_grpc as rpc
from services.limiter.configs import ConfigCache
from tests.harness import running_service


@contextlib.asynccontextmanager
async def cache_beside(
    db_url: str, limiter_id: str
) -> AsyncIterator[tuple[rpc.LimiterServiceStub, ConfigCache]]:
    """A running limiter with one limiter (limit 5) and a second, long-lived cache on its store."""
    async with running_service("limiter", db_url) as svc:
        stub = rpc.LimiterServiceStub(svc.channel)
        await stub.CreateLimiter(pb.CreateLimiterRequest(limiter_id=limiter_id, limiter=pb.Limiter(limit=5)))
        store = svc.app.context.store
        assert store is not None
        yield stub, ConfigCache(store, ttl_s=60)


async def test_a_read_landing_after_a_newer_put_keeps_the_newer_definition(db_url: str) -> None:
    async with cache_beside(db_url, "raced") as (_, cache):
        stored = (await cache.get_many(["raced"], timeout=5))["raced"]
        cache.forget(["raced"])
        reading = asyncio.create_task(cache.get_many(["raced"], timeout=5))
        await asyncio.sleep(0)  # the read is on the store's thread; its answer waits for this loop
        updated = dataclasses.replace(stored, limit=50, shadow=True, update_us=stored.update_us + 1)
        cache.put(updated)  # as an UpdateLimiter of this process would, while the read is in flight
        assert (await reading)["raced"] == stored  # the read answers what it read…
        assert (await cache.get_many(["raced"], timeout=5))["raced"] == updated  # …but keeps the newer one


async def test_a_read_overlapping_a_forget_is_not_kept(db_url: str) -> None:
    async with cache_beside(db_url, "dropped") as (stub, cache):
        reading = asyncio.create_task(cache.get_many(["dropped"], timeout=5))
        await asyncio.sleep(0)  # the read is on the store's thread; its answer waits for this loop
        cache.forget(["dropped"])  # as a DeleteLimiter or a configuration sync of this process would
        assert (await reading)["dropped"].limit == 5
        # Changed elsewhere (the service's own cache is another process's, as far as `cache` knows): the
        # next lookup reads again instead of serving what the overlapping read saw.
        await stub.UpdateLimiter(
            pb.UpdateLimiterRequest(
                limiter=pb.Limiter(name="limiters/dropped", limit=50), update_mask={"paths": ["limit"]}
            )
        )
        assert (await cache.get_many(["dropped"], timeout=5))["dropped"].limit == 50


async def test_a_forget_of_one_limiter_does_not_stop_reads_of_others_from_being_kept(db_url: str) -> None:
    async with cache_beside(db_url, "other") as (stub, cache):
        await stub.CreateLimiter(pb.CreateLimiterRequest(limiter_id="kept", limiter=pb.Limiter(limit=5)))
        reading = asyncio.create_task(cache.get_many(["kept"], timeout=5))
        await asyncio.sleep(0)  # the read is on the store's thread; its answer waits for this loop
        cache.forget(["other"])
        assert (await reading)["kept"].limit == 5
        await stub.UpdateLimiter(
            pb.UpdateLimiterRequest(
                limiter=pb.Limiter(name="limiters/kept", limit=50), update_mask={"paths": ["limit"]}
            )
        )
        # Kept: the cache (TTL 60 s) answers without reading, so it does not see the change yet.
        assert (await cache.get_many(["kept"], timeout=5))["kept"].limit == 5
