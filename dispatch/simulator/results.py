"""What one simulation run leaves behind for reports: each request's life and the market
over time. Times are seconds since the simulation started (simulated time)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any


@dataclass(frozen=True, slots=True)
class Request:
    """One ride request of a demand stream: when and where, nothing about who answers it."""

    at_s: float
    pickup: tuple[float, float]
    dropoff: tuple[float, float]


@dataclass(slots=True)
class RideRecord:
    """One request's life as the rider saw it. ``None``: it never got that far."""

    index: int  # position in the demand stream: the same request under every strategy
    ride_id: str
    requested_s: float
    pickup_lat: float
    pickup_lng: float
    dropoff_lat: float
    dropoff_lng: float
    outcome: str | None = None  # completed, cancelled, expired; None: still in flight
    first_offer_s: float | None = None
    first_offer_across: bool | None = None  # made by a driver another shard owns
    accepted_s: float | None = None
    arrived_s: float | None = None  # the driver at the pickup: the rider's wait ends
    started_s: float | None = None
    ended_s: float | None = None
    eta_estimated_s: float | None = None  # the matcher's pickup ETA in the accepted offer
    eta_realised_s: float | None = None  # accepted -> arrived, as driven
    direct_m: float = 0.0  # straight-line pickup -> dropoff
    pickup_m: float | None = None  # the pickup leg driven (on roads: its route), if arrived
    surge: float = 1.0  # the pickup cell's surge multiplier when requested
    product: str = "standard"  # what the rider asked for
    fare_total: str | None = None  # the final fare (decimal text) of a completed priced ride
    fare_currency: str | None = None
    place: str | None = None  # the place with a queue its pickup was inside, if any
    # A scheduled ride: the pickup time booked (``requested_s`` is when it was booked), when
    # its dispatch started, and whether it was overdue (no driver by its time). None: a
    # ride requested now.
    scheduled_s: float | None = None
    dispatched_s: float | None = None
    overdue: bool = False
    # A shared ride (``--shared-share``): the seats it took. Sent as a single ride where
    # the engine does not pool (the same request in a paired run without pooling).
    shared: bool = False
    seats: int = 1

    @property
    def wait_s(self) -> float | None:
        """The rider's wait for the car, from when they were ready: the request, or a
        scheduled ride's time (0 when its driver came early)."""
        if self.arrived_s is None:
            return None
        if self.scheduled_s is not None:
            return max(0.0, self.arrived_s - self.scheduled_s)
        return self.arrived_s - self.requested_s

    @property
    def in_vehicle_s(self) -> float | None:
        if self.started_s is None or self.ended_s is None or self.outcome != "completed":
            return None
        return self.ended_s - self.started_s

    def as_row(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True, slots=True)
class Sample:
    """The market at one moment (taken every ``SAMPLE_EVERY_S`` simulated seconds)."""

    t_s: float
    requests: int  # requested so far
    waiting: int  # requested, no driver accepted yet, not ended
    idle_drivers: int
    offered_drivers: int  # holding an offer they have not answered
    busy_drivers: int  # on the way to a pickup, at it, or on a trip
    served: int  # accepted by a driver so far
    completed: int
    cancelled: int
    expired: int

    @property
    def utilisation(self) -> float:
        total = self.idle_drivers + self.offered_drivers + self.busy_drivers
        return self.busy_drivers / total if total else 0.0

    def as_row(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)} | {
            "utilisation": round(self.utilisation, 4)
        }


SAMPLE_EVERY_S = 60.0
