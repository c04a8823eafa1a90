"""The log checker: folds a shard's events and reports every invariant violation.

Used by the simulator's report, by ``dispatch replay verify`` and by the failover tests:
- each aggregate's versions are gapless and unique;
- only legal transitions (the tables below mirror the aggregates);
- no driver holds two active rides at any moment, no ride has two drivers;
- every offer is resolved (accepted, declined, expired or cancelled) once its expiry passed;
- every command id has exactly one outcome.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from dispatch.domain.command_record import CommandRecord
from dispatch.domain.driver import Driver, DriverStatus
from dispatch.domain.ride import Ride, RideStatus
from dispatch.domain.rider import Rider

R, D = RideStatus, DriverStatus
_ANY_LIVE = {R.REQUESTED, R.OFFERED, R.ACCEPTED, R.DRIVER_ARRIVED}

RIDE_TRANSITIONS: dict[type, tuple[set[Any], Any]] = {
    Ride.Offered: ({R.REQUESTED}, R.OFFERED),
    Ride.OfferDeclined: ({R.OFFERED}, R.REQUESTED),
    Ride.OfferExpired: ({R.OFFERED}, R.REQUESTED),
    Ride.Accepted: ({R.OFFERED}, R.ACCEPTED),
    Ride.DriverArrived: ({R.ACCEPTED}, R.DRIVER_ARRIVED),
    Ride.TripStarted: ({R.DRIVER_ARRIVED}, R.IN_PROGRESS),
    Ride.Completed: ({R.IN_PROGRESS}, R.COMPLETED),
    Ride.CancelledByRider: (_ANY_LIVE, R.CANCELLED),
    Ride.CancelledByDriver: ({R.ACCEPTED, R.DRIVER_ARRIVED}, R.REQUESTED),
    Ride.Expired: ({R.REQUESTED}, R.EXPIRED),
}
DRIVER_TRANSITIONS: dict[type, tuple[set[Any], Any]] = {
    Driver.WentOnline: ({D.OFFLINE}, D.AVAILABLE),
    Driver.WentOffline: ({D.AVAILABLE}, D.OFFLINE),
    Driver.OfflineAfterTripRequested: ({D.EN_ROUTE, D.ON_TRIP}, None),
    Driver.OfferReceived: ({D.AVAILABLE}, D.OFFERED),
    Driver.OfferClosed: ({D.OFFERED}, D.AVAILABLE),
    Driver.Assigned: ({D.OFFERED}, D.EN_ROUTE),
    Driver.TripStarted: ({D.EN_ROUTE}, D.ON_TRIP),
    Driver.Released: ({D.EN_ROUTE, D.ON_TRIP}, D.AVAILABLE),
}


@dataclass(frozen=True, slots=True)
class Violation:
    position: str
    aggregate_id: str
    kind: str
    detail: str

    def __str__(self) -> str:
        return f"[{self.position}] {self.kind}: {self.detail} (aggregate {self.aggregate_id})"


@dataclass
class InvariantChecker:
    violations: list[Violation] = field(default_factory=list)
    events: int = 0
    versions: dict[UUID, int] = field(default_factory=dict)
    ride_status: dict[UUID, Any] = field(default_factory=dict)
    driver_status: dict[UUID, Any] = field(default_factory=dict)
    rider_active: dict[UUID, UUID | None] = field(default_factory=dict)
    driver_ride: dict[UUID, UUID] = field(default_factory=dict)
    ride_driver: dict[UUID, UUID] = field(default_factory=dict)
    open_offers: dict[UUID, tuple[datetime, str]] = field(default_factory=dict)
    command_ids: dict[str, str] = field(default_factory=dict)
    offline_after_trip: set[UUID] = field(default_factory=set)
    last_time: datetime | None = None

    def check(self, event: Any, position: str) -> None:
        self.events += 1
        agg_id: UUID = event.originator_id
        self.last_time = event.timestamp
        expected = self.versions.get(agg_id, 0) + 1
        if event.originator_version != expected:
            self._flag(position, agg_id, "version_gap",
                       f"version {event.originator_version} where {expected} was expected")
        self.versions[agg_id] = max(event.originator_version, self.versions.get(agg_id, 0))
        kind = type(event)
        if kind is Ride.Created:
            self.ride_status[agg_id] = R.REQUESTED
        elif kind is Driver.Created:
            self.driver_status[agg_id] = D.OFFLINE
        elif kind is Rider.Created:
            self.rider_active[agg_id] = None
        elif kind is CommandRecord.Created:
            first = self.command_ids.setdefault(event.command_id, position)
            if first != position:
                self._flag(position, agg_id, "duplicate_outcome",
                           f"command {event.command_id} already had an outcome at {first}")
        elif kind in RIDE_TRANSITIONS:
            self._ride(event, position)
        elif kind in DRIVER_TRANSITIONS:
            self._driver(event, position)
        elif kind in (Rider.RideRequested, Rider.RideEnded):
            self._rider(event, position)

    def finish(self) -> list[Violation]:
        """Offers whose expiry passed before the log's last event and were never resolved."""
        if self.last_time is not None:
            for ride_id, (expires_at, position) in self.open_offers.items():
                if expires_at < self.last_time:
                    self._flag(position, ride_id, "unresolved_offer",
                               f"offer expired at {expires_at.isoformat()} but was never closed")
        return self.violations

    # -- per aggregate type ------------------------------------------------------------
    def _ride(self, event: Any, position: str) -> None:
        ride_id: UUID = event.originator_id
        allowed, after = RIDE_TRANSITIONS[type(event)]
        status = self.ride_status.get(ride_id)
        if status not in allowed:
            self._flag(position, ride_id, "illegal_transition",
                       f"ride {type(event).__name__} while {status}")
        self.ride_status[ride_id] = after
        driver = UUID(event.driver_id) if hasattr(event, "driver_id") else None
        if isinstance(event, Ride.Offered):
            assert driver is not None
            held = self.driver_ride.get(driver)
            if held is not None and held != ride_id:
                self._flag(position, ride_id, "driver_in_two_rides",
                           f"driver {driver} offered ride {ride_id} while holding {held}")
            other = self.ride_driver.get(ride_id)
            if other is not None and other != driver:
                self._flag(position, ride_id, "ride_with_two_drivers",
                           f"ride {ride_id} offered to {driver} while held by {other}")
            self.driver_ride[driver] = ride_id
            self.ride_driver[ride_id] = driver
            self.open_offers[ride_id] = (event.offer_expires_at, position)
        elif isinstance(event, Ride.Accepted):
            self.open_offers.pop(ride_id, None)
            if self.ride_driver.get(ride_id) != driver:
                self._flag(position, ride_id, "ride_with_two_drivers",
                           f"ride {ride_id} accepted by {driver}, offered to "
                           f"{self.ride_driver.get(ride_id)}")
        elif after in (R.REQUESTED, R.COMPLETED, R.CANCELLED, R.EXPIRED):
            self.open_offers.pop(ride_id, None)
            holder = self.ride_driver.pop(ride_id, None)
            if holder is not None and self.driver_ride.get(holder) == ride_id:
                del self.driver_ride[holder]

    def _driver(self, event: Any, position: str) -> None:
        driver_id: UUID = event.originator_id
        allowed, after = DRIVER_TRANSITIONS[type(event)]
        status = self.driver_status.get(driver_id)
        if status not in allowed:
            self._flag(position, driver_id, "illegal_transition",
                       f"driver {type(event).__name__} while {status}")
        kind = type(event)
        if kind is Driver.OfflineAfterTripRequested:
            self.offline_after_trip.add(driver_id)
        elif kind is Driver.Released and driver_id in self.offline_after_trip:
            after = D.OFFLINE
        if kind in (Driver.Released, Driver.WentOnline, Driver.WentOffline):
            self.offline_after_trip.discard(driver_id)
        if after is not None:
            self.driver_status[driver_id] = after

    def _rider(self, event: Any, position: str) -> None:
        rider_id: UUID = event.originator_id
        active = self.rider_active.get(rider_id)
        ride = UUID(event.ride_id)
        if isinstance(event, Rider.RideRequested):
            if active is not None:
                self._flag(position, rider_id, "rider_with_two_rides",
                           f"rider requested {ride} while {active} is active")
            self.rider_active[rider_id] = ride
        else:
            if active != ride:
                self._flag(position, rider_id, "illegal_transition",
                           f"rider ended {ride} but the active ride is {active}")
            self.rider_active[rider_id] = None

    def _flag(self, position: str, agg_id: UUID, kind: str, detail: str) -> None:
        self.violations.append(Violation(position, str(agg_id), kind, detail))
