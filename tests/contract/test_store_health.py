"""Health follows the store: while the database refuses connections every name reports NOT_SERVING, and
SERVING again once it is back. Real PostgreSQL, really refusing (ALLOW_CONNECTIONS false + backends
terminated), on a database of its own."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
import structlog
from grpc_health.v1 import health_pb2

from services.runtime.errors import ResourceExhausted
from services.runtime.health import DOWN_AFTER, HealthReporter
from services.runtime.store import Store
from tests.harness import eventually, health_of, running_service
from tests.runtime.storekit import open_store

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@pytest.fixture
def own_pg_database(pg_url: str) -> Iterator[tuple[str, sa.Engine]]:
    """A fresh database (the service migrates it at start) and an admin engine to take it down."""
    admin = sa.create_engine(sa.make_url(pg_url).set(database="postgres"), isolation_level="AUTOCOMMIT")
    name = f"foundation_health_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.make_url(pg_url).set(database=name).render_as_string(hide_password=False)
    try:
        yield url, admin
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true'))
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _set_reachable(admin: sa.Engine, url: str, reachable: bool) -> None:
    name = sa.make_url(url).database
    with admin.connect() as conn:
        conn.execute(sa.text(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS {str(reachable).lower()}'))
        if not reachable:
            conn.execute(
                sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :name"),
                {"name": name},
            )


@pytest.mark.pg
async def test_health_is_not_serving_while_the_database_is_down(
    own_pg_database: tuple[str, sa.Engine],
) -> None:
    url, admin = own_pg_database
    name = "foundation.signals.v1.SignalService"
    async with running_service(
        "signals", url, store={"migrate_on_start": True}, health_probe_interval_s=0.1
    ) as svc:
        assert await health_of(svc.channel) == SERVING

        _set_reachable(admin, url, False)
        await eventually(lambda: _all_are(svc.channel, [("", NOT_SERVING), (name, NOT_SERVING)]), within=10)
        assert not svc.app.context.health.store_ok

        _set_reachable(admin, url, True)
        await eventually(lambda: _all_are(svc.channel, [("", SERVING), (name, SERVING)]), within=10)


async def _all_are(channel, expected: list[tuple[str, int]]) -> bool:
    for service, status in expected:
        if await health_of(channel, service) != status:
            return False
    return True


@pytest.mark.pg
async def test_one_failed_ping_is_not_an_outage(own_pg_database: tuple[str, sa.Engine]) -> None:
    url, admin = own_pg_database
    reporter = HealthReporter(structlog.get_logger("test"))
    store = open_store(url)
    try:
        assert await reporter.probe_store(store)
        _set_reachable(admin, url, False)
        verdicts = [await reporter.probe_store(store, timeout=2) for _ in range(DOWN_AFTER)]
        assert verdicts == [True] * (DOWN_AFTER - 1) + [False]
        assert not reporter.store_ok
        _set_reachable(admin, url, True)
        await eventually(
            lambda: reporter.probe_store(store, timeout=2), within=10
        )  # back at the first success
    finally:
        await store.close()


@pytest.mark.pg
async def test_a_ping_answers_while_every_read_waits_behind_a_lock(pg_url: str) -> None:
    """Reads piled up behind a lock hold every read thread and fill the queue; the database still answers
    the ping (its own thread and connection), so health stays SERVING."""
    table = f"held_{uuid.uuid4().hex[:8]}"
    locker = sa.create_engine(pg_url)
    store = open_store(pg_url, writer_queue=2, read_threads=2)
    try:
        with locker.connect() as conn:
            conn.execute(sa.text(f"CREATE TABLE {table} (x int)"))
            conn.commit()
            conn.execute(sa.text(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"))
            blocked = [
                asyncio.ensure_future(
                    store.read(lambda c: c.execute(sa.text(f"SELECT * FROM {table}")).all())
                )
                for _ in range(2)
            ]
            await asyncio.sleep(0)  # a yield, not a wait: both reads take their places in the queue first
            await eventually(lambda: _queue_full(store))
            assert await store.ping(timeout=2)
            reporter = HealthReporter(structlog.get_logger("test"))
            assert [await reporter.probe_store(store, timeout=2) for _ in range(DOWN_AFTER)] == [
                True
            ] * DOWN_AFTER
            conn.rollback()
        await asyncio.gather(*blocked, return_exceptions=True)
    finally:
        await store.close()
        with locker.connect() as conn:
            conn.execute(sa.text(f"DROP TABLE IF EXISTS {table}"))
            conn.commit()
        locker.dispose()


async def _queue_full(store: Store) -> bool:
    try:
        await store.read(lambda c: c.execute(sa.text("SELECT 1")).scalar(), timeout=0.5)
    except ResourceExhausted:
        return True
    return False


class SilentProxy:
    """A TCP proxy in front of PostgreSQL that can stop forwarding, without closing anything, either the
    connections it has (a failover or partition leaves them hanging) or every connection."""

    def __init__(self, port: int = 5432) -> None:
        self._target = port
        self._connections: set[object] = set()
        self._silenced: set[object] = set()
        self.silent_to_all = False
        self._server: asyncio.Server | None = None
        self._pumps: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    def silence_existing(self) -> None:
        self._silenced |= self._connections

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for pump in self._pumps:
            pump.cancel()
        await asyncio.gather(*self._pumps, return_exceptions=True)

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection("127.0.0.1", self._target)
        tag = object()
        self._connections.add(tag)
        for reader, writer in ((client_r, server_w), (server_r, client_w)):
            pump = asyncio.ensure_future(self._pump(reader, writer, tag))
            self._pumps.add(pump)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, tag: object) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                if self.silent_to_all or tag in self._silenced:
                    await asyncio.Event().wait()  # holds the bytes forever, like a vanished peer
                writer.write(data)
                await writer.drain()


@pytest.mark.pg
async def test_pings_survive_connections_left_hanging_and_never_block_close(pg_url: str) -> None:
    proxy = SilentProxy(sa.make_url(pg_url).port or 5432)
    port = await proxy.start()
    url = sa.make_url(pg_url).set(host="127.0.0.1", port=port).render_as_string(hide_password=False)
    store = await asyncio.to_thread(open_store, url)  # it connects: the proxy runs on this loop
    try:
        assert await store.read(lambda c: c.execute(sa.text("SELECT 1")).scalar(), timeout=5) == 1
        assert await store.ping(timeout=2)
        proxy.silence_existing()  # the pooled connections now hang; new ones work
        assert await store.ping(timeout=2)  # on a connection of its own
        proxy.silent_to_all = True  # nothing answers at all
        assert [await store.ping(timeout=0.3) for _ in range(2)] == [False, False]
        proxy.silent_to_all = False  # back; the two pings above still hang on their connections
        assert await store.ping(timeout=2)
    finally:
        await asyncio.wait_for(store.close(), timeout=10)  # the hanging pings' threads do not hold it
        await proxy.close()
