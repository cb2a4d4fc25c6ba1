"""Prometheus metrics over real HTTP: gRPC calls by method and code, in-flight calls, the store's writer,
resource states (severe shows end to end), supervised tasks, events; two apps in one process never clash."""

from __future__ import annotations

import asyncio

import grpc
import httpx
import pytest
from google.protobuf.wrappers_pb2 import StringValue
from prometheus_client.parser import text_string_to_metric_families

from tests.contract.probe import SERVICE, Probe, ProbeClient
from tests.harness import RunningService, eventually, running_service


async def scrape(svc: RunningService) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of the app's /metrics, keyed by (name, labels)."""
    async with httpx.AsyncClient() as client:
        response = await client.get(svc.metrics_url, timeout=5)
    response.raise_for_status()
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples, name: str, **labels: str) -> float | None:
    """The sample `name{labels}`, or None when it is not exported."""
    found = samples.get((name, frozenset(labels.items())))
    return None if found is None else float(found)


async def test_grpc_calls_are_counted_by_method_and_code_with_latency(db_url: str) -> None:
    probe = Probe()
    async with running_service("cache", db_url, extra_parts=probe.parts()) as svc:
        client = ProbeClient(svc.channel)
        for _ in range(3):
            await client.unary("Echo")(StringValue(value="x"))
        with pytest.raises(grpc.aio.AioRpcError):
            await client.unary("Crash")(StringValue())
        with pytest.raises(grpc.aio.AioRpcError):
            await client.unary("Block")(StringValue(), timeout=0.2)

        samples = await scrape(svc)
        labels = {"grpc_service": SERVICE, "grpc_type": "unary"}
        assert value(samples, "grpc_server_handled_total", grpc_method="Echo", grpc_code="OK", **labels) == 3
        assert (
            value(samples, "grpc_server_handled_total", grpc_method="Crash", grpc_code="INTERNAL", **labels)
            == 1
        )
        assert value(samples, "grpc_server_handling_seconds_count", grpc_method="Echo", **labels) == 3
        fast = value(samples, "grpc_server_handling_seconds_bucket", grpc_method="Echo", le="0.1", **labels)
        assert fast == 3
        # The deadline passed while the handler waited: counted as such once the server notices.
        await eventually(
            lambda: _has(
                svc, "grpc_server_handled_total", grpc_method="Block", grpc_code="DEADLINE_EXCEEDED", **labels
            )
        )


async def _has(svc: RunningService, name: str, **labels: str) -> bool:
    return value(await scrape(svc), name, **labels) == 1


async def test_in_flight_calls_and_admission_refusals_are_visible(sqlite_url: str) -> None:
    probe = Probe()
    async with running_service(
        "pool", sqlite_url, extra_parts=probe.parts(), pool={"max_in_flight": 1}
    ) as svc:
        block = ProbeClient(svc.channel).unary("Block")
        held = asyncio.ensure_future(block(StringValue(), timeout=10))
        await eventually(lambda: probe.entered == 1)
        with pytest.raises(grpc.aio.AioRpcError):
            await block(StringValue(), timeout=10)
        samples = await scrape(svc)
        assert value(samples, "grpc_server_in_flight", grpc_service=SERVICE, grpc_method="Block") == 1
        assert (
            value(samples, "foundation_admission_rejected_total", grpc_service=SERVICE, grpc_method="Block")
            == 1
        )
        probe.release.set()
        await held
        samples = await scrape(svc)
        assert value(samples, "grpc_server_in_flight", grpc_service=SERVICE, grpc_method="Block") == 0


async def test_a_resource_over_its_severe_ratio_shows_severe(db_url: str) -> None:
    async with running_service("limiter", db_url, resources={"measure_interval_s": 0.05}) as svc:
        used = {"now": 10}
        svc.app.context.resources.register("test.table", 100, lambda: used["now"])
        await eventually(lambda: _state_is(svc, "test.table", "normal"))
        used["now"] = 96
        await eventually(lambda: _state_is(svc, "test.table", "severe"))
        samples = await scrape(svc)
        assert value(samples, "foundation_resource_ratio", resource="test.table") == pytest.approx(0.96)
        assert value(samples, "foundation_resource_overall_state", state="severe") == 1
        assert value(samples, "foundation_resource_state", resource="test.table", state="normal") == 0
        # The writer queue is registered as a resource too, and the change was published as an event.
        assert value(samples, "foundation_resource_bound", resource="store.writer_queue") == 10_000
        assert (value(samples, "foundation_events_dropped_total", reason="no_sink") or 0) >= 1
        used["now"] = 50
        await eventually(lambda: _state_is(svc, "test.table", "normal"))


async def _state_is(svc: RunningService, resource: str, state: str) -> bool:
    return value(await scrape(svc), "foundation_resource_state", resource=resource, state=state) == 1


async def test_writer_and_supervisor_stats_are_exported(db_url: str) -> None:
    async with running_service("signals", db_url, resources={"measure_interval_s": 0.05}) as svc:
        await eventually(lambda: _task_ran(svc, "resources.measure"))
        samples = await scrape(svc)
        assert value(samples, "foundation_store_writer_queue_bound") == 10_000
        assert value(samples, "foundation_store_writer_queued") == 0
        assert value(samples, "foundation_store_writer_batches_total") is not None
        assert value(samples, "foundation_task_up", task="events.drain") == 1
        assert value(samples, "foundation_task_failures_total", task="resources.measure") == 0


async def _task_ran(svc: RunningService, task: str) -> bool:
    return (value(await scrape(svc), "foundation_task_runs_total", task=task) or 0) >= 2


async def test_two_apps_in_one_process_keep_their_own_metrics(sqlite_url: str) -> None:
    first, second = Probe(), Probe()
    async with (
        running_service("limiter", sqlite_url, extra_parts=first.parts()) as one,
        running_service("gateway", sqlite_url, extra_parts=second.parts()) as two,
    ):
        assert one.app.metrics_port != two.app.metrics_port
        await ProbeClient(one.channel).unary("Echo")(StringValue())
        for _ in range(2):
            await ProbeClient(two.channel).unary("Echo")(StringValue())
        labels = {"grpc_service": SERVICE, "grpc_method": "Echo", "grpc_type": "unary", "grpc_code": "OK"}
        assert value(await scrape(one), "grpc_server_handled_total", **labels) == 1
        assert value(await scrape(two), "grpc_server_handled_total", **labels) == 2
        assert value(await scrape(two), "foundation_store_writer_queue_bound") is None, (
            "the gateway has no store"
        )


async def test_metrics_can_be_turned_off(sqlite_url: str) -> None:
    async with running_service("cache", sqlite_url, cache={"metrics_port": -1}) as svc:
        assert svc.app.metrics_port is None
