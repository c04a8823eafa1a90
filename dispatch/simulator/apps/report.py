"""The report of a run against a deployment: the service its apps got (as they saw it),
each endpoint's answers and latencies, and the client's own cost and pauses."""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dispatch.simulator.apps.rider_app import Riders, RideSeen
from dispatch.simulator.apps.stats import Endpoints, LoopMonitor
from dispatch.simulator.apps.world import World
from dispatch.simulator.stats import mean, percentile

if TYPE_CHECKING:
    from dispatch.simulator.apps.driver_app import DriverApp

TIMELINE_BUCKETS = 300


@dataclass(frozen=True)
class ApiReport:
    doc: dict[str, Any]  # what ``--json`` prints
    calls: Endpoints  # every call, for ``calls.csv``

    @property
    def served(self) -> int:
        return int(self.doc["service"]["served"])

    @property
    def unfinished(self) -> int:
        return int(self.doc["service"]["unfinished"])

    def as_dict(self) -> dict[str, Any]:
        return self.doc

    def rows(self) -> list[tuple[str, str]]:
        s, c = self.doc["service"], self.doc["client"]
        rows = [
            ("target", self.doc["target"]),
            ("drivers / minutes / profile", f"{self.doc['drivers']} / {self.doc['minutes']:g} / "
             f"{self.doc['profile']}{' open loop' if self.doc['open_loop'] else ''}"),
            ("drivers online at the start / later", f"{self.doc['drivers_at_start']} / "
             f"{self.doc['drivers_did'].get('joined later', 0)}"),
            ("requests planned / sent / refused", f"{s['planned']} / {s['requested']} / "
             f"{s['refused']}"),
            ("served (% of decided)", f"{s['served']} ({_pct(s['served_pct'])})"),
            ("completed / cancelled / expired / unfinished", f"{s['completed']} / "
             f"{s['cancelled']} / {s['expired']} / {s['unfinished']}"),
            ("wait for a driver p50 / p95 (s)", _pair(s["accept_wait_s"])),
            ("pickup wait p50 / p95 (s)", _pair(s["pickup_wait_s"])),
            ("rate limited (429s)", str(self.doc["rate_limited"])),
            ("client CPU (share of a core) / per driver (ms/s)",
             f"{c['cpu_share']} / {c['cpu_ms_per_driver_s']}"),
            ("client loop lag p99 / max (ms)",
             f"{c['loop_lag_ms']['p99']} / {c['loop_lag_ms']['max']}"),
        ]  # fmt: skip
        for name, e in self.doc["endpoints"].items():
            lat = e["steady_latency_ms"]
            rows.append((name, f"{e['calls']} calls, {e['final_status']}; after warm-up "
                         f"p50 {lat['p50']} p95 {lat['p95']} p99 {lat['p99']} max {lat['max']} "
                         "ms"))  # fmt: skip
        return rows


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}%"


def _pair(q: dict[str, float | None]) -> str:
    return f"{q['p50']} / {q['p95']}"


def build_report(
    world: World,
    rides: list[RideSeen],
    drivers: list[DriverApp],
    riders: Riders,
    endpoints: Endpoints,
    monitor: LoopMonitor,
    signed_in_s: float,
) -> ApiReport:
    config = world.config
    sent = [r for r in rides if r.ride_id]
    ends = Counter(r.end for r in sent)
    served = [r for r in sent if r.accepted_s is not None]
    # Decided: got a driver, or ended without one by itself (not cancelled by the closing).
    unserved = [r for r in sent if r.accepted_s is None and r.end and not r.closed]
    decided = len(served) + len(unserved)
    accept = [r.accepted_s - r.planned_s for r in served if r.accepted_s is not None]
    pickup = [r.arrived_s - r.planned_s for r in sent if r.arrived_s is not None]
    refused = Counter(
        f"{r.status} {r.refused}".strip() for r in rides if not r.ride_id and r.status != -1
    )
    service = {
        "planned": len(rides),
        "not_sent": sum(1 for r in rides if r.status == -1),  # the run closed first
        "requested": len(sent),
        "refused": sum(refused.values()),
        "refused_by": dict(refused),
        "served": len(served),
        "served_pct": round(100.0 * len(served) / decided, 2) if decided else None,
        "completed": ends["completed"],
        "cancelled": ends["cancelled"],
        "cancelled_at_close": sum(1 for r in sent if r.closed and r.end == "cancelled"),
        "expired": ends["expired"],
        "unfinished": ends[""],
        "accept_wait_s": _seconds(accept),
        "pickup_wait_s": _seconds(pickup),
        "riders_registered": riders.made,
        "riders": len(riders.all),
    }
    doc = {
        "target": config.url,
        "drivers": len(drivers),
        "minutes": config.minutes,
        "seed": config.seed,
        "demand_per_min": config.demand,
        "profile": config.profile,
        "open_loop": config.open_loop,
        "connections": config.connections,  # the client's pool for calls (--connections)
        "city_km": config.city_km,
        "speed_kmh": config.speed_kmh,
        "signed_in_s": round(signed_in_s, 2),
        # The run's start as a Unix time, to line the timeline up with the deployment's logs.
        "started_at": round(time.time() - (time.monotonic() - world.started), 3),
        "warmup_s": round(config.warmup_s, 2),
        "service": service,
        "drivers_did": dict(sorted(world.drivers_did.items())),
        "drivers_left_online": sum(1 for app in drivers if app.online),
        # the profile's drivers: online from the start, the others as the load rose
        "drivers_at_start": sum(1 for app in drivers if not app.joins_at_s),
        "rate_limited": endpoints.rate_limited,
        "token_refresh_failures": world.accounts.refresh_failures,
        "endpoints": endpoints.as_dict(),
        # drivers that were to join later: online from when they did (never: no second)
        "client": monitor.as_dict(
            len(drivers),
            [math.inf if d.joined_at_s is None else d.joined_at_s for d in drivers if d.joins_at_s],
        ),
        "timeline": _timeline(
            endpoints,
            monitor,
            time.monotonic() - world.started,
            time.monotonic() - endpoints.origin,
        ),
        "rides": [r.as_row() for r in rides],
    }
    return ApiReport(doc, endpoints)


def _timeline(
    endpoints: Endpoints, monitor: LoopMonitor, run_s: float, ended_s: float
) -> dict[str, Any]:
    """The run over time, in buckets of 5 s (more in a long run: at most about
    ``TIMELINE_BUCKETS``), by endpoint and for the client's loop; ``ended_s``: when the
    run ended, from its start (the last bucket covers only up to it)."""
    bucket_s = max(5.0, 5.0 * math.ceil(run_s / TIMELINE_BUCKETS / 5.0))
    return {
        "bucket_s": bucket_s,
        "ended_s": round(ended_s, 1),
        "columns": ["start_s", "calls", "failed", "p50_ms", "p99_ms"],
        "endpoints": endpoints.timeline(bucket_s),
        "loop_lag_max_ms": monitor.timeline(bucket_s),
    }


def _seconds(values: list[float]) -> dict[str, float | None]:
    out = {}
    for name, q in (("p50", 50.0), ("p95", 95.0)):
        v = percentile(values, q)
        out[name] = None if v is None else round(v, 2)
    m = mean(values)
    out["mean"] = None if m is None else round(m, 2)
    return out
