"""ServiceApp start and stop: one-line startup errors, hook order, what each step leaves behind, serve()."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
from collections.abc import Iterator, Sequence
from pathlib import Path

import grpc
import pytest
import sqlalchemy as sa
from grpc_health.v1 import health_pb2

from services.runtime.events import CloudEvent
from services.runtime.server import ServiceApp, StartupError, serve
from services.runtime.service import ServiceParts
from tests.harness import eventually, health_of, running_service, service_settings


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port on 127.0.0.1 that something else is listening on."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


async def test_a_port_in_use_is_a_one_line_startup_error(sqlite_url: str, taken_port: int) -> None:
    stopped: list[str] = []

    async def on_stop() -> None:
        stopped.append("on_stop")

    settings = service_settings("limiter", sqlite_url, limiter={"port": taken_port})
    parts = ServiceParts(register=[], service_names=[], on_stop=[on_stop])
    app = ServiceApp("limiter", settings, extra_parts=parts)
    with pytest.raises(StartupError) as failed:
        await app.start()
    assert str(failed.value) == f"port {taken_port} on 127.0.0.1 is already in use"
    assert app.state == "stopped"
    assert stopped == [], "on_start never ran, so there is nothing for on_stop to undo"


async def test_a_metrics_port_in_use_is_a_startup_error_and_frees_the_grpc_port(
    sqlite_url: str, taken_port: int
) -> None:
    settings = service_settings("cache", sqlite_url, cache={"metrics_port": taken_port})
    app = ServiceApp("cache", settings)
    with pytest.raises(StartupError) as failed:
        await app.start()
    assert str(failed.value) == f"metrics port {taken_port} on 127.0.0.1 is already in use"
    with socket.socket() as probe:  # the gRPC port it had bound was released by the teardown
        probe.bind(("127.0.0.1", app.port))


async def test_an_unreachable_database_is_a_one_line_startup_error_without_the_password() -> None:
    settings = service_settings(
        "signals", "postgresql://postgres:s3cret@127.0.0.1:1/foundation", store={"migrate_on_start": True}
    )
    with pytest.raises(StartupError) as failed:
        await ServiceApp("signals", settings).start()
    message = str(failed.value)
    assert "\n" not in message
    assert "127.0.0.1:1" in message
    assert "s3cret" not in message


async def test_unknown_service_is_refused() -> None:
    with pytest.raises(StartupError, match="unknown service 'nope'"):
        ServiceApp("nope", service_settings("limiter", "sqlite:///unused.db"))


async def test_hooks_run_in_order_around_serving_and_the_store(db_url: str) -> None:
    seen: list[str] = []
    holder: dict[str, ServiceApp] = {}

    def hook(name: str):
        async def run() -> None:
            app = holder["app"]
            store_ok = await app.context.store.ping() if app.context.store is not None else None
            serving = app.context.health.status()
            seen.append(
                f"{name} store={store_ok} serving={serving == health_pb2.HealthCheckResponse.SERVING}"
            )

        return run

    parts = ServiceParts(
        register=[],
        service_names=[],
        on_start=[hook("start-1"), hook("start-2")],
        on_stop=[hook("stop-1"), hook("stop-2")],
    )
    settings = service_settings("pool", db_url)
    app = holder["app"] = ServiceApp("pool", settings, extra_parts=parts)
    await app.start()
    assert seen == ["start-1 store=True serving=False", "start-2 store=True serving=False"]
    await app.stop()
    assert seen[2:] == ["stop-2 store=True serving=False", "stop-1 store=True serving=False"]


async def test_a_failing_start_hook_undoes_the_start(sqlite_url: str) -> None:
    async def broken() -> None:
        raise RuntimeError("cannot warm up")

    app = ServiceApp(
        "limiter",
        service_settings("limiter", sqlite_url),
        extra_parts=ServiceParts(register=[], service_names=[], on_start=[broken]),
    )
    with pytest.raises(RuntimeError, match="cannot warm up"):
        await app.start()
    assert app.state == "stopped"
    assert app.context.store is not None
    with pytest.raises(Exception, match="clos"):  # the store was closed by the teardown
        await app.context.store.transaction(lambda conn: conn.execute(sa.text("SELECT 1")))


async def test_buffered_events_reach_the_sink_at_stop(sqlite_url: str) -> None:
    received: list[CloudEvent] = []

    async def sink(batch: Sequence[CloudEvent]) -> None:
        received.extend(batch)

    async with running_service("cache", sqlite_url) as svc:
        events = svc.app.context.events
        events.set_sink(sink)
        for n in range(5):
            events.emit("evicted", {"n": n})
    assert [e.data["n"] for e in received] == list(range(5))
    assert received[0].type == "foundation.cache.evicted"


async def test_stop_is_idempotent_and_concurrent_callers_all_return(sqlite_url: str) -> None:
    app = ServiceApp("signals", service_settings("signals", sqlite_url))
    await app.start()
    await asyncio.wait_for(asyncio.gather(app.stop(), app.stop(), app.stop()), 10)
    await app.stop()
    assert app.state == "stopped"
    never_started = ServiceApp("signals", service_settings("signals", sqlite_url))
    await asyncio.wait_for(never_started.stop(), 1)


async def test_the_gateway_opens_no_store(tmp_path: Path) -> None:
    missing = tmp_path / "never-created" / "x.db"
    async with running_service("gateway", f"sqlite:///{missing}") as svc:
        assert svc.app.context.store is None
        assert await health_of(svc.channel) == health_pb2.HealthCheckResponse.SERVING
    assert not missing.exists()


async def test_a_fresh_database_is_migrated_at_start(tmp_path: Path) -> None:
    path = tmp_path / "fresh" / "foundation.db"
    async with running_service("signals", f"sqlite:///{path}", store={"migrate_on_start": True}) as svc:
        assert await health_of(svc.channel) == health_pb2.HealthCheckResponse.SERVING
    engine = sa.create_engine(f"sqlite:///{path}")
    try:
        assert "alembic_version" in sa.inspect(engine).get_table_names()
    finally:
        engine.dispose()


@pytest.mark.parametrize(("signum", "metrics_port"), [(signal.SIGTERM, 0), (signal.SIGINT, -1)])
async def test_serve_prints_ready_once_serving_and_exits_0_on_a_signal(
    sqlite_url: str, capsys: pytest.CaptureFixture[str], signum: int, metrics_port: int
) -> None:
    settings = service_settings("cache", sqlite_url, cache={"metrics_port": metrics_port})
    serving = asyncio.ensure_future(serve("cache", settings))
    out = ""

    def ready() -> bool:
        nonlocal out
        out += capsys.readouterr().out
        return "\n" in out or serving.done()

    await eventually(ready, within=10)
    [line] = out.splitlines()
    kind, service, address, metrics = line.split(" ")
    assert (kind, service) == ("READY", "cache")
    assert metrics == "metrics=off" if metrics_port == -1 else int(metrics.removeprefix("metrics=")) > 0
    host, port = address.rsplit(":", 1)
    assert host == "127.0.0.1"
    assert int(port) > 0
    async with grpc.aio.insecure_channel(address) as channel:
        assert await health_of(channel) == health_pb2.HealthCheckResponse.SERVING
    os.kill(os.getpid(), signum)
    assert await asyncio.wait_for(serving, 10) == 0


async def test_serve_reports_a_startup_failure_on_one_line(
    sqlite_url: str, taken_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = service_settings("pool", sqlite_url, pool={"port": taken_port})
    assert await serve("pool", settings) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    errors = [line for line in captured.err.splitlines() if line.startswith("error: ")]
    assert errors == [f"error: port {taken_port} on 127.0.0.1 is already in use"]
    assert "Traceback" not in captured.err


async def test_logs_are_json_lines_on_stderr_at_the_configured_level(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    async with running_service("pool", sqlite_url, log_format="json", log_level="info"):
        pass
    captured = capsys.readouterr()
    assert captured.out == ""
    records = [json.loads(line) for line in captured.err.splitlines() if line.startswith("{")]
    serving = [r for r in records if r.get("event") == "serving"]
    assert serving
    assert serving[0]["service"] == "pool"
    assert serving[0]["level"] == "info"
    assert serving[0]["timestamp"].endswith("Z")

    async with running_service("pool", sqlite_url, log_format="json", log_level="warning"):
        pass
    assert '"serving"' not in capsys.readouterr().err
