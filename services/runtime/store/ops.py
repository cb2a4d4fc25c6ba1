"""What flows through the writer: the handler contract, a queued write, and the writer's counters."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import sqlalchemy as sa

OpT_contra = TypeVar("OpT_contra", contravariant=True)
ResT_co = TypeVar("ResT_co", covariant=True)


class BatchHandler(Protocol[OpT_contra, ResT_co]):
    """One kind of write. The writer gathers concurrent operations of all handlers into one transaction
    and calls `run()` once per handler per batch, with that handler's operations in arrival order."""

    @property
    def name(self) -> str:
        """Short name for logs and errors."""
        ...

    def run(self, conn: sa.Connection, ops: Sequence[OpT_contra]) -> Sequence[ResT_co | BaseException]:
        """One result per op, in order; an exception instance fails only that op (its caller gets it raised;
        the handler must leave that op's changes undone, e.g. with `conn.begin_nested()`). `RefusedOps`
        fails some ops whose changes the handler cannot undo alone: the batch rolls back and the others run
        again without them. If `run()` raises anything else, the writer retries transient errors and
        otherwise re-runs each op alone."""
        ...


class RefusedOps(Exception):
    """Raised by `BatchHandler.run()`: roll the whole transaction back, fail these ops (by their index in
    the `ops` given to `run()`) with their own errors, and run the batch's other ops again without them,
    in a new transaction. For ops that cannot stand but whose changes share statements with the others."""

    def __init__(self, errors: Mapping[int, BaseException]) -> None:
        super().__init__(f"{len(errors)} operation(s) refused by their handler")
        self.errors = errors


class HandlerContractError(RuntimeError):
    """A handler returned a different number of results than it was given operations."""


@dataclass(frozen=True)
class WriterStats:
    """Counters of the writer since the store opened (exported as metrics by the server)."""

    queued: int
    queue_bound: int
    batches: int
    """Group transactions committed."""
    operations: int
    """Handler operations that completed with a result (errors are counted in `failures`)."""
    transactions: int
    """All write transactions committed: batches, operations re-run alone, `Store.transaction` calls."""
    retries: int
    """Transactions rolled back after a transient error and run again."""
    failures: int
    """Operations that ended with an error (their own, the database's, or a timeout while executing)."""
    skipped: int
    """Operations never executed because their caller had given up (timeout or cancellation)."""
    rejected: int
    """Writes refused because the queue was full."""
    isolations: int
    """Batches that failed and were re-run one operation at a time."""
    largest_batch: int
    mean_batch_size: float


class Pending:
    """One queued write: a handler operation, or a whole-transaction function (`fn`)."""

    __slots__ = ("abandoned", "deadline", "fn", "future", "handler", "loop", "op", "weight")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        *,
        handler: BatchHandler[Any, Any] | None = None,
        op: object = None,
        fn: Callable[[sa.Connection], Any] | None = None,
        deadline: float | None = None,
        weight: int = 1,
    ) -> None:
        self.loop = loop
        self.future: asyncio.Future[Any] = loop.create_future()
        self.handler = handler
        self.op = op
        self.fn = fn
        self.deadline = deadline
        """time.monotonic() by which the op must have started, or None."""
        self.weight = weight
        """The op's share of a batch's `max_batch_rows` (a Check of 100 items weighs 100)."""
        self.abandoned = False
        """Set by the caller on timeout or cancellation; the writer then skips the op."""


Outcome = tuple[Pending, Any, BaseException | None]
