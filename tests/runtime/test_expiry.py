"""ExpiryWatch: the timeouts of queued writes, with one event-loop timer for the writes of one timeout."""

from __future__ import annotations

import asyncio

import pytest

from services.runtime.store import StoreTimeout
from services.runtime.store.expiry import ExpiryWatch
from services.runtime.store.ops import Pending
from tests.harness import eventually


def pending(loop: asyncio.AbstractEventLoop) -> Pending:
    return Pending(loop, op="op")


async def test_writes_of_one_timeout_expire_in_order_on_the_shared_timer() -> None:
    loop = asyncio.get_running_loop()
    watch = ExpiryWatch(loop)
    first, second = pending(loop), pending(loop)
    assert watch.watch(first, 0.05, "a") is None  # covered by the shared timer
    assert watch.watch(second, 0.05, "b") is None
    with pytest.raises(StoreTimeout, match=r"store write \(a\) did not finish within 0.05 s"):
        await first.future
    with pytest.raises(StoreTimeout):
        await second.future
    assert first.abandoned
    assert second.abandoned  # so the writer never starts them
    await eventually(lambda: len(watch) == 0)


async def test_a_shorter_timeout_behind_a_longer_one_expires_by_its_own_deadline() -> None:
    loop = asyncio.get_running_loop()
    watch = ExpiryWatch(loop)
    long, short = pending(loop), pending(loop)
    watch.watch(long, 30.0, "long")
    timer = watch.watch(short, 0.05, "short")
    assert timer is not None  # its own timer: the shared one waits for the long write
    with pytest.raises(StoreTimeout):
        await short.future
    assert not long.future.done()
    long.future.set_result(1)


async def test_finished_writes_are_not_expired_and_do_not_pile_up() -> None:
    loop = asyncio.get_running_loop()
    watch = ExpiryWatch(loop)
    for n in range(1000):
        item = pending(loop)
        assert watch.watch(item, 0.2, "write") is None
        item.future.set_result(n)
    assert len(watch) <= 1  # each new write drops the finished ones before it
    last = pending(loop)
    assert watch.watch(last, 0.2, None) is None  # on the shared timer
    with pytest.raises(StoreTimeout, match="store transaction did not finish"):
        await last.future
    assert not item.abandoned  # finished in time: never failed


async def test_a_write_finishing_before_its_deadline_keeps_its_result() -> None:
    loop = asyncio.get_running_loop()
    watch = ExpiryWatch(loop)
    item = pending(loop)
    watch.watch(item, 0.05, "write")
    loop.call_later(0.01, item.future.set_result, "done")
    assert await item.future == "done"
    await eventually(lambda: len(watch) == 0)  # the shared timer fired at the deadline and found it done
    assert not item.abandoned


async def test_after_a_longer_write_finishes_shorter_ones_share_the_timer_again() -> None:
    loop = asyncio.get_running_loop()
    watch = ExpiryWatch(loop)
    long = pending(loop)
    watch.watch(long, 30.0, "long")
    long.future.set_result(1)
    short = pending(loop)
    assert watch.watch(short, 0.05, "short") is None  # the finished long write sets no order
    with pytest.raises(StoreTimeout):  # by its own deadline: the timer armed for the long one was moved
        await asyncio.wait_for(short.future, 5.0)
