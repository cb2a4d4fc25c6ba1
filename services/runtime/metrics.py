"""Prometheus metrics of one process (one ServiceApp): its own CollectorRegistry, served over HTTP.

Each app has its own registry, so two apps in one test process never clash. gRPC server metrics use the
names of go-grpc-prometheus (`grpc_server_handled_total`, `grpc_server_handling_seconds`) so existing
dashboards work; everything else is `foundation_*`. State that other parts already count (the store's
writer, the resource manager, the supervisor, admission, events) is read at scrape time by collectors
instead of being counted twice.
"""

from __future__ import annotations

import dataclasses
import socket
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING
from wsgiref.simple_server import WSGIRequestHandler, make_server

import grpc
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import ThreadingWSGIServer
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from services.runtime.admission import Admission
    from services.runtime.events import EventPublisher
    from services.runtime.resources import ResourceManager
    from services.runtime.store import Store
    from services.runtime.supervisor import Supervisor

LATENCY_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
"""Seconds. Starts at 100 µs: the services answer most calls well under the default buckets' 5 ms."""

RESOURCE_STATES = ("normal", "moderate", "severe")


HTTP_POLL_INTERVAL_S = 0.05
"""How often the HTTP thread checks for shutdown (prometheus-client's own server waits 0.5 s to stop)."""


class _QuietHandler(WSGIRequestHandler):
    """No access log line per scrape."""

    def log_message(self, format: str, *args: object) -> None:
        pass


class _MetricsServer(ThreadingWSGIServer):
    """One thread per scrape, IPv4."""


class _MetricsServer6(_MetricsServer):
    """One thread per scrape, IPv6."""

    address_family = socket.AF_INET6


class _CallbackCollector(Collector):
    """A collector whose metric families come from a function called at each scrape."""

    def __init__(self, fn: Callable[[], Iterable[Metric]]) -> None:
        self._fn = fn

    def collect(self) -> Iterable[Metric]:
        return list(self._fn())


class Metrics:
    """The metrics of one app: a private registry, metric factories and the HTTP endpoint."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._http: tuple[_MetricsServer, threading.Thread] | None = None

    def counter(self, name: str, doc: str, labels: Sequence[str] = ()) -> Counter:
        """A counter registered in this app's registry."""
        return Counter(name, doc, labelnames=tuple(labels), registry=self.registry)

    def gauge(self, name: str, doc: str, labels: Sequence[str] = ()) -> Gauge:
        """A gauge registered in this app's registry."""
        return Gauge(name, doc, labelnames=tuple(labels), registry=self.registry)

    def histogram(
        self,
        name: str,
        doc: str,
        labels: Sequence[str] = (),
        buckets: Sequence[float] = LATENCY_BUCKETS,
    ) -> Histogram:
        """A histogram registered in this app's registry (latency buckets by default)."""
        return Histogram(name, doc, labelnames=tuple(labels), buckets=tuple(buckets), registry=self.registry)

    def add_collector(self, fn: Callable[[], Iterable[Metric]]) -> None:
        """Registers `fn`, called at each scrape (in the HTTP thread) to produce metric families."""
        self.registry.register(_CallbackCollector(fn))

    def serve(self, host: str, port: int) -> int:
        """Starts the HTTP endpoint (`/metrics`) in a daemon thread; returns the bound port.

        Raises OSError when the port cannot be bound.
        """
        server_class = _MetricsServer6 if ":" in host else _MetricsServer
        server = make_server(
            host, port, make_wsgi_app(self.registry), server_class, handler_class=_QuietHandler
        )
        thread = threading.Thread(
            target=server.serve_forever, args=(HTTP_POLL_INTERVAL_S,), name="metrics-http", daemon=True
        )
        thread.start()
        self._http = (server, thread)
        return int(server.server_port)

    def close(self) -> None:
        """Stops the HTTP endpoint, if started. Blocks briefly (run it in a thread from async code)."""
        if self._http is None:
            return
        server, thread = self._http
        self._http = None
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _code_name(code: grpc.StatusCode) -> str:
    return str(code.name)


class MethodMetrics:
    """The pre-resolved metric children of one RPC method (label lookups once, not per call)."""

    __slots__ = ("_handled", "_handled_by_code", "_labels", "_latency")

    def __init__(self, rpc: RpcMetrics, service: str, method: str, kind: str) -> None:
        self._labels = (service, method, kind)
        self._handled = rpc.handled
        self._handled_by_code: dict[grpc.StatusCode, Counter] = {}
        self._latency = rpc.latency.labels(service, method, kind)

    def record(self, code: grpc.StatusCode, seconds: float) -> None:
        """Counts one finished call with its status code and observes its duration."""
        child = self._handled_by_code.get(code)
        if child is None:
            child = self._handled.labels(*self._labels, _code_name(code))
            self._handled_by_code[code] = child
        child.inc()
        self._latency.observe(seconds)


class RpcMetrics:
    """gRPC server metrics by method and code: calls handled and their latency."""

    def __init__(self, metrics: Metrics) -> None:
        labels = ("grpc_service", "grpc_method", "grpc_type")
        self.handled = metrics.counter(
            "grpc_server_handled_total",
            "RPCs completed on the server, by status code",
            (*labels, "grpc_code"),
        )
        self.latency = metrics.histogram(
            "grpc_server_handling_seconds", "Time from the handler's start to its status, by method", labels
        )

    def method(self, full_method: str, kind: str) -> MethodMetrics:
        """Children for `/pkg.Service/Method` of kind `unary`, `server_stream`, `client_stream`, `bidi_stream`."""
        service, _, method = full_method.lstrip("/").partition("/")
        return MethodMetrics(self, service, method, kind)


_WRITER_COUNTERS = frozenset(
    {"batches", "operations", "transactions", "retries", "failures", "skipped", "rejected", "isolations"}
)
"""Cumulative WriterStats fields (exported as counters); every other numeric field is a gauge."""


def writer_collector(store: Store) -> Callable[[], Iterable[Metric]]:
    """The store's WriterStats: each numeric field as `foundation_store_writer_<field>`."""

    def collect() -> Iterable[Metric]:
        stats = store.stats()
        if dataclasses.is_dataclass(stats) and not isinstance(stats, type):
            values = dataclasses.asdict(stats)
        else:
            values = dict(vars(stats))
        for field, value in values.items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                continue
            name = f"foundation_store_writer_{field}"
            if field in _WRITER_COUNTERS:
                yield CounterMetricFamily(name, f"store writer: {field}", value=value)
            else:
                yield GaugeMetricFamily(name, f"store writer: {field}", value=value)

    return collect


def resources_collector(resources: ResourceManager) -> Callable[[], Iterable[Metric]]:
    """Each registered resource's bound, use, ratio and state, and the overall state."""

    def collect() -> Iterable[Metric]:
        used = GaugeMetricFamily(
            "foundation_resource_used", "measured use of a bounded resource", labels=["resource"]
        )
        bound = GaugeMetricFamily("foundation_resource_bound", "bound of a resource", labels=["resource"])
        ratio = GaugeMetricFamily("foundation_resource_ratio", "used / bound", labels=["resource"])
        state = GaugeMetricFamily(
            "foundation_resource_state", "1 for the resource's current state", labels=["resource", "state"]
        )
        failures = CounterMetricFamily(
            "foundation_resource_measure_failures", "measurements that raised", labels=["resource"]
        )
        for usage in resources.usage():
            used.add_metric([usage.name], usage.used)
            bound.add_metric([usage.name], usage.bound)
            ratio.add_metric([usage.name], usage.ratio)
            failures.add_metric([usage.name], usage.measure_failures)
            for name in RESOURCE_STATES:
                state.add_metric([usage.name, name], 1.0 if usage.state == name else 0.0)
        overall = GaugeMetricFamily(
            "foundation_resource_overall_state", "1 for the worst state over all resources", labels=["state"]
        )
        for name in RESOURCE_STATES:
            overall.add_metric([name], 1.0 if resources.state == name else 0.0)
        return [used, bound, ratio, state, failures, overall]

    return collect


def supervisor_collector(supervisor: Supervisor) -> Callable[[], Iterable[Metric]]:
    """Supervised tasks (runs, failures, restarts, running) and worker pools (all counters)."""

    def collect() -> Iterable[Metric]:
        runs = CounterMetricFamily("foundation_task_runs", "runs of a supervised task", labels=["task"])
        failures = CounterMetricFamily(
            "foundation_task_failures", "failed runs of a supervised task", labels=["task"]
        )
        restarts = CounterMetricFamily(
            "foundation_task_restarts", "restarts of a supervised task", labels=["task"]
        )
        up = GaugeMetricFamily("foundation_task_up", "1 while a supervised task is running", labels=["task"])
        for task in supervisor.stats():
            runs.add_metric([task.name], task.runs)
            failures.add_metric([task.name], task.failures)
            restarts.add_metric([task.name], task.restarts)
            up.add_metric([task.name], 1.0 if task.state == "running" else 0.0)
        jobs = CounterMetricFamily(
            "foundation_pool_jobs", "worker pool jobs by outcome", labels=["pool", "outcome"]
        )
        active = GaugeMetricFamily("foundation_pool_active", "worker pool jobs running", labels=["pool"])
        queued = GaugeMetricFamily("foundation_pool_queued", "worker pool jobs waiting", labels=["pool"])
        for pool in supervisor.pool_stats():
            for outcome in ("started", "completed", "failed", "timed_out", "cancelled", "rejected"):
                jobs.add_metric([pool.name, outcome], getattr(pool, outcome))
            active.add_metric([pool.name], pool.active)
            queued.add_metric([pool.name], pool.queued)
        return [runs, failures, restarts, up, jobs, active, queued]

    return collect


def admission_collector(admission: Admission) -> Callable[[], Iterable[Metric]]:
    """Calls in flight and calls rejected by admission, by method."""

    def collect() -> Iterable[Metric]:
        in_flight = GaugeMetricFamily(
            "grpc_server_in_flight", "RPCs being handled now", labels=["grpc_service", "grpc_method"]
        )
        rejected = CounterMetricFamily(
            "foundation_admission_rejected",
            "calls refused because the method's in-flight bound was reached",
            labels=["grpc_service", "grpc_method"],
        )
        for gate in admission.gates():
            service, _, method = gate.method.lstrip("/").partition("/")
            in_flight.add_metric([service, method], gate.in_flight)
            rejected.add_metric([service, method], gate.rejected)
        return [in_flight, rejected]

    return collect


def events_collector(events: EventPublisher) -> Callable[[], Iterable[Metric]]:
    """Events emitted, published, dropped (by reason) and buffered."""

    def collect() -> Iterable[Metric]:
        stats = events.stats()
        emitted = CounterMetricFamily("foundation_events_emitted", "events emitted by this process")
        emitted.add_metric([], stats.emitted)
        published = CounterMetricFamily("foundation_events_published", "events handed to the sink")
        published.add_metric([], stats.published)
        dropped = CounterMetricFamily(
            "foundation_events_dropped", "events dropped, by reason", labels=["reason"]
        )
        for reason, count in sorted(stats.dropped.items()):
            dropped.add_metric([reason], count)
        buffered = GaugeMetricFamily("foundation_events_buffered", "events waiting for the sink")
        buffered.add_metric([], stats.buffered)
        return [emitted, published, dropped, buffered]

    return collect
