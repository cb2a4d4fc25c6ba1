"""Fixtures of the limiter's gRPC tests: a running limiter on the `db_url` backend and its stub."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from google.protobuf import duration_pb2

from foundation.limiter.v1 import limiter_pb2 as pb
from foundation.limiter.v1 import limiter_pb2_grpc as rpc
from tests.harness import RunningService, running_service


@dataclass
class Api:
    """A running limiter and helpers to call it."""

    service: RunningService
    stub: rpc.LimiterServiceStub

    async def create(self, limiter_id: str, **fields: Any) -> pb.Limiter:
        """CreateLimiter with `fields` of Limiter (`period_ms=` for a period in milliseconds)."""
        if "period_ms" in fields:
            ms = fields.pop("period_ms")
            fields["period"] = duration_pb2.Duration(seconds=ms // 1000, nanos=(ms % 1000) * 1_000_000)
        response: pb.CreateLimiterResponse = await self.stub.CreateLimiter(
            pb.CreateLimiterRequest(limiter_id=limiter_id, limiter=pb.Limiter(**fields))
        )
        return response.limiter

    async def check(
        self, limiter_id: str, key: str = "k", cost: int | None = None, **options: Any
    ) -> pb.CheckResponse:
        """A single-item Check."""
        item = pb.CheckItem(limiter=f"limiters/{limiter_id}", key=key)
        if cost is not None:
            item.cost = cost
        response: pb.CheckResponse = await self.stub.Check(pb.CheckRequest(items=[item], **options))
        return response

    async def remaining(self, limiter_id: str, key: str = "k") -> int:
        """GetStatus' remaining for a key."""
        status: pb.GetStatusResponse = await self.stub.GetStatus(
            pb.GetStatusRequest(limiter=f"limiters/{limiter_id}", key=key)
        )
        return status.remaining


@pytest.fixture
async def api(db_url: str) -> AsyncIterator[Api]:
    async with running_service("limiter", db_url) as service:
        yield Api(service, rpc.LimiterServiceStub(service.channel))
