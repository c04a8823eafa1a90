"""Shared rides in the simulator (``--shared-share``): which requests are shared, how full
the vehicles ride, and the figures by kind of ride (docs/SIMULATION.md, "Shared rides").

- **Which requests.** Each immediate request is shared with probability ``share``, drawn
  from a stream of its own keyed by the request's index (``Streams``), and takes 2 seats
  with probability ``TWO_SEATS``: the same requests are shared in every run of a seed,
  pooling on or off, so runs pair. A booked (scheduled) request is never shared.
- **Occupancy.** Riders aboard each vehicle over time, counted between the end of warm-up
  and the last request (the period the distance figures cover): ``mean_occupancy`` is the
  rider-seconds aboard over the vehicle-seconds with anyone aboard (riders per moving,
  occupied vehicle; 1.0 without pooling).
- **Detour.** A completed ride's time in the vehicle over its direct trip's time at the
  run's straight-line pace (road factor over the speed), less one, in per cent: the
  detour a shared rider paid, and for a single ride the road's own variation (the same
  formula, so the two kinds compare).
"""

from __future__ import annotations

from uuid import UUID

from dispatch.simulator.results import RideRecord

TWO_SEATS = 0.2  # of the shared requests, those that take two seats


class Occupancy:
    """Riders aboard each vehicle, integrated over time within ``[lo, hi]``."""

    def __init__(self, lo: float, hi: float) -> None:
        self.lo, self.hi = lo, hi
        self._aboard: dict[UUID, tuple[int, float]] = {}  # count, since
        self.rider_s = 0.0
        self.occupied_s = 0.0

    def aboard(self, vehicle: UUID) -> int:
        return self._aboard.get(vehicle, (0, 0.0))[0]

    def set(self, vehicle: UUID, count: int, now: float) -> None:
        """``vehicle`` carries ``count`` riders from ``now``."""
        before, since = self._aboard.get(vehicle, (0, now))
        self._add(before, since, now)
        if count:
            self._aboard[vehicle] = (count, now)
        else:
            self._aboard.pop(vehicle, None)

    def finish(self, now: float) -> None:
        for vehicle in list(self._aboard):
            self.set(vehicle, 0, now)

    def _add(self, count: int, since: float, now: float) -> None:
        span = min(now, self.hi) - max(since, self.lo)
        if count and span > 0:
            self.rider_s += count * span
            self.occupied_s += span

    @property
    def mean(self) -> float | None:
        return self.rider_s / self.occupied_s if self.occupied_s else None


def detour_pct(record: RideRecord, seconds_per_m: float) -> float | None:
    """A completed ride's time in the vehicle over its direct trip at the pace, less one
    (per cent); None for a ride not completed or of no length."""
    in_vehicle = record.in_vehicle_s
    direct_s = record.direct_m * seconds_per_m
    if in_vehicle is None or direct_s <= 0:
        return None
    return 100.0 * (in_vehicle / direct_s - 1.0)
