"""A worker process's metrics and health over HTTP (`dispatch worker --metrics-port P`):
``/metrics`` (Prometheus text), ``/livez`` and ``/readyz`` (JSON, 503 with the reason when
not), served on a thread of the process from prometheus_client's WSGI app and the standard
library's WSGI server. docs/OPERATIONS.md lists every metric.

What the worker's loop counts (``KafkaWorker.stats``) is read at scrape time; batch
latency and size are observed as each batch commits (``KafkaWorker.batch_observers``).
The scrape thread only reads: counts, the shards' matchers' sizes and plain dicts copied
first, never the worker's Kafka clients (not thread-safe)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, Histogram, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from dispatch.adapters.kafka.worker import KafkaWorker
from dispatch.shard.worker import BatchReport

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
SIZE_BUCKETS = (0, 1, 5, 10, 50, 100, 500, 1_000, 5_000, 10_000)
# The loop not turned for longer: not live. The consumer's max_poll_interval: past it the
# group expels the member anyway; a restore (seconds to tens of seconds) stays well within.
LIVE_S = 120.0
Start = Callable[[Any, Callable[[str, list[tuple[str, str]]], Any]], Iterable[bytes]]


class WorkerCollector(Collector):
    """The worker's counts and its shards' state, read when scraped."""

    def __init__(self, worker: KafkaWorker) -> None:
        self.worker = worker

    def collect(self) -> Iterator[Metric]:
        stats = self.worker.stats
        tx = CounterMetricFamily(
            "dispatch_worker_transactions",
            "Shard batches by how their transaction ended: committed, aborted (decided "
            "again) or fenced (the shard's producer lost).",
            labels=["result"],
        )
        tx.add_metric(["committed"], stats.batches)
        tx.add_metric(["aborted"], stats.aborted)
        tx.add_metric(["fenced"], stats.fenced)
        yield tx
        for name, value, text in (
            ("commands", stats.commands, "Commands decided."),
            ("pings", stats.pings, "Location pings folded."),
            ("events", stats.events, "Events committed."),
            ("dead_letters", stats.dead_letters, "Records sent to dead-letters (poison)."),
            ("shards_opened", stats.opened, "Shard restores (each assignment opens one)."),
            ("shards_reopened", stats.reopened, "Shards reopened in place after a loss."),
        ):
            counter = CounterMetricFamily(f"dispatch_worker_{name}", text)
            counter.add_metric([], value)
            yield counter
        restore = GaugeMetricFamily(
            "dispatch_worker_restore_seconds",
            "How long the shard's last restore (checkpoint and tail) took.",
            labels=["shard"],
        )
        for shard, seconds in sorted(dict(stats.restored).items()):
            restore.add_metric([str(shard)], seconds)
        yield restore
        loop = GaugeMetricFamily(
            "dispatch_worker_loop_age_seconds",
            "Seconds since the worker's loop last turned (its scrapes are answered by a "
            "thread of their own, so a stuck loop shows here, not as a failed scrape).",
        )
        loop.add_metric([], max(0.0, time.monotonic() - stats.last_loop))
        yield loop
        lag = GaugeMetricFamily(
            "dispatch_worker_consumer_lag",
            "Records behind the partition's end as of its last fetch, by consumed topic.",
            labels=["shard", "topic"],
        )
        for (topic, partition), behind in sorted(dict(stats.lag).items()):
            lag.add_metric([str(partition), topic], behind)
        yield lag
        yield from self._shards()

    def _shards(self) -> Iterator[Metric]:
        hosted = GaugeMetricFamily("dispatch_worker_shards", "Shards this member hosts now.")
        waiting = GaugeMetricFamily(
            "dispatch_worker_waiting_rides", "Rides waiting for a driver.", labels=["shard"]
        )
        available = GaugeMetricFamily(
            "dispatch_worker_available_drivers", "Drivers available to offer.", labels=["shard"]
        )
        hosts = dict(self.worker.shards)
        hosted.add_metric([], len(hosts))
        for shard, host in sorted(hosts.items()):
            matcher = host.worker.matcher
            waiting.add_metric([str(shard)], len(matcher.pending))
            available.add_metric([str(shard)], len(matcher.available))
        yield hosted
        yield waiting
        yield available


class WorkerMetrics:
    """The registry of one worker: its collector and the batch histograms it observes."""

    def __init__(self, worker: KafkaWorker) -> None:
        self.worker = worker
        self.registry = CollectorRegistry()
        self.registry.register(WorkerCollector(worker))
        self.batch_seconds = Histogram(
            "dispatch_worker_batch_seconds",
            "A committed batch's time, decided and committed; kind: batch (records in) or "
            "tick (the matcher's tick alone).",
            ["kind"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "dispatch_worker_batch_size",
            "What a committed batch took in or wrote: commands, pings, events.",
            ["what"],
            buckets=SIZE_BUCKETS,
            registry=self.registry,
        )
        worker.batch_observers.append(self.observe)

    def observe(self, _shard: int, tick_alone: bool, seconds: float, report: BatchReport) -> None:
        self.batch_seconds.labels("tick" if tick_alone else "batch").observe(seconds)
        if not tick_alone:
            self.batch_size.labels("commands").observe(report.commands)
            self.batch_size.labels("pings").observe(report.pings)
            self.batch_size.labels("events").observe(report.events)


def liveness(worker: KafkaWorker, now: float | None = None) -> tuple[bool, dict[str, Any]]:
    """Live while the worker's loop turns (a restore or a rebalance may hold it a while)."""
    idle = (time.monotonic() if now is None else now) - worker.stats.last_loop
    if idle > LIVE_S:
        return False, {"status": "stuck", "reason": f"the loop has not turned for {idle:.0f} s"}
    return True, {"status": "ok"}


def readiness(worker: KafkaWorker) -> tuple[bool, dict[str, Any]]:
    """Ready once the group has given this member its shards (none is a ready standby) and
    none of them is paused: lost with its producer, or waiting to be read again."""
    hosted = sorted(dict(worker.shards))
    live, why = liveness(worker)
    if not live:  # a stuck loop serves nothing, whatever its shards
        return False, {"ready": False, "reason": why["reason"], "shards": hosted}
    if not worker.stats.assigned_once:
        return False, {"ready": False, "reason": "not yet given its shards by the group"}
    lost, unrewound = sorted(dict(worker.lost)), sorted(worker.rewinding)
    if lost:
        reason = f"shard(s) {lost} lost their producer: paused until reopened here or moved"
        return False, {"ready": False, "reason": reason, "shards": hosted}
    if unrewound:
        reason = f"shard(s) {unrewound} reopened, waiting to be read again"
        return False, {"ready": False, "reason": reason, "shards": hosted}
    return True, {"ready": True, "shards": hosted}


class MetricsServer:
    """Serves a worker's metrics and health on ``host:port`` from a thread of its own. It
    listens from construction (so a port in use fails before the worker is built, and a
    probe gets 503 "starting" while it is); ``start(worker)`` gives it the worker."""

    def __init__(self, host: str, port: int) -> None:
        self.worker: KafkaWorker | None = None
        self.metrics: WorkerMetrics | None = None
        self._server = make_server(
            host, port, self._app, server_class=_ThreadingServer, handler_class=_QuietHandler
        )
        self.port = self._server.server_port
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="worker-metrics", daemon=True
        )
        self._thread.start()

    def start(self, worker: KafkaWorker) -> MetricsServer:
        self.metrics = WorkerMetrics(worker)
        self.worker = worker
        return self

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _app(self, environ: dict[str, Any], start: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        worker, metrics = self.worker, self.metrics
        if path == "/metrics" and metrics is not None:
            return make_wsgi_app(metrics.registry)(environ, start)  # type: ignore[no-any-return]
        if path == "/metrics":
            return _json(start, 503, {"ready": False, "reason": "the worker is starting"})
        if path == "/livez":
            ok, body = (True, {"status": "starting"}) if worker is None else liveness(worker)
            return _json(start, 200 if ok else 503, body)
        if path == "/readyz":
            if worker is None:
                return _json(start, 503, {"ready": False, "reason": "the worker is starting"})
            ok, body = readiness(worker)
            return _json(start, 200 if ok else 503, body)
        return _json(start, 404, {"detail": "not found: /metrics, /livez or /readyz"})


_STATUS = {200: "200 OK", 404: "404 Not Found", 503: "503 Service Unavailable"}


def _json(start: Callable[..., Any], status: int, body: dict[str, Any]) -> list[bytes]:
    start(_STATUS[status], [("Content-Type", "application/json")])
    return [json.dumps(body).encode()]


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return None  # every scrape is not a log line
