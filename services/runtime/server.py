"""Runs one service process: `ServiceApp` (start, serve, graceful stop) and `serve()` (the CLI's entry).

Start (each step only after the previous one succeeded; a failure undoes what was started and raises
StartupError with one line): logging → metrics registry → store (migrated first if configured; not for
stateless processes) → resource manager (the writer queue registered, measured by a supervised job) →
supervisor → events → the service's `build(ctx)` → grpc.aio server (interceptor, keepalive, message
sizes) with servicers, health and reflection → bind → on_start hooks → serve → metrics HTTP → SERVING.

Stop (DESIGN.md §4): health NOT_SERVING → `ctx.shutting_down` set → open streams end UNAVAILABLE →
`server.stop(grace)` lets unary calls in flight finish → on_stop hooks (reverse) → supervisor → events
flushed → store closed (flushes the writer) → metrics endpoint closed. A second stop request during this
hurries it: calls still running are cancelled at once.
"""

from __future__ import annotations

import asyncio
import errno
import signal
import sys
import time
from typing import TYPE_CHECKING, Literal

import grpc
from grpc_reflection.v1alpha import reflection

from services.runtime import registry
from services.runtime.admission import Admission
from services.runtime.binding import bind_problem, host_port, server_options
from services.runtime.config import Settings
from services.runtime.events import EventPublisher
from services.runtime.gctune import tune_for_serving
from services.runtime.health import SERVICE_NAME as HEALTH_SERVICE_NAME
from services.runtime.health import HealthReporter
from services.runtime.interceptors import RuntimeInterceptor
from services.runtime.logs import configure_logging, get_logger
from services.runtime.metrics import (
    Metrics,
    RpcMetrics,
    admission_collector,
    events_collector,
    resources_collector,
    supervisor_collector,
    writer_collector,
)
from services.runtime.resources import ResourceManager
from services.runtime.service import ServiceContext, ServiceParts
from services.runtime.streams import StreamRegistry
from services.runtime.supervisor import Supervisor

if TYPE_CHECKING:
    from services.runtime.resources import StateChange
    from services.runtime.store import Store

HEALTH_PROBE_INTERVAL_S = 2.0
"""How often the store is pinged for health; a store outage shows within about this long."""
STREAMS_END_TIMEOUT_S = 1.0
"""Longest the shutdown waits for open streams to end after cancelling them."""
MIN_TEARDOWN_S = 1.0
"""Time left to hooks and background tasks after the grace period, however short the grace."""


class StartupError(Exception):
    """A service could not start; the message is one line meant for a person."""


class ServiceApp:
    """One service process: its server, store, supervisor and the rest of its runtime."""

    def __init__(
        self,
        service: str,
        settings: Settings,
        *,
        extra_parts: ServiceParts | None = None,
        health_probe_interval_s: float = HEALTH_PROBE_INTERVAL_S,
    ) -> None:
        if service not in registry.MODULES:
            raise StartupError(f"unknown service {service!r}; known: {', '.join(registry.MODULES)}")
        self.service = service
        self.settings = settings
        self.section = settings.service(service)
        self.extra_parts = extra_parts
        self.health_probe_interval_s = health_probe_interval_s
        self.address = ""
        self.port = 0
        self.metrics_port: int | None = None
        self.log = get_logger(f"foundation.{service}", service=service)
        self._state: Literal["new", "starting", "running", "stopping", "stopped"] = "new"
        self._context: ServiceContext | None = None
        self._parts: list[ServiceParts] = []
        self._server: grpc.aio.Server | None = None
        self._streams: StreamRegistry | None = None
        self._metrics: Metrics | None = None
        self._store: Store | None = None
        self._supervisor: Supervisor | None = None
        self._events: EventPublisher | None = None
        self._health: HealthReporter | None = None
        self._hooks_started = False
        self._stop_requested = asyncio.Event()
        self._hurry = asyncio.Event()
        self._stopped = asyncio.Event()
        self._settled = asyncio.Event()
        """Set when `start()` has finished, successfully or not."""
        self._stop_task: asyncio.Task[None] | None = None

    @property
    def context(self) -> ServiceContext:
        """The ServiceContext given to `build` (available once `start()` got that far)."""
        if self._context is None:
            raise RuntimeError("the app has not been started")
        return self._context

    @property
    def state(self) -> str:
        """`new`, `starting`, `running`, `stopping` or `stopped`."""
        return self._state

    async def start(self) -> None:
        """Starts everything and reports SERVING; StartupError (one line) for expected failures."""
        if self._state != "new":
            raise RuntimeError(f"cannot start an app that is {self._state}")
        self._state = "starting"
        try:
            await self._start()
        except BaseException:
            await self._teardown(grace=0.0)
            self._state = "stopped"
            self._stopped.set()
            raise
        else:
            self._state = "running"
        finally:
            self._settled.set()

    async def _start(self) -> None:
        settings = self.settings
        configure_logging(settings.log_level, settings.log_format)
        metrics = self._metrics = Metrics()
        store = self._store = await self._open_store()
        resources = ResourceManager(settings.resources)
        metrics.add_collector(resources_collector(resources))
        if store is not None:
            writer_queue = store
            resources.register(
                "store.writer_queue", settings.store.writer_queue, lambda: writer_queue.stats().queued
            )
            metrics.add_collector(writer_collector(store))
        supervisor = self._supervisor = Supervisor(self.log)
        metrics.add_collector(supervisor_collector(supervisor))
        supervisor.every("resources.measure", settings.resources.measure_interval_s, resources.measure)
        events = self._events = EventPublisher(self.service, log=self.log)
        metrics.add_collector(events_collector(events))
        supervisor.spawn("events.drain", events.run, restart="always")
        resources.add_listener(lambda change: self._on_resource_change(events, change))
        health = self._health = HealthReporter(self.log)
        ctx = self._context = ServiceContext(
            name=self.service,
            settings=settings,
            store=store,
            supervisor=supervisor,
            resources=resources,
            metrics=metrics,
            events=events,
            health=health,
            shutting_down=asyncio.Event(),
            log=self.log,
        )
        self._parts = [registry.builder(self.service)(ctx)]
        if self.extra_parts is not None:
            self._parts.append(self.extra_parts)
        names = [name for part in self._parts for name in part.service_names]

        admission = Admission(
            max_in_flight=self.section.max_in_flight, max_streams=self.section.max_streams, domain=ctx.domain
        )
        metrics.add_collector(admission_collector(admission))
        streams = self._streams = StreamRegistry(ctx.domain)
        interceptor = RuntimeInterceptor(
            domain=ctx.domain,
            log=self.log,
            admission=admission,
            streams=streams,
            rpc_metrics=RpcMetrics(metrics),
        )
        server = self._server = grpc.aio.server(
            interceptors=[interceptor], options=server_options(self.section)
        )
        for part in self._parts:
            for register in part.register:
                register(server)
        health.add_to_server(server)
        await health.add_services(names)
        reflection.enable_server_reflection([*names, HEALTH_SERVICE_NAME, reflection.SERVICE_NAME], server)
        self._bind(server)

        self._hooks_started = True
        for part in self._parts:
            for hook in part.on_start:
                await hook()
        await server.start()
        self._serve_metrics(metrics)
        if store is not None:
            probed = store
            supervisor.every(
                "health.store_probe", self.health_probe_interval_s, lambda: health.probe_store(probed)
            )
        await health.set_serving(True)
        self.log.info("serving", address=self.address, metrics_port=self.metrics_port, services=names)

    async def _open_store(self) -> Store | None:
        if self.service in registry.STATELESS:
            return None
        from services.runtime.store import Store, StoreUnavailable, safe_url
        from services.runtime.store.errors import one_line
        from services.runtime.store.migrate import upgrade

        url = self.settings.database_url
        try:
            if self.settings.store.migrate_on_start:
                await asyncio.to_thread(upgrade, url)
            return await asyncio.to_thread(Store.open, url, self.settings.store)
        except StoreUnavailable as exc:
            raise StartupError(_one_line(exc)) from exc
        except Exception as exc:
            problem = one_line(exc).replace(url, safe_url(url))
            raise StartupError(
                f"{self.service}: cannot open the store at {safe_url(url)}: {problem}"
            ) from exc

    def _bind(self, server: grpc.aio.Server) -> None:
        host, wanted = self.section.host, self.section.port
        try:
            self.port = server.add_insecure_port(host_port(host, wanted))
        except RuntimeError:
            self.port = 0
        if self.port == 0:
            raise StartupError(bind_problem(host, wanted))
        self.address = host_port(host, self.port)

    def _serve_metrics(self, metrics: Metrics) -> None:
        port = self.section.resolved_metrics_port()
        if port is None:
            return
        try:
            self.metrics_port = metrics.serve(self.section.host, port)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise StartupError(f"metrics port {port} on {self.section.host} is already in use") from exc
            raise StartupError(
                f"cannot serve metrics on {host_port(self.section.host, port)}: {exc}"
            ) from exc

    def _on_resource_change(self, events: EventPublisher, change: StateChange) -> None:
        """Publishes a state change as a signal (the resource manager logs it; the metrics read it)."""
        events.emit(
            "backpressure_changed",
            {
                "resource": change.name,
                "old_state": change.old,
                "new_state": change.new,
                "used": change.used,
                "bound": change.bound,
                "ratio": change.ratio,
            },
            subject=change.name,
        )

    def request_stop(self) -> None:
        """Begins a graceful stop (what SIGTERM/SIGINT do); a second request hurries it."""
        if self._stop_requested.is_set():
            self._hurry.set()
            return
        self._stop_requested.set()
        if self._state == "running" and self._stop_task is None:
            # The stop task outlives the supervisor it shuts down, so it cannot be one of its tasks.
            self._stop_task = asyncio.get_running_loop().create_task(self.stop(), name="app-stop")

    @property
    def stop_requested(self) -> bool:
        """True once a stop was requested (by a signal or `request_stop`)."""
        return self._stop_requested.is_set()

    async def stop(self, grace: float | None = None) -> None:
        """Graceful shutdown (idempotent; concurrent callers all return when it is done)."""
        if self._state == "new":
            self._state = "stopped"
            self._stopped.set()
        if self._state == "starting":
            await self._settled.wait()
        if self._state != "running":
            await self._stopped.wait()
            return
        self._state = "stopping"
        self._stop_requested.set()
        grace = self.settings.shutdown_grace_s if grace is None else grace
        began = time.monotonic()
        self.log.info("stopping", grace_s=grace)
        try:
            await self._teardown(grace)
        finally:
            self._state = "stopped"
            self._stopped.set()
            self.log.info("stopped", took_s=round(time.monotonic() - began, 3))

    async def wait_stopped(self) -> None:
        """Returns once the app has stopped."""
        await self._stopped.wait()

    async def _teardown(self, grace: float) -> None:
        """Stops whatever parts exist, in order; one failing step does not keep the others from running."""
        deadline = time.monotonic() + grace
        if self._health is not None:
            await self._step("health", self._health.enter_graceful_shutdown())
        if self._context is not None:
            self._context.shutting_down.set()
        if self._streams is not None:
            await self._step("streams", self._streams.end_all(min(STREAMS_END_TIMEOUT_S, max(grace, 0.05))))
        if self._server is not None:
            await self._step("server", self._stop_server(self._server, deadline))
        left = max(MIN_TEARDOWN_S, deadline - time.monotonic())
        if self._hooks_started:  # a start that failed earlier never ran on_start: nothing to undo
            for part in reversed(self._parts):
                for hook in reversed(part.on_stop):
                    await self._step("on_stop hook", asyncio.wait_for(hook(), timeout=left))
        if self._supervisor is not None:
            await self._step("supervisor", self._supervisor.shutdown(timeout=left))
        if self._events is not None:
            flush = 0.0 if self._hurry.is_set() else min(left, 2.0)
            await self._step("events", self._events.close(timeout=flush))
        if self._store is not None:
            await self._step("store", self._store.close())
        if self._metrics is not None:
            await self._step("metrics", asyncio.to_thread(self._metrics.close))

    async def _stop_server(self, server: grpc.aio.Server, deadline: float) -> None:
        # Two one-shot tasks raced against each other, both awaited or cancelled here: nothing outlives
        # this call, so they need no supervision.
        graceful = asyncio.ensure_future(server.stop(max(0.0, deadline - time.monotonic())))  # noqa: TID251
        hurry = asyncio.ensure_future(self._hurry.wait())  # noqa: TID251
        try:
            await asyncio.wait({graceful, hurry}, return_when=asyncio.FIRST_COMPLETED)
            if not graceful.done():
                self.log.info("second stop request: cancelling calls still running")
                await server.stop(0)
                await graceful
        finally:
            hurry.cancel()

    async def _step(self, what: str, step: object) -> None:
        try:
            await step  # type: ignore[misc]
        except Exception as exc:  # shutdown goes on; the failure is logged
            self.log.exception("shutdown step failed", step=what, error=_one_line(exc))


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


async def serve(service: str, settings: Settings) -> int:
    """Runs one service until SIGTERM/SIGINT; returns the exit code.

    Prints `READY <service> <host>:<port> metrics=<port|off>` on stdout once SERVING; on a startup failure
    prints one line `error: <message>` on stderr and returns 1.
    """
    try:
        app = ServiceApp(service, settings)
    except StartupError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 1
    loop = asyncio.get_running_loop()
    signals: list[signal.Signals] = []
    for signum in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(signum, app.request_stop)
            signals.append(signum)
        except (RuntimeError, ValueError):  # not the main thread: whoever runs us stops us
            app.log.warning("signal handlers not installed: not on the main thread", signal=signum.name)
    try:
        try:
            await app.start()
        except StartupError as exc:
            print(f"error: {exc}", file=sys.stderr, flush=True)
            return 1
        except Exception as exc:
            app.log.exception("startup failed")
            print(f"error: {service} failed to start: {_one_line(exc)}", file=sys.stderr, flush=True)
            return 1
        if app.stop_requested:  # a signal arrived while starting
            await app.stop()
            return 0
        tune_for_serving()
        metrics = "off" if app.metrics_port is None else str(app.metrics_port)
        print(f"READY {service} {app.address} metrics={metrics}", flush=True)
        await app.wait_stopped()
        return 0
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)
