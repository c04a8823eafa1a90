"""Simulated drivers: where they are (moving along a straight segment, or along a route over
the roads) and what they do."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from uuid import UUID

from dispatch.domain.driver import PlanState
from dispatch.roads.routes import Route


class Phase(Enum):
    IDLE = "idle"
    OFFERED = "offered"
    TO_PICKUP = "to_pickup"
    AT_PICKUP = "at_pickup"
    ON_TRIP = "on_trip"


BUSY = frozenset({Phase.TO_PICKUP, Phase.AT_PICKUP, Phase.ON_TRIP})


@dataclass(slots=True)
class SimDriver:
    driver_id: UUID
    index: int  # keys the driver's random streams: the same driver under every strategy
    lat: float
    lng: float
    ping_phase: int
    phase: Phase = Phase.IDLE
    leg: str = "idle"  # what the current movement is: cruise, pickup, trip or idle
    cruises: int = 0  # cruising moves made so far (keys the next one's draw)
    will_accept: bool = False  # the answer drawn for the offer held
    ride_id: UUID | None = None
    epoch: int = 0  # bumped on every change of plan, so stale scheduled actions are ignored
    to_lat: float = 0.0
    to_lng: float = 0.0
    t0: float = 0.0
    t1: float = 0.0
    route: Route | None = None  # on a road network: the current leg's route (else straight)
    # A vehicle serving shared rides: its plan as the engine recorded it (``fold_plan``),
    # and the stop it is heading to or at ([ride id, "P" or "D"]; None: none).
    plan: PlanState | None = None
    heading: tuple[str, str] | None = None

    def fraction(self, now: float) -> float:
        """How much of the current leg's time has passed at ``now`` (0 to 1)."""
        if now >= self.t1 or self.t1 <= self.t0:
            return 1.0
        return max(0.0, (now - self.t0) / (self.t1 - self.t0))

    def position(self, now: float) -> tuple[float, float]:
        if self.route is not None:  # always on the route
            if now >= self.t1 or self.t1 <= self.t0:
                return self.route.end
            return self.route.position((now - self.t0) / (self.t1 - self.t0))
        if now >= self.t1 or self.t1 <= self.t0:
            return self.to_lat, self.to_lng
        f = (now - self.t0) / (self.t1 - self.t0)
        return self.lat + (self.to_lat - self.lat) * f, self.lng + (self.to_lng - self.lng) * f

    def head_to(self, lat: float, lng: float, now: float, travel_s: float) -> None:
        """Go in a straight line (off any route) from where the driver is at ``now``."""
        self.lat, self.lng = self.position(now)
        self.route = None  # else position() would go on along the old route
        self.to_lat, self.to_lng, self.t0, self.t1 = lat, lng, now, now + travel_s

    def drive(self, route: Route, now: float, travel_s: float) -> None:
        """Drive ``route`` (it starts where the driver is) from ``now``, in ``travel_s``."""
        self.route = route
        self.lat, self.lng = route.lat[0], route.lng[0]
        self.to_lat, self.to_lng = route.end
        self.t0, self.t1 = now, now + travel_s

    def driven_m(self, lo: float, hi: float) -> float:
        """Metres of the current route driven between the times ``lo`` and ``hi``."""
        assert self.route is not None
        return self.route.metres_at(self.fraction(hi)) - self.route.metres_at(self.fraction(lo))

    def stop(self, now: float) -> None:
        self.head_to(*self.position(now), now, 0.0)

    def change_plan(self, phase: Phase, ride_id: UUID | None) -> int:
        self.phase, self.ride_id = phase, ride_id
        self.epoch += 1
        return self.epoch


@dataclass(slots=True)
class SimRide:
    index: int  # position in the demand stream
    ride_id: UUID
    rider_id: UUID
    pickup: tuple[float, float]
    dropoff: tuple[float, float]
    requested_at: float
    first_offer_at: float | None = None
    first_offer_across: bool | None = None  # its first offer's driver owned by another shard
    asked: UUID | None = None  # the driver of another shard it is asking (through its owner)
    accepted_at: float | None = None
    offered_eta_s: float = 0.0
    pickup_eta_s: float | None = None  # the ETA of the offer the driver accepted
    pickup_m: float | None = None  # the length of the pickup leg its driver set out on
    arrived_at: float | None = None
    started_at: float | None = None
    ended_at: float | None = None
    outcome: str | None = None  # completed, cancelled, expired
    surge: float = 1.0  # the pickup cell's multiplier when requested, as the engine said
    product: str = "standard"  # what the rider asked for
    fare_total: str | None = None  # the final fare of a completed, priced ride (decimal text)
    fare_currency: str | None = None
    place: str | None = None  # the place with a queue holding its pickup, if any
    scheduled_at: float | None = None  # a scheduled ride's pickup time (requested_at: booked)
    dispatched_at: float | None = None  # its dispatch started
    overdue: bool = False  # no driver by its time
    shared: bool = False  # asked to share (sent shared only where the engine pools)
    seats: int = 1
