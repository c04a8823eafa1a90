"""What the ``/ops`` page draws, from a set of views: drivers with a position by status,
rides in flight at their pickups, the supply/demand heatmap and the surge layer with their
hexagons' corners. The serving process draws its live views with it; ``dispatch replay
state --ops`` draws a past moment's (``dispatch.replay.operations.ops_state_at``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import h3

from dispatch.domain.driver import DriverStatus
from dispatch.domain.ride import TERMINAL, RideStatus
from dispatch.domain.surge import SURGE_RESOLUTION
from projections.locations import DriverLocation
from projections.views import ViewSet

HEATMAP_RESOLUTION = 7
# A ride booked for later is not in flight until its dispatch starts.
NOT_IN_FLIGHT = TERMINAL | {RideStatus.SCHEDULED}
# A ride's pickup as [lat, lng], opened (None: erased).
PickupOf = Callable[[Any], list[float] | None]


@dataclass(frozen=True)
class Limits:
    """At most this many drivers and rides are drawn (their totals are given beside)."""

    max_drivers: int
    max_rides: int


def boundary(cell: str) -> list[list[float]]:
    """A cell's corners, ``[lat, lng]`` each, rounded to about a metre."""
    return [[round(lat, 5), round(lng, 5)] for lat, lng in h3.cell_to_boundary(cell)]


def picture(
    views: ViewSet,
    at: float,
    drivers_seen: Iterable[DriverLocation | None],
    pickup_of: PickupOf,
    limits: Limits,
    supply: Counter[str] | None = None,
) -> dict[str, Any]:
    """The page's state at ``at``; call it holding the views' lock (``drivers_seen``: the
    drivers to draw, those with no position left out; ``supply``: available drivers per
    heatmap cell, when the heatmap's own, from pings, is not there)."""
    drivers = [
        {"id": w.driver_id, "status": w.status, "lat": round(w.lat, 6), "lng": round(w.lng, 6)}
        for w in drivers_seen
        if w is not None and w.lat is not None and w.lng is not None
    ]
    rides = sorted(
        (r.ride_id, r.status, r.pickup, r.driver_id)
        for r in views.rides.values()
        if r.status not in NOT_IN_FLIGHT
    )
    booked = sum(len(b) for b in views.rides.booked.values())
    cells = views.heatmap.cells(HEATMAP_RESOLUTION)
    if supply is not None:
        cells = {c: (supply.get(c, 0), d) for c, (_, d) in cells.items()}
        cells.update({c: (n, 0) for c, n in supply.items() if c not in cells and n > 0})
    surge = views.surge.layer()
    in_flight = []
    for ride_id, status, pickup, driver_id in rides[: limits.max_rides]:
        where = pickup_of(pickup)
        in_flight.append({
            "id": ride_id, "status": status, "driver_id": driver_id,
            "pickup": None if where is None else [round(where[0], 6), round(where[1], 6)],
        })  # fmt: skip
    return {
        "at": datetime.fromtimestamp(at, UTC).isoformat(),
        "drivers": drivers[: limits.max_drivers],
        "drivers_total": len(drivers),
        "rides": in_flight,
        "rides_total": len(rides),
        "scheduled_total": booked,  # booked for later, not dispatched yet: not drawn
        "heatmap_resolution": HEATMAP_RESOLUTION,
        "heatmap": [
            {"cell": c, "supply": s, "demand": d, "boundary": boundary(c)}
            for c, (s, d) in sorted(cells.items())
        ],
        "surge_resolution": SURGE_RESOLUTION,
        "surge": [
            {"cell": c, "multiplier": m, "boundary": boundary(c)} for c, m in sorted(surge.items())
        ],
    }


def available_by_cell(drivers_seen: Iterable[DriverLocation | None]) -> Counter[str]:
    """Available drivers with a position, per heatmap cell."""
    out: Counter[str] = Counter()
    for w in drivers_seen:
        if w is None or w.lat is None or w.lng is None or w.status != DriverStatus.AVAILABLE:
            continue
        out[h3.latlng_to_cell(w.lat, w.lng, HEATMAP_RESOLUTION)] += 1
    return out
