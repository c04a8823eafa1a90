"""View rows (projections) to wire views (``schemas.views``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from dispatch.api.auth import Principal
from dispatch.domain.operators import AUDIT_FIELDS
from dispatch.domain.products import DEFAULT_VEHICLE
from dispatch.privacy import Opener, as_is, shown
from projections.drivers import DriverRow
from projections.locations import DriverLocation
from projections.rides import RideRow
from schemas.common import LatLng, VehicleData
from schemas.views import (
    DrivenTripView,
    DriverLocationView,
    NearbyDriver,
    Position,
    RideView,
    TimelineEntry,
)

_TIMELINE_KEYS = frozenset({"at", "event", "position"})
# a ride's Requested; Driver.Arrived; a driver's crossings and hints (docs/PRIVACY.md)
_PERSONAL = frozenset({"pickup", "dropoff", "name", "place", "cell", "lat", "lng"})


def when(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def _uuid(value: str | None) -> UUID | None:
    return UUID(value) if value else None


def opened(data: dict[str, Any], open: Opener) -> dict[str, Any]:
    """An event's data with its sealed personal fields opened (``"erased"`` when erased)."""
    if not _PERSONAL & data.keys():
        return data
    return {k: shown(open(v, k)) if k in _PERSONAL else v for k, v in data.items()}


def timeline_entry(
    entry: dict[str, Any], hidden: frozenset[str] = frozenset(), open: Opener = as_is
) -> TimelineEntry:
    """``open``: how a sealed personal field is read (docs/PRIVACY.md); an erased one shows
    as ``"erased"``."""
    skip = hidden | _TIMELINE_KEYS
    data = opened({k: v for k, v in entry.items() if k not in skip}, open)
    return TimelineEntry(
        event=entry["event"], at=when(entry["at"]), position=entry["position"], data=data
    )


def hidden_from(caller: Principal) -> frozenset[str]:
    """What of an event a caller does not see: who the operator was, unless an operator."""
    return frozenset() if caller.role == "operator" else frozenset(AUDIT_FIELDS)


def latlng(value: Any, field: str, open: Opener = as_is) -> LatLng | None:
    """A view's coordinate pair, opened; None when erased."""
    opened = open(value, field)
    if not isinstance(opened, list):
        return None
    return LatLng(lat=opened[0], lng=opened[1])


def ride_view(row: RideRow, hidden: frozenset[str] = frozenset(), open: Opener = as_is) -> RideView:
    return RideView(
        ride_id=UUID(row.ride_id),
        rider_id=UUID(row.rider_id),
        status=row.status,  # type: ignore[arg-type]  # the projection's statuses
        pickup=latlng(row.pickup, "pickup", open),
        dropoff=latlng(row.dropoff, "dropoff", open),
        driver_id=_uuid(row.driver_id),
        offered_to=_uuid(row.offered_to),
        pickup_eta_s=row.pickup_eta_s,
        requested_at=when(row.requested_at),
        updated_at=when(row.updated_at),
        version=row.version,
        planned_pickup_at=when(row.planned_pickup_at) if row.planned_pickup_at else None,
        planned_dropoff_at=when(row.planned_dropoff_at) if row.planned_dropoff_at else None,
        **fare_of(row),
        timeline=[timeline_entry(e, hidden, open) for e in row.timeline],
    )


def fare_of(row: RideRow) -> dict[str, Any]:
    """The ride's fare terms (its ``Requested`` or ``Scheduled`` event's: with a scheduled
    ride's time and free cancellation cutoff), its trip and final fare (its ``Completed``
    event's), and a late cancellation's fee, from its timeline: none in events written
    before fares."""
    out: dict[str, Any] = {}
    for entry in row.timeline:
        if entry["event"] in ("Ride.Requested", "Ride.Scheduled"):
            out["fare_terms"] = entry.get("fare")
            if entry.get("sharing") is not None:
                out["sharing"] = entry["sharing"]
            if "scheduled_for" in entry:
                out["scheduled_for"] = entry["scheduled_for"]
                out["free_cancel_until"] = entry["free_cancel_until"]
        elif entry["event"] == "Ride.CancelledByRider" and entry.get("fee") is not None:
            out["cancellation_fee"] = entry["fee"]
        elif entry["event"] == "Ride.Completed" and entry.get("distance_m") is not None:
            out["trip"] = DrivenTripView(distance_m=entry["distance_m"],
                                         duration_s=entry["duration_s"],
                                         found_by=entry["trip_by"])  # fmt: skip
            out["fare"] = entry.get("fare")
    return out


_DEFAULT_VEHICLE = DEFAULT_VEHICLE.to_data()


def driver_view(row: DriverRow, where: DriverLocation | None) -> DriverLocationView:
    location = None
    if where is not None and where.lat is not None and where.lng is not None:
        assert where.at is not None
        location = Position(lat=where.lat, lng=where.lng, at=when(where.at))
    seen = where.at if where is not None else None
    return DriverLocationView(
        driver_id=UUID(row.driver_id),
        status=row.status,  # type: ignore[arg-type]
        ride_id=_uuid(row.ride_id),
        location=location,
        last_seen_at=when(seen) if seen is not None else None,
        vehicle=VehicleData.model_validate(getattr(row, "vehicle", None) or _DEFAULT_VEHICLE),
    )


def nearby_driver(where: DriverLocation, distance_m: float) -> NearbyDriver:
    assert where.lat is not None and where.lng is not None and where.at is not None
    return NearbyDriver(
        driver_id=UUID(where.driver_id),
        lat=where.lat,
        lng=where.lng,
        at=when(where.at),
        distance_m=round(distance_m, 1),
    )
