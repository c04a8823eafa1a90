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
from array import array
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from dispatch.simulator.stats import percentile

MAX_REASONS = 5  # distinct 429 reasons kept by endpoint (the limits met)
LOOP_PROBE_S = 0.05  # how often the event loop's stalls are probed


@dataclass
class Endpoint:
    """One endpoint's calls, each kept as five numbers in compact arrays (a long run of a
    large city makes millions): when it was planned (``time.monotonic()``), its latency,
    how late the client sent it, its last status, and how long it waited for a connection
    of the client's pool."""

    attempts: Counter[int] = field(default_factory=Counter)  # by status (0: no answer)
    planned_at: array[float] = field(default_factory=lambda: array("d"))
    latency_s: array[float] = field(default_factory=lambda: array("d"))
    send_lag_s: array[float] = field(default_factory=lambda: array("d"))
    status: array[int] = field(default_factory=lambda: array("H"))
    pool_wait_s: array[float] = field(default_factory=lambda: array("d"))
    limits: Counter[str] = field(default_factory=Counter)  # 429 reasons
    pending: int = 0  # calls whose last answer was a 202 "pending": outcome never learnt

    @property
    def calls(self) -> int:
        return len(self.status)

    @property
    def finals(self) -> Counter[int]:
        """Each call's last status, counted."""
        return Counter(self.status)

    def steady(self, start: float, end: float) -> list[float]:
        """The latencies of the calls planned from ``start`` to ``end`` (monotonic)."""
        pairs = zip(self.planned_at, self.latency_s, strict=True)
        return [lat for t, lat in pairs if start <= t < end]

    def as_dict(self, start: float, end: float) -> dict[str, Any]:
        steady = self.steady(start, end)
        return {
            "calls": self.calls,
            "attempts": {str(k): v for k, v in sorted(self.attempts.items())},
            "final_status": {str(k): v for k, v in sorted(self.finals.items())},
            "retries": sum(self.attempts.values()) - self.calls,
            "latency_ms": _quantiles([x * 1000.0 for x in self.latency_s]),
            "steady_calls": len(steady),
            "steady_latency_ms": _quantiles([x * 1000.0 for x in steady]),
            "send_lag_ms": _quantiles([x * 1000.0 for x in self.send_lag_s]),
            "pool_wait_ms": _quantiles([x * 1000.0 for x in self.pool_wait_s]),
            "rate_limited": dict(self.limits),
            "pending_at_end": self.pending,
        }


def _quantiles(ms: list[float]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for name, q in (("p50", 50.0), ("p95", 95.0), ("p99", 99.0), ("max", 100.0)):
        value = percentile(ms, q)
        out[name] = None if value is None else round(value, 2)
    return out


def failed(status: int) -> bool:
    """A call that got no answer, or a server error, after its retries."""
    return status == 0 or status >= 500


class Endpoints:
    """The ``Recorder`` of ``dispatch.adapters.http.client``: counts and latencies by
    endpoint, and the reasons of the rate limits met."""

    def __init__(self) -> None:
        self.by_name: dict[str, Endpoint] = {}
        # The run's start (``time.monotonic()``) once the city is online; the steady state
        # is from the end of its warm-up (every stream opening at once) to the end of its
        # minutes (the drain and the close left out).
        self.origin = time.monotonic()
        self.steady_from = self.steady_until = float("inf")

    def start(self, origin: float, warmup_s: float, run_s: float) -> None:
        self.origin = origin
        self.steady_from, self.steady_until = origin + warmup_s, origin + run_s

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

    def call(
        self,
        endpoint: str,
        status: int,
        latency_s: float,
        send_lag_s: float,
        pending: bool = False,
        pool_wait_s: float = 0.0,
    ) -> None:
        e = self._get(endpoint)
        e.pending += pending
        e.pool_wait_s.append(pool_wait_s)
        e.planned_at.append(time.monotonic() - latency_s)
        e.latency_s.append(latency_s)
        e.send_lag_s.append(send_lag_s)
        e.status.append(status)

    def as_dict(self) -> dict[str, Any]:
        return {
            name: self.by_name[name].as_dict(self.steady_from, self.steady_until)
            for name in sorted(self.by_name)
        }

    def calls(self) -> Iterator[tuple[str, float, float, float, int, float]]:
        """Every call: endpoint, planned time from the run's start (negative while the city
        signed in), latency and send lag (s), last status, pool wait (s)."""
        for name in sorted(self.by_name):
            e = self.by_name[name]
            rows = zip(e.planned_at, e.latency_s, e.send_lag_s, e.status, e.pool_wait_s,
                       strict=True)  # fmt: skip
            for at, lat, lag, status, pool in rows:
                yield name, at - self.origin, lat, lag, status, pool

    @property
    def rate_limited(self) -> int:
        return sum(e.attempts[429] for e in self.by_name.values())

    def timeline(self, bucket_s: float) -> dict[str, list[list[float | int | None]]]:
        """By endpoint, each ``bucket_s`` of the run (from its start; sign-in left out):
        ``[start_s, calls, failed, p50_ms, p99_ms]`` of the calls planned in it (failed:
        no answer or a 5xx after the retries; see ``failed``)."""
        out: dict[str, list[list[float | int | None]]] = {}
        for name in sorted(self.by_name):
            e = self.by_name[name]
            buckets: dict[int, list[tuple[float, int]]] = {}
            for at, lat, status in zip(e.planned_at, e.latency_s, e.status, strict=True):
                t = at - self.origin
                if t >= 0:
                    buckets.setdefault(int(t // bucket_s), []).append((lat * 1000.0, status))
            rows: list[list[float | int | None]] = []
            for k in sorted(buckets):
                ms = [lat for lat, _ in buckets[k]]
                p50, p99 = percentile(ms, 50.0), percentile(ms, 99.0)
                rows.append([
                    round(k * bucket_s, 1), len(ms), sum(1 for _, s in buckets[k] if failed(s)),
                    None if p50 is None else round(p50, 2), None if p99 is None else round(p99, 2),
                ])  # fmt: skip
            out[name] = rows
        return out


def _limit(reason: str | None) -> str:
    """A 429's reason without its retry time ("more than 20 requests a second")."""
    text = reason or "(no reason given)"
    return text.split(";")[0].strip()


class LoopMonitor:
    """The client's own stalls: how late a ``LOOP_PROBE_S`` sleep wakes, probed all along
    the run (a stall delays every app's sends and reads at once)."""

    def __init__(self) -> None:
        self.at: array[float] = array("d")  # seconds from the start of the measure
        self.lags: array[float] = array("d")
        self.started_cpu = time.process_time()
        self.started = time.monotonic()

    def restart(self) -> None:
        """Measure from now (the run, not the start-up's imports and sign-in)."""
        self.at, self.lags = array("d"), array("d")
        self.started_cpu, self.started = time.process_time(), time.monotonic()

    async def run(self) -> None:
        while True:
            before = time.monotonic()
            await asyncio.sleep(LOOP_PROBE_S)
            now = time.monotonic()
            self.at.append(now - self.started)
            self.lags.append(max(0.0, now - before - LOOP_PROBE_S))

    def as_dict(self, drivers: int, joins_at_s: Sequence[float] = ()) -> dict[str, Any]:
        """``drivers`` signed in; ``joins_at_s``: when those that went online later did
        (from the start), so the CPU per driver-second counts the seconds they were on."""
        wall = max(1e-9, time.monotonic() - self.started)
        cpu = time.process_time() - self.started_cpu
        late = [min(at, wall) for at in joins_at_s]
        drivers_on = max(1e-9, drivers - len(late) + sum(wall - at for at in late) / wall)
        stalled = sum(lag for lag in self.lags if lag > 0.02)
        return {
            "loop_lag_ms": _quantiles([x * 1000.0 for x in self.lags]),
            "stalled_s": round(stalled, 2),  # summed stalls over 20 ms
            "cpu_s": round(cpu, 2),
            "cpu_share": round(cpu / wall, 3),  # of one core
            "cpu_ms_per_driver_s": round(1000.0 * cpu / wall / max(1.0, drivers_on), 4),
        }

    def timeline(self, bucket_s: float) -> list[list[float]]:
        """Each ``bucket_s`` of the run: ``[start_s, max_lag_ms]``."""
        worst: dict[int, float] = {}
        for t, lag in zip(self.at, self.lags, strict=True):
            k = int(t // bucket_s)
            worst[k] = max(worst.get(k, 0.0), lag)
        return [[round(k * bucket_s, 1), round(worst[k] * 1000.0, 2)] for k in sorted(worst)]
