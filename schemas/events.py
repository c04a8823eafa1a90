"""Published shapes of the stored events, one model per event type (schema version 1).

These describe the ``data`` of an exported event (``dispatch replay export``), which is the
stored event's JSON with the library's type wrappers flattened: ids are UUID strings,
times ISO 8601 strings, coordinates ``[lat, lng]``. On the Kafka events topic the same
fields appear in the stored ``state``, where times and UUIDs are wrapped as
``{"_type_": "datetime_iso" | "uuid_hex", "_data_": "..."}``.
``scripts/export_schemas.py`` writes them as JSON Schema into ``schemas/json/``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, model_validator

from dispatch.domain.credentials import PrincipalRole
from dispatch.domain.driver import OfferOutcome, ReleaseReason
from dispatch.domain.operators import OperatorRole
from dispatch.domain.pooling import MAX_RIDE_SEATS, MIN_RIDE_SEATS
from dispatch.domain.ride import RIDE_ENDINGS, RideStatus
from schemas.common import OneOf, OperatorName, ProductName, VehicleData
from schemas.fares import FareTermsData, FinalFareData, TripFoundBy

Coordinate = Annotated[list[float], Field(min_length=2, max_length=2)]
# A personal field sealed under its subject's key (docs/PRIVACY.md; ``dispatch.privacy``
# makes them, and a test holds this pattern to its tokens): the value's JSON, AES-GCM.
Sealed = Annotated[
    str,
    Field(
        pattern=r"^pf1\.[0-9a-f-]{36}\.[0-9a-f]{16}\.[A-Za-z0-9_-]+$",
        description="A personal field sealed under its subject's key: "
        "pf1.<subject id>.<key id>.<base64url(nonce, ciphertext, tag)>; unreadable once the "
        "subject is erased (docs/PRIVACY.md).",
    ),
]
Name = Annotated[
    str,
    Field(
        description="The name, sealed (a pf1. token) or, in events stored before "
        "sealing, in the clear."
    ),
]
# What a rider is told when the ride ends: the terminal status its ending left.
RideOutcome = Annotated[str, OneOf(s for s in RideStatus if s in RIDE_ENDINGS.values())]


class _Data(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# A stop of a shared plan: [ride id, "P" (its pickup) or "D" (its drop-off)].
PlanStop = tuple[UUID, Literal["P", "D"]]
StopTime = Annotated[float, Field(allow_inf_nan=False)]


class Empty(_Data):
    pass


class SharingData(_Data):
    """A shared ride's terms, fixed at its request (docs/ARCHITECTURE.md, "Shared rides")."""

    seats: int = Field(ge=MIN_RIDE_SEATS, le=MAX_RIDE_SEATS, description="Seats it takes.")
    max_wait_s: float = Field(gt=0, allow_inf_nan=False, description="Longest wait for pickup.")
    detour_factor: float = Field(
        ge=1, allow_inf_nan=False,
        description="Longest time in the vehicle, as a factor of the direct trip's.",
    )  # fmt: skip
    direct_s: float = Field(
        ge=0, allow_inf_nan=False, description="The direct trip's estimated seconds then."
    )


class _RideOpened(_Data):
    rider_id: UUID
    pickup: Coordinate | Sealed = Field(description="[lat, lng], sealed under the rider's key.")
    dropoff: Coordinate | Sealed = Field(description="[lat, lng], sealed under the rider's key.")
    expires_at: datetime
    fare: FareTermsData | None = Field(
        default=None, description="How the ride is priced; null: not priced."
    )
    product: ProductName = Field(
        default="standard",
        description="The kind of vehicle asked for: the ride is offered only to vehicles "
        "that serve it, priced or not (with fare terms, theirs).",
    )


class RideRequested(_RideOpened):
    """Version 2 adds ``fare`` (absent from a version-1 event: read as null, not priced).
    Version 3 adds ``product`` (absent from an older event: its fare's, or standard for a
    ride not priced). Version 4 adds ``sharing`` (absent from an older event: null, a
    single ride)."""

    sharing: SharingData | None = Field(
        default=None, description="A shared ride's terms; null: a single ride."
    )


class RideScheduled(_RideOpened):
    """A scheduled ride booked (docs/MARKETPLACE.md, "Scheduled rides"): ``expires_at`` is
    its time plus the late search window."""

    scheduled_for: datetime = Field(description="The pickup time booked.")
    free_cancel_until: datetime = Field(
        description="Until when the rider may cancel free; after it a cancellation is charged."
    )


class RideDispatchDue(_Data):
    expected_pickup_s: float = Field(
        ge=0, description="The expected pickup the matcher found it due by (ETA of supply)."
    )
    margin_s: float = Field(ge=0, description="The margin before that, in seconds.")


class RideDispatchHeld(_Data):
    reason: Literal["rider_busy"]
    busy_with: UUID = Field(description="The rider's other ride, active: it wins.")


class RideBooked(_Data):
    ride_id: UUID
    scheduled_for: datetime


class RideCompleted(_Data):
    """Version 2 adds the trip driven and the final fare (absent from a version-1 event:
    read as null, unknown)."""

    driver_id: UUID
    distance_m: int | None = Field(default=None, ge=0, description="The trip driven, metres.")
    duration_s: int | None = Field(default=None, ge=0, description="The trip driven, seconds.")
    trip_by: TripFoundBy | None = None
    fare: FinalFareData | None = Field(
        default=None, description="The final fare; null: the ride was not priced."
    )


class RideOffered(_Data):
    driver_id: UUID
    offer_expires_at: datetime
    pickup_eta_s: float
    distance_m: float


class RideDriverEvent(_Data):
    driver_id: UUID


class RideCancelledByRider(_Data):
    """Version 2 adds ``fee`` (absent from a version-1 event: read as null, free)."""

    reason: str
    fee: str | None = Field(
        default=None,
        description="What a scheduled ride cancelled after its free cutoff is charged "
        "(decimal text in its fare's currency); null: free.",
    )


class RideCancelledByOperator(_Data):
    operator_id: UUID = Field(description="Who cancelled: the operator's id.")
    operator_name: OperatorName = Field(description="Who cancelled: the operator's name.")
    operator_role: OperatorRole = Field(description="The operator role they cancelled in.")
    reason: str


class RideCancelledByDriver(_Data):
    driver_id: UUID
    reason: str


class Registered(_Data):
    name: Name


_VEHICLE = (
    "The driver's vehicle (class version 2 of Registered, 3 of Arrived); absent before: "
    "read as the default vehicle (standard, 4 seats, not accessible)."
)


class DriverRegistered(Registered):
    vehicle: VehicleData | None = Field(default=None, description=_VEHICLE)


class Erased(_Data):
    """A rider or driver erased (docs/PRIVACY.md): their key is deleted."""

    by: Literal["self", "operator"] = Field(description="The subject themself, or an admin.")


class ErasedByOperator(Erased):
    """An admin erased them; the event names the admin (the audit trail)."""

    operator_id: str
    operator_name: str
    operator_role: str


class OfferReceived(_Data):
    ride_id: UUID
    expires_at: datetime
    resv: str = Field(
        default="",
        description="The reservation of a ride of another shard the driver is held for; empty "
        "for a ride of the driver's own shard, and absent in events written before offers "
        "across shards.",
    )
    plan: list[PlanStop] | None = Field(
        default=None,
        description="A shared ride's offer: the plan of stops the driver would serve; null "
        "for a single ride, absent in events written before shared rides.",
    )
    times: list[StopTime] | None = Field(
        default=None, description="Each stop's estimated time (epoch s) as the plan was judged."
    )


class PlanExtended(_Data):
    ride_id: UUID
    plan: list[PlanStop] = Field(description="The driver's plan of stops from now on.")
    times: list[StopTime] = Field(
        description="Each stop's estimated time (epoch s) as the plan was judged."
    )


class RideDriverAsked(_Data):
    driver_id: UUID
    resv: str
    pickup_eta_s: float
    distance_m: float
    owner: int = Field(
        default=-1,
        description="The shard asked (the driver's owner as the ride's shard knew it); -1 "
        "or absent in events written before driver hand-offs: the driver id's home shard.",
    )


class DriverHandedOff(_Data):
    to_shard: int = Field(ge=0, description="The shard that serves the driver from now on.")
    epoch: int = Field(ge=1, description="The driver's tenure there (hand-offs so far).")


_COMMANDS = (
    "The driver's commands whose records the hand-off carried (class version 2): command "
    "id -> [time first recorded (POSIX s), idempotency window (s)]; absent before."
)


class DriverArrived(_Data):
    name: Name
    epoch: int = Field(ge=1, description="The driver's tenure here (hand-offs so far).")
    from_shard: int = Field(ge=0)
    trips: int = Field(ge=0, description="Trips completed before, at other shards.")
    commands: dict[str, list[float]] = Field(default_factory=dict, description=_COMMANDS)
    vehicle: VehicleData | None = Field(default=None, description=_VEHICLE)


class DriverReturned(_Data):
    epoch: int = Field(ge=1, description="The driver's tenure here (hand-offs so far).")
    from_shard: int = Field(ge=0)
    trips: int = Field(ge=0, description="Trips completed in all, at every shard.")
    commands: dict[str, list[float]] = Field(default_factory=dict, description=_COMMANDS)


class DriverCommandNoted(_Data):
    command_id: str
    window_s: float = Field(gt=0, description="The idempotency window of its record, in s.")


class DriverPlace(_Data):
    place: Sealed | str | None = Field(
        description="The geofenced place's id (a market's ``places`` entry, "
        "docs/MARKETPLACE.md), sealed under the driver's key (plain in logs written before "
        "crossings were sealed); null: the driver was erased when it was sealed."
    )


class DriverHinted(_Data):
    cell: Sealed | str | None = Field(
        description="The H3 cell (resolution 8) where demand outruns supply, sealed under the "
        "driver's key (plain in logs written before hints were sealed); null: the driver was "
        "erased when it was sealed."
    )
    lat: Sealed | float | None = Field(description="The cell's centre, sealed as ``cell``.")
    lng: Sealed | float | None = Field(description="Sealed as ``cell``.")
    demand: int = Field(ge=0, description="Rides waiting for a driver in the cell.")
    supply: int = Field(ge=0, description="Available drivers in the cell.")
    eta_s: float = Field(ge=0, description="The driver's ETA to the cell's centre, in s.")


class RideAskEnded(_Data):
    driver_id: UUID
    reason: str
    moved_to: int = Field(
        default=-1,
        description="With reason moved: the shard that serves the driver now (-1 or absent: "
        "not known).",
    )


class LinkOpened(_Data):
    peer: int


class LinkSent(_Data):
    peer: int
    seq: int
    kind: str
    body: dict[str, Any]


class LinkApplied(_Data):
    seq: int


class LinkAcknowledged(_Data):
    upto: int


Multiplier = Annotated[
    str,
    Field(pattern=r"^(10\.00|[1-9]\.[0-9]{2})$", examples=["1.35"],
          description="A surge multiplier, 1.00 to 10.00, as decimal text."),
]  # fmt: skip


class SurgeStarted(_Data):
    resolution: int = Field(ge=0, le=15, description="The H3 resolution of its cells.")


class SurgeCurveRecord(_Data):
    cap: Multiplier = Field(description="The highest multiplier.")
    gain: float = Field(gt=0, description="The target's gain on the pressure above 1.")
    smoothing: float = Field(gt=0, le=1, description="The share of the gap a cadence closes.")
    band: str = Field(pattern=r"^[01]\.[0-9]{2}$", description="The hysteresis band.")
    noise: float = Field(
        default=0.0, ge=0, le=10,
        description="The noise band: Poisson deviations of demand a move needs (0: none; absent "
        "in changes recorded before it).",
    )  # fmt: skip


class SurgeChanged(_Data):
    cell: str = Field(description="The H3 cell (hex), at the shard's surge resolution.")
    multiplier: Multiplier = Field(description="The cell's multiplier from now on.")
    previous: Multiplier = Field(description="The cell's multiplier until now.")
    target: Multiplier = Field(description="What the curve asked for (the level moves part way).")
    demand: int = Field(ge=0, description="Ride requests in the cell within the window.")
    supply: int = Field(ge=0, description="Available drivers in the cell when computed.")
    window_s: float = Field(gt=0, description="The demand window, in seconds.")
    curve: SurgeCurveRecord | None = Field(
        default=None,
        description="The curve's settings this change was computed with (None: an event of"
        " version 1, which did not record them).",
    )


class SurgeRecomputed(_Data):
    """One cadence's changes: row ``i`` of the columns is one cell's change."""

    cells: list[str] = Field(
        min_length=1, description="The H3 cells (hex) whose multipliers moved, at the shard's "
        "surge resolution; row i of every column below is cells[i]'s change.",
    )  # fmt: skip
    multipliers: list[Multiplier] = Field(min_length=1, description="Each cell's new multiplier.")
    previous: list[Multiplier] = Field(
        min_length=1, description="Each cell's multiplier until now."
    )
    targets: list[Multiplier] = Field(
        min_length=1, description="What the curve asked for, each cell (the level moves part way)."
    )
    demand: list[Annotated[int, Field(ge=0)]] = Field(
        min_length=1, description="Ride requests in each cell within the window."
    )
    supply: list[Annotated[int, Field(ge=0)]] = Field(
        min_length=1, description="Available drivers in each cell when computed."
    )
    window_s: float = Field(gt=0, description="The demand window, in seconds.")
    curve: SurgeCurveRecord = Field(
        description="The curve's settings this cadence was computed with (always recorded: "
        "with each row's previous, demand and supply, what re-derives its multiplier and target)."
    )

    @model_validator(mode="after")
    def _columns_line_up(self) -> SurgeRecomputed:
        columns = (self.multipliers, self.previous, self.targets, self.demand, self.supply)
        if any(len(column) != len(self.cells) for column in columns):
            raise ValueError("every column lists one entry a cell")
        return self


class OfferClosed(_Data):
    ride_id: UUID
    outcome: OfferOutcome


class DriverRideEvent(_Data):
    ride_id: UUID


class Released(_Data):
    ride_id: UUID
    reason: ReleaseReason


class RideEnded(_Data):
    ride_id: UUID
    outcome: RideOutcome


class CommandHandled(_Data):
    command_id: str
    command_type: str
    accepted: bool
    code: str
    reason: str
    aggregate_ids: list[UUID]
    fingerprint: str = Field(
        default="",
        description="The request fingerprint the command came with (class version 2); empty "
        "for commands sent without one and in version 1 records.",
    )
    window_s: float | None = Field(
        default=None,
        description="The idempotency window in force when the record was written, in seconds "
        "(class version 3): the record answers retries of its command id for that long. "
        "None (or absent) in older records: unknown.",
    )


class CommandCarried(CommandHandled):
    from_shard: int = Field(
        ge=0,
        description="The shard that handed the command's driver off with this record: a "
        "copy of the record written where the command was handled, at its first time.",
    )


class CredentialsOpened(_Data):
    principal_id: UUID = Field(description="Whose credentials: a driver, rider or operator id.")
    principal_role: PrincipalRole


class TokensRevoked(_Data):
    principal_id: UUID
    principal_role: PrincipalRole
    token_version: int = Field(
        ge=1, description="The principal's tokens of a lower version are refused from now on."
    )
    reason: str


class TokensRevokedByOperator(TokensRevoked):
    operator_id: UUID = Field(description="Who revoked: the operator's id.")
    operator_name: OperatorName = Field(description="Who revoked: the operator's name.")
    operator_role: OperatorRole = Field(description="The operator role they revoked in.")


EVENT_DATA: dict[str, type[_Data]] = {
    "dispatch.Ride.Requested": RideRequested,
    "dispatch.Ride.Offered": RideOffered,
    "dispatch.Ride.DriverAsked": RideDriverAsked,
    "dispatch.Ride.AskEnded": RideAskEnded,
    "dispatch.Ride.OfferDeclined": RideDriverEvent,
    "dispatch.Ride.OfferExpired": RideDriverEvent,
    "dispatch.Ride.Accepted": RideDriverEvent,
    "dispatch.Ride.Pooled": RideDriverEvent,
    "dispatch.Ride.DriverArrived": RideDriverEvent,
    "dispatch.Ride.TripStarted": RideDriverEvent,
    "dispatch.Ride.Completed": RideCompleted,
    "dispatch.Ride.CancelledByRider": RideCancelledByRider,
    "dispatch.Ride.CancelledByOperator": RideCancelledByOperator,
    "dispatch.Ride.CancelledByDriver": RideCancelledByDriver,
    "dispatch.Ride.Expired": Empty,
    "dispatch.Ride.Scheduled": RideScheduled,
    "dispatch.Ride.DispatchDue": RideDispatchDue,
    "dispatch.Ride.DispatchStarted": Empty,
    "dispatch.Ride.DispatchHeld": RideDispatchHeld,
    "dispatch.Ride.Overdue": Empty,
    "dispatch.Driver.Registered": DriverRegistered,
    "dispatch.Driver.Erased": Erased,
    "dispatch.Rider.Erased": Erased,
    "dispatch.Driver.ErasedByOperator": ErasedByOperator,
    "dispatch.Rider.ErasedByOperator": ErasedByOperator,
    "dispatch.Driver.WentOnline": Empty,
    "dispatch.Driver.WentOffline": Empty,
    "dispatch.Driver.OfflineAfterTripRequested": Empty,
    "dispatch.Driver.OfferReceived": OfferReceived,
    "dispatch.Driver.OfferClosed": OfferClosed,
    "dispatch.Driver.Assigned": DriverRideEvent,
    "dispatch.Driver.TripStarted": DriverRideEvent,
    "dispatch.Driver.Released": Released,
    "dispatch.Driver.PlanExtended": PlanExtended,
    "dispatch.Driver.PoolPickedUp": DriverRideEvent,
    "dispatch.Driver.PoolRideEnded": Released,
    "dispatch.Driver.AboardEmptied": Released,
    "dispatch.Driver.HandedOff": DriverHandedOff,
    "dispatch.Driver.Arrived": DriverArrived,
    "dispatch.Driver.Returned": DriverReturned,
    "dispatch.Driver.CommandNoted": DriverCommandNoted,
    "dispatch.Driver.EnteredPlace": DriverPlace,
    "dispatch.Driver.LeftPlace": DriverPlace,
    "dispatch.Driver.Hinted": DriverHinted,
    "dispatch.Rider.Registered": Registered,
    "dispatch.Rider.RideRequested": DriverRideEvent,
    "dispatch.Rider.RideEnded": RideEnded,
    "dispatch.Rider.RideBooked": RideBooked,
    "dispatch.Rider.ScheduledRideActivated": DriverRideEvent,
    "dispatch.CommandRecord.Handled": CommandHandled,
    "dispatch.CommandRecord.Carried": CommandCarried,
    "dispatch.Link.Opened": LinkOpened,
    "dispatch.Link.Sent": LinkSent,
    "dispatch.Link.Applied": LinkApplied,
    "dispatch.Link.Acknowledged": LinkAcknowledged,
    "dispatch.Surge.Started": SurgeStarted,
    "dispatch.Surge.Changed": SurgeChanged,
    "dispatch.Surge.Recomputed": SurgeRecomputed,
    "dispatch.Credentials.Opened": CredentialsOpened,
    "dispatch.Credentials.TokensRevoked": TokensRevoked,
    "dispatch.Credentials.TokensRevokedByOperator": TokensRevokedByOperator,
}


class ExportedEvent(BaseModel):
    """One line of ``dispatch replay export``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    shard: int = Field(ge=0)
    position: int = Field(ge=1, description="Notification id in the shard's log.")
    aggregate_id: UUID
    version: int = Field(ge=1)
    type: str = Field(description="Stable event type name, e.g. dispatch.Ride.Offered.")
    at: datetime
    data: dict[str, Any]


def validate_exported(record: dict[str, Any]) -> None:
    """Raise ``pydantic.ValidationError`` unless ``record`` matches its published schema."""
    event = ExportedEvent.model_validate(record)
    model = EVENT_DATA.get(event.type)
    if model is None:
        raise ValueError(f"unknown event type {event.type!r}")
    model.model_validate(event.data)


def json_schemas() -> dict[str, dict[str, Any]]:
    """Every published schema by file name."""
    out = {"exported-event.json": ExportedEvent.model_json_schema()}
    for topic, model in EVENT_DATA.items():
        schema = model.model_json_schema()
        schema["title"] = topic
        out[f"{topic}.json"] = schema
    return out
