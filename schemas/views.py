"""What queries and streams return: read-side views on the wire, named by role. Version 1."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from dispatch.domain import driver, ride
from schemas.common import Latitude, LatLng, Longitude, OneOf, VehicleData
from schemas.events import SharingData
from schemas.fares import FareTermsData, FinalFareData, TripFoundBy

# The domain's statuses, as the strings the wire shows.
RideStatus = Annotated[str, OneOf(ride.RideStatus)]
DriverStatus = Annotated[str, OneOf(driver.DriverStatus)]


class TimelineEntry(BaseModel):
    """One event of a ride, in log order."""

    event: str = Field(examples=["Ride.Offered"])
    at: datetime
    position: str = Field(examples=["0:42"])
    data: dict[str, Any]


class DrivenTripView(BaseModel):
    """A completed ride's trip: metres and seconds, and how each was found."""

    distance_m: int = Field(examples=[2345])
    duration_s: int = Field(examples=[456])
    found_by: TripFoundBy


class RideView(BaseModel):
    """A ride's status, parties and timeline."""

    ride_id: UUID
    rider_id: UUID
    status: RideStatus
    pickup: LatLng | None = Field(description="Null when the rider was erased (docs/PRIVACY.md).")
    dropoff: LatLng | None = Field(description="Null when the rider was erased.")
    driver_id: UUID | None = None
    offered_to: UUID | None = None
    pickup_eta_s: float | None = None
    requested_at: datetime
    updated_at: datetime
    version: int
    fare_terms: FareTermsData | None = Field(
        default=None,
        description="How the ride is priced, recorded when it was requested: the rule of "
        "the pickup's market for its product, the rules version, the surge, and `quote` "
        "(its id and what it promised) when the ride carried one; null: not priced (no rule "
        "for the trip, or requested before fares).",
    )
    trip: DrivenTripView | None = Field(
        default=None, description="The trip driven, once the ride completed (null before)."
    )
    fare: FinalFareData | None = Field(
        default=None,
        description="The final fare, once the ride completed: the quoted total or the "
        "metered fare (`basis`); null before, or for a ride that is not priced.",
    )
    scheduled_for: datetime | None = Field(
        default=None,
        description="A scheduled ride's pickup time (null: an immediate ride). It is "
        "`scheduled` until its dispatch starts, ahead of that time (docs/MARKETPLACE.md, "
        '"Scheduled rides").',
    )
    free_cancel_until: datetime | None = Field(
        default=None,
        description="A scheduled ride: until when its rider may cancel it free.",
    )
    cancellation_fee: str | None = Field(
        default=None,
        description="What its rider was charged for cancelling a scheduled ride after its "
        "free cutoff (decimal text in its fare's currency); null: nothing.",
    )
    sharing: SharingData | None = Field(
        default=None,
        description="A shared ride's terms, fixed at its request: the seats it takes, its "
        "longest wait for pickup, its longest time in the vehicle as a factor of the direct "
        "trip, and the direct trip's estimated seconds (docs/ARCHITECTURE.md, \"Shared "
        'rides"); null: a single ride.',
    )
    planned_pickup_at: datetime | None = Field(
        default=None,
        description="A shared ride: when its vehicle's plan, as last judged (its offer, or "
        "the last time a rider was put into the plan), has it picked up; null: not planned. "
        "Its rider sees their own stops' times, nobody else's.",
    )
    planned_dropoff_at: datetime | None = Field(
        default=None, description="A shared ride: when the same plan has it dropped off."
    )
    timeline: list[TimelineEntry]


class ScheduledRides(BaseModel):
    """A rider's scheduled rides whose dispatch has not started, soonest first."""

    rider_id: UUID
    rides: list[RideView]


class Position(BaseModel):
    lat: Latitude
    lng: Longitude
    at: datetime


class DriverLocationView(BaseModel):
    """Where a driver is and what they are doing. ``location`` is null when the driver is
    offline or their last ping is older than the freshness window."""

    driver_id: UUID
    status: DriverStatus
    ride_id: UUID | None = None
    location: Position | None = None
    last_seen_at: datetime | None = None
    vehicle: VehicleData = Field(
        description="The driver's vehicle (a driver registered before vehicles drives the "
        "default one: standard, 4 seats, not accessible)."
    )


class NearbyDriver(BaseModel):
    driver_id: UUID
    lat: Latitude
    lng: Longitude
    at: datetime
    distance_m: float = Field(ge=0)


class NearbyDrivers(BaseModel):
    """Available drivers nearest to a point, closest first."""

    lat: Latitude
    lng: Longitude
    radius_m: float
    drivers: list[NearbyDriver]

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "lat": 37.7749,
                    "lng": -122.4194,
                    "radius_m": 2000,
                    "drivers": [
                        {
                            "driver_id": "00000000-3c1a-4f7e-9d2b-5e8f1a2b3c4d",
                            "lat": 37.7751,
                            "lng": -122.4189,
                            "at": "2026-01-05T08:00:00Z",
                            "distance_m": 48.6,
                        }
                    ],
                }
            ]
        }
    )


class HeatmapCell(BaseModel):
    cell: str = Field(examples=["8828308281fffff"])
    supply: int = Field(description="Available drivers with a known position.")
    demand: int = Field(description="Rides waiting for a driver (requested or offered).")


class SurgeCell(BaseModel):
    cell: str = Field(examples=["8828308281fffff"])
    multiplier: str = Field(examples=["1.35"], description="The cell's surge multiplier.")


class Heatmap(BaseModel):
    """Supply and demand per H3 cell at the asked resolution (cells with neither left out),
    and the surge layer: every surge cell above 1.00 (at the surge resolution, 8, whatever
    the asked one)."""

    resolution: int
    cells: list[HeatmapCell]
    surge_resolution: int = Field(default=8, description="The H3 resolution of surge cells.")
    surge: list[SurgeCell] = Field(
        default_factory=list, description="Cells whose multiplier is above 1.00."
    )


class Surge(BaseModel):
    """The surge multiplier of the H3 cell holding a place (1.00 where there is none)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"lat": 37.7749, "lng": -122.4194, "cell": "8828308281fffff", "resolution": 8,
                 "multiplier": "1.35"}
            ]
        }
    )  # fmt: skip

    lat: float = Field(examples=[37.7749])
    lng: float = Field(examples=[-122.4194])
    cell: str = Field(examples=["8828308281fffff"], description="The surge cell (H3, hex).")
    resolution: int = Field(examples=[8], description="The H3 resolution of surge cells.")
    multiplier: str = Field(examples=["1.35"], description="From 1.00 to the cap, as text.")


class StreamEvent(BaseModel):
    """One server-sent event: a log event of the ride or driver, or a ``snapshot``."""

    type: str = Field(examples=["Ride.Offered"])
    position: str = Field(examples=["0:42"])
    aggregate_id: str
    at: datetime
    data: dict[str, Any]


class ShardReadiness(BaseModel):
    shard: int
    position: int = Field(description="The last log position every view includes.")
    head: int | None = Field(None, description="The log's last position, when readable.")
    lag: int | None = None
    age_s: float | None = Field(
        None,
        description="Seconds since the views last read the shard to its end, counted from "
        "when that read began (null before the first): they hold every event committed "
        "before. Over the revocation bound, this instance refuses the tokens of the "
        "principals whose token versions the shard keeps (503).",
    )


class Readiness(BaseModel):
    ready: bool
    started: bool
    reason: str = ""
    shards: list[ShardReadiness]


class Liveness(BaseModel):
    status: Literal["ok"] = "ok"


class QueuedDriver(BaseModel):
    driver_id: UUID
    position: int = Field(ge=1, description="1 at the head of the queue.")
    queued_at: datetime = Field(description="When the driver joined the queue.")


class PlaceQueue(BaseModel):
    """A geofenced place's first-in-first-out queue of available drivers inside it: the
    whole queue for an operator; for a driver, their own position (none when not queued)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"place_id": "sfo", "name": "SFO airport", "market": "san-francisco",
                 "length": 12, "position": 3, "queued_at": "2026-12-03T06:40:00Z",
                 "inside": None, "drivers": None}
            ]
        }
    )  # fmt: skip

    place_id: str = Field(examples=["sfo"])
    name: str
    market: str
    length: int = Field(ge=0, description="Drivers in the queue.")
    position: int | None = Field(
        default=None, ge=1, description="A driver's own place in the queue (1: the head)."
    )
    queued_at: datetime | None = Field(default=None, description="When that driver joined.")
    inside: int | None = Field(
        default=None, ge=0, description="Operators: drivers inside the place, queued or not."
    )
    drivers: list[QueuedDriver] | None = Field(
        default=None, description="Operators: the whole queue, head first."
    )
