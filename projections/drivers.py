"""Drivers view: status, current ride and counts per driver, plus totals per status."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from dispatch.domain.driver import (
    AVAILABILITY_TOPICS,
    Driver,
    DriverStatus,
    OfferOutcome,
    ReleaseReason,
    next_availability,
)
from dispatch.log import LogEvent


@dataclass(slots=True)
class DriverRow:
    driver_id: str
    name: str
    status: str = DriverStatus.OFFLINE.value
    ride_id: str | None = None
    offline_after_trip: bool = False
    offers: int = 0
    declined: int = 0
    expired: int = 0
    trips: int = 0
    cancelled: int = 0
    updated_at: float = 0.0
    version: int = 0


@dataclass
class DriversView:
    rows: dict[str, DriverRow] = field(default_factory=dict)
    by_status: Counter[str] = field(default_factory=Counter)


class DriversProjection:
    name = "drivers"
    topics = AVAILABILITY_TOPICS
    params = ""

    def initial(self) -> DriversView:
        return DriversView()

    def apply(self, view: DriversView, e: LogEvent) -> DriversView:
        topic = e.topic
        if topic == Driver.Created.TOPIC:
            row = DriverRow(e.aggregate_id, e.data["name"])
            view.rows[e.aggregate_id] = row
        else:
            found = view.rows.get(e.aggregate_id)
            if found is None:
                return view
            row = found
            view.by_status[row.status] -= 1
        after, row.offline_after_trip = next_availability(
            (row.status, row.offline_after_trip), topic
        )
        status = str(after)
        data = e.data
        if topic == Driver.OfferReceived.TOPIC:
            row.ride_id = data["ride_id"]
            row.offers += 1
        elif topic == Driver.OfferClosed.TOPIC:
            row.ride_id = None
            outcome: OfferOutcome = data["outcome"]
            if outcome == "declined":
                row.declined += 1
            elif outcome == "expired":
                row.expired += 1
        elif topic == Driver.Released.TOPIC:
            row.ride_id = None
            reason: ReleaseReason = data["reason"]
            if reason == "completed":
                row.trips += 1
            elif reason == "cancelled_by_driver":
                row.cancelled += 1
        row.status, row.updated_at, row.version = status, e.at, e.version
        view.by_status[status] += 1
        return view
