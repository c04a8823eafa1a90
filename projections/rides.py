"""Rides view: status, rider, driver and a timeline of the ride's events with their times."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dispatch.domain.ride import RIDE_TRANSITIONS, Ride, RideStatus
from dispatch.log import LogEvent

# A ride's status after each of its events: the aggregate's own transition table.
_STATUS_AFTER: dict[str, str] = {
    Ride.Created.TOPIC: RideStatus.REQUESTED.value,
    **{topic: after.value for topic, (_, after) in RIDE_TRANSITIONS.items()},
}


_KIND = {topic: topic.removeprefix("dispatch.") for topic in _STATUS_AFTER}


@dataclass(slots=True)
class RideRow:
    ride_id: str
    rider_id: str
    pickup: list[float]
    dropoff: list[float]
    status: str
    requested_at: float
    updated_at: float
    version: int
    driver_id: str | None = None
    offered_to: str | None = None
    pickup_eta_s: float | None = None
    timeline: list[dict[str, Any]] = field(default_factory=list)


RidesView = dict[str, RideRow]


class RidesProjection:
    name = "rides"
    topics = frozenset(_STATUS_AFTER)

    def initial(self) -> RidesView:
        return {}

    def apply(self, view: RidesView, e: LogEvent) -> RidesView:
        status = _STATUS_AFTER.get(e.topic)
        if status is None:
            return view
        topic, data = e.topic, e.data
        if topic == Ride.Created.TOPIC:
            row = RideRow(
                e.aggregate_id,
                data["rider_id"],
                data["pickup"],
                data["dropoff"],
                status,
                e.at,
                e.at,
                e.version,
            )
            view[e.aggregate_id] = row
        else:
            found = view.get(e.aggregate_id)
            if found is None:
                return view
            row = found
            row.status, row.updated_at, row.version = status, e.at, e.version
            if topic == Ride.Offered.TOPIC:
                row.offered_to, row.pickup_eta_s = data["driver_id"], data["pickup_eta_s"]
            elif topic == Ride.Accepted.TOPIC:
                row.driver_id, row.offered_to = data["driver_id"], None
            elif status == RideStatus.REQUESTED:
                row.offered_to = None
                row.driver_id = None
            elif status == RideStatus.CANCELLED:
                row.offered_to = None
        row.timeline.append({"at": e.at, "event": _KIND[topic], "position": e.where, **data})
        return view
