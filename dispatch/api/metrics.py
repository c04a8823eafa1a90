"""Prometheus metrics: request latency by route, command outcomes by code, and figures
read from the runtime at scrape time (projection positions, log heads, matcher counters).

Each app has its own registry, so building several apps in one process (tests) is fine.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import anyio.to_thread
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dispatch.api.events import EventHub
from dispatch.api.protocol import REFUSALS
from dispatch.runtime import Runtime

PROBE_EVERY_S = 0.5
PROBE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
_MATCHER_COUNTERS = ("offers", "offer_expiries", "request_expiries", "ticks", "pings")
# Label values come from a closed set: any other method is "OTHER", an unmatched path
# "unmatched", so no request can create new series.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class RuntimeCollector(Collector):
    def __init__(self, runtime: Runtime, hub: EventHub) -> None:
        self.runtime, self.hub = runtime, hub

    def collect(self) -> Iterator[Metric]:
        runtime = self.runtime
        position = GaugeMetricFamily(
            "dispatch_projection_position",
            "Last log position every view includes.",
            labels=["shard"],
        )
        head = GaugeMetricFamily("dispatch_log_head", "Last log position.", labels=["shard"])
        age = GaugeMetricFamily(
            "dispatch_views_age_seconds",
            "Seconds since the views last read the shard to its end (from when that read "
            "began; +Inf before the first); over DISPATCH_AUTH_REVOCATION_BOUND_S the "
            "shard's principals get 503s.",
            labels=["shard"],
        )
        for shard in range(runtime.settings.shards):
            position.add_metric([str(shard)], runtime.views.position(shard))
            # +Inf for a shard never read to its end: an alert on the bound fires for it too
            age.add_metric([str(shard)], runtime.views_age(shard))
            try:
                last = runtime.head(shard)
            except Exception:  # unreadable now: /readyz says why
                last = None
            if last is not None:
                head.add_metric([str(shard)], last)
        yield position
        yield head
        yield age
        yield from self._matchers()
        subscribers = GaugeMetricFamily("dispatch_api_stream_subscribers", "Open event streams.")
        subscribers.add_metric([], self.hub.count())
        yield subscribers
        refusals = CounterMetricFamily(
            "dispatch_api_protocol_refusals",
            "Requests the HTTP protocol refused before the app saw them, by status: 400 "
            "unreadable, 408 headers too late, 413 queued bodies too large, 431 headers too "
            "large, 503 too many pipelined (this process, since it started).",
            labels=["code"],
        )
        for code, count in sorted(REFUSALS.items()):
            refusals.add_metric([code], count)
        yield refusals
        drivers = GaugeMetricFamily(
            "dispatch_view_drivers", "Drivers by status (drivers view).", labels=["status"]
        )
        with runtime.views.lock:
            by_status = dict(runtime.views.drivers.by_status)
        for status, count in sorted(by_status.items()):
            drivers.add_metric([status], count)
        yield drivers

    def _matchers(self) -> Iterator[Metric]:
        engine = self.runtime.engine
        if engine is None:
            return
        counters = {
            name: CounterMetricFamily(
                f"dispatch_matcher_{name}", f"Matcher {name.replace('_', ' ')}.", labels=["shard"]
            )
            for name in _MATCHER_COUNTERS
        }
        pending = GaugeMetricFamily(
            "dispatch_matcher_pending_rides", "Rides waiting.", labels=["shard"]
        )
        offers = GaugeMetricFamily("dispatch_matcher_open_offers", "Offers open.", labels=["shard"])
        for shard, worker in engine.workers.items():
            matcher = worker.matcher
            for name, family in counters.items():
                family.add_metric([str(shard)], getattr(matcher.stats, name))
            pending.add_metric([str(shard)], len(matcher.pending))
            offers.add_metric([str(shard)], len(matcher.offers))
        yield from counters.values()
        yield pending
        yield offers


class ApiMetrics:
    def __init__(self, runtime: Runtime, hub: EventHub) -> None:
        self.registry = CollectorRegistry()
        self.latency = Histogram(
            "dispatch_api_request_duration_seconds",
            "Request latency by route (streams left out).",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.outcomes = Counter(
            "dispatch_api_command_outcomes",
            "Command outcomes by command type and code (ok, a rejection code, or timeout).",
            ["command", "code"],
            registry=self.registry,
        )
        self.pings = Counter(
            "dispatch_api_pings", "Location pings accepted.", registry=self.registry
        )
        self.loop_lag = Histogram(
            "dispatch_api_event_loop_lag_seconds",
            "How late the event loop woke a probe that slept PROBE_EVERY_S: every request "
            "handled on the loop waits as long.",
            buckets=PROBE_BUCKETS,
            registry=self.registry,
        )
        self.thread_queue = Histogram(
            "dispatch_api_threadpool_queue_seconds",
            "How long a probe's no-op waited for a thread of the pool that runs the sync "
            "endpoints and dependencies (anyio's), from its submission to its start.",
            buckets=PROBE_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(RuntimeCollector(runtime, hub))

    def render(self) -> bytes:
        return generate_latest(self.registry)

    async def probe(self, every_s: float = PROBE_EVERY_S) -> None:
        """Until cancelled: each ``every_s``, the loop's lateness and the thread pool's
        queue time, as a request arriving then would meet them."""
        while True:
            # perf_counter, not loop.time(): uvloop's clock counts whole milliseconds
            asked = time.perf_counter()
            await asyncio.sleep(every_s)
            self.loop_lag.observe(max(0.0, time.perf_counter() - asked - every_s))
            submitted = time.perf_counter()
            began = await anyio.to_thread.run_sync(time.perf_counter)
            self.thread_queue.observe(max(0.0, began - submitted))


class LatencyMiddleware:
    """Observes each request's duration under its route template (not the raw path) and
    its method, when it is a standard one."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics, skip: frozenset[str]) -> None:
        self.app, self.metrics, self.skip = app, metrics, skip

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_watch)
        finally:
            route: Any = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            if path not in self.skip:
                method = scope["method"] if scope["method"] in KNOWN_METHODS else "OTHER"
                self.metrics.latency.labels(method, path, str(status)).observe(
                    time.perf_counter() - started
                )
