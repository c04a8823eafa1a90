"""What the apps measured of the deployment: by endpoint, and the client's own pauses.

A call's latency runs from the time its app planned to send it to its last answer
(retries included), so a deployment that makes the apps wait shows it even when the client
sends late. The steady figures (``steady_*``) leave out the calls planned in the run's
first seconds (``ApiRunConfig.warmup_s``), when the whole city opens its streams at once.
How late the client sent (its *send lag*) is kept apart, with the event loop's own
stalls, so a slow client is not mistaken for a slow server.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from dispatch.simulator.stats import percentile

MAX_REASONS = 5  # distinct 429 reasons kept by endpoint (the limits met)
LOOP_PROBE_S = 0.05  # how often the event loop's stalls are probed


@dataclass
class Endpoint:
    calls: int = 0
    attempts: Counter[int] = field(default_factory=Counter)  # by status (0: no answer)
    finals: Counter[int] = field(default_factory=Counter)  # each call's last status
    latencies: list[float] = field(default_factory=list)
    send_lags: list[float] = field(default_factory=list)
    steady: list[float] = field(default_factory=list)  # latencies of calls after warm-up
    limits: Counter[str] = field(default_factory=Counter)  # 429 reasons

    def as_dict(self) -> dict[str, Any]:
        ms = [x * 1000.0 for x in self.latencies]
        lags = [x * 1000.0 for x in self.send_lags]
        return {
            "calls": self.calls,
            "attempts": {str(k): v for k, v in sorted(self.attempts.items())},
            "final_status": {str(k): v for k, v in sorted(self.finals.items())},
            "retries": sum(self.attempts.values()) - self.calls,
            "latency_ms": _quantiles(ms),
            "steady_calls": len(self.steady),
            "steady_latency_ms": _quantiles([x * 1000.0 for x in self.steady]),
            "send_lag_ms": _quantiles(lags),
            "rate_limited": dict(self.limits),
        }


def _quantiles(ms: list[float]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for name, q in (("p50", 50.0), ("p95", 95.0), ("p99", 99.0), ("max", 100.0)):
        value = percentile(ms, q)
        out[name] = None if value is None else round(value, 2)
    return out


class Endpoints:
    """The ``Recorder`` of ``dispatch.adapters.http.client``: counts and latencies by
    endpoint, and the reasons of the rate limits met."""

    def __init__(self) -> None:
        self.by_name: dict[str, Endpoint] = {}
        # Calls planned from this time on (``time.monotonic()``) are the steady state's:
        # the start (the city signing in, every stream opening at once) is left out.
        self.steady_from = float("inf")

    def _get(self, name: str) -> Endpoint:
        found = self.by_name.get(name)
        if found is None:
            found = self.by_name[name] = Endpoint()
        return found

    def attempt(self, endpoint: str, status: int, reason: str | None) -> None:
        e = self._get(endpoint)
        e.attempts[status] += 1
        if status == 429:
            limit = _limit(reason)
            if limit in e.limits or len(e.limits) < MAX_REASONS:
                e.limits[limit] += 1

    def call(self, endpoint: str, status: int, latency_s: float, send_lag_s: float) -> None:
        e = self._get(endpoint)
        e.calls += 1
        e.finals[status] += 1
        e.latencies.append(latency_s)
        e.send_lags.append(send_lag_s)
        if time.monotonic() - latency_s >= self.steady_from:
            e.steady.append(latency_s)

    def as_dict(self) -> dict[str, Any]:
        return {name: self.by_name[name].as_dict() for name in sorted(self.by_name)}

    @property
    def rate_limited(self) -> int:
        return sum(e.attempts[429] for e in self.by_name.values())


def _limit(reason: str | None) -> str:
    """A 429's reason without its retry time ("more than 20 requests a second")."""
    text = reason or "(no reason given)"
    return text.split(";")[0].strip()


class LoopMonitor:
    """The client's own stalls: how late a ``LOOP_PROBE_S`` sleep wakes, probed all along
    the run (a stall delays every app's sends and reads at once)."""

    def __init__(self) -> None:
        self.lags: list[float] = []
        self.started_cpu = time.process_time()
        self.started = time.monotonic()

    def restart(self) -> None:
        """Measure from now (the run, not the start-up's imports and sign-in)."""
        self.lags.clear()
        self.started_cpu, self.started = time.process_time(), time.monotonic()

    async def run(self) -> None:
        while True:
            before = time.monotonic()
            await asyncio.sleep(LOOP_PROBE_S)
            self.lags.append(max(0.0, time.monotonic() - before - LOOP_PROBE_S))

    def as_dict(self, drivers: int) -> dict[str, Any]:
        wall = max(1e-9, time.monotonic() - self.started)
        cpu = time.process_time() - self.started_cpu
        stalled = sum(lag for lag in self.lags if lag > 0.02)
        return {
            "loop_lag_ms": _quantiles([x * 1000.0 for x in self.lags]),
            "stalled_s": round(stalled, 2),  # summed stalls over 20 ms
            "cpu_s": round(cpu, 2),
            "cpu_share": round(cpu / wall, 3),  # of one core
            "cpu_ms_per_driver_s": round(1000.0 * cpu / wall / max(1, drivers), 4),
        }
