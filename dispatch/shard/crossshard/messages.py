"""The messages shards send one another for cross-shard matching (docs/ARCHITECTURE.md,
"Cross-shard matching (protocol)").

Each body is a small frozen dataclass of primitives. An ``Envelope`` carries one body from
a sender shard to a receiver shard with the channel's sequence number: ``(sender, receiver,
seq)`` is the message's id, which the receiver deduplicates (``channels.Inbox``). An
``Ack`` says up to which sequence number a receiver has applied (and committed) a channel;
acks are cumulative and idempotent, so they carry no id of their own.

``R`` is the ride's shard, ``O`` the driver's owner, ``H`` the rider's home shard.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, get_args

from dispatch.domain.command_record import CarriedRecord


# -- rider lock: H -> R, R -> H ---------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class OpenRide:
    """H -> R: the rider's lock is the ride's (taken at H with the request); open the ride
    here, at its pickup's shard. Sent only in the transaction that takes the lock."""

    ride: str
    rider: str
    pickup_lat: float
    pickup_lng: float
    dropoff_lat: float
    dropoff_lng: float
    requested_at: float  # on H's clock, for the record: R's max wait starts on its own clock
    # The ride's fare terms (``FareTerms.to_data()``), checked at H; None: not priced (and
    # a message sent before fares).
    fare: dict[str, Any] | None = None
    # The product asked for; None: a message sent before rides carried their own (the
    # fare's, or standard for a ride not priced).
    product: str | None = None
    # A scheduled ride's time (epoch seconds; checked at H): R books it; None: immediate.
    scheduled_for: float | None = None


@dataclass(frozen=True, slots=True)
class UnlockRider:
    """R -> H: the ride ended (``outcome``: completed, cancelled, expired, refused; the engine
    sends a ride R could not open as cancelled, since a rider's ``RideEnded`` names a ride
    status); let go of the rider's lock if this ride holds it."""

    rider: str
    ride: str
    outcome: str


@dataclass(frozen=True, slots=True)
class ActivateRide:
    """R -> H: the scheduled ride is due: make it the rider's active ride, unless another
    ride of theirs is active (the active one wins)."""

    rider: str
    ride: str


@dataclass(frozen=True, slots=True)
class RideActivated:
    """H -> R: the scheduled ride is the rider's active ride (``busy_with`` None), or the
    rider's other ride ``busy_with`` is active and the ride's dispatch is held."""

    rider: str
    ride: str
    busy_with: str | None


# -- reservations: R <-> O -------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Reserve:
    """R -> O: hold ``driver`` for ``ride`` (reservation ``resv``, unique per ride)."""

    resv: str
    ride: str
    driver: str


@dataclass(frozen=True, slots=True)
class Granted:
    """O -> R: the driver is held for ``resv`` until ``expires_at`` on O's clock."""

    resv: str
    ride: str
    driver: str
    expires_at: float


@dataclass(frozen=True, slots=True)
class Refused:
    """O -> R: no hold for ``resv``: the driver is not free, or (for an ``Accept``) the
    reservation is not held here."""

    resv: str
    ride: str
    driver: str
    reason: str


@dataclass(frozen=True, slots=True)
class Moved:
    """O -> R: this shard does not own the driver (any more); ``owner`` is where it went,
    when known."""

    resv: str
    ride: str
    driver: str
    owner: int | None


@dataclass(frozen=True, slots=True)
class Accept:
    """R -> O: the driver accepted the offer of ``resv``; commit it if it still holds."""

    resv: str
    ride: str
    driver: str


@dataclass(frozen=True, slots=True)
class Confirmed:
    """O -> R: the driver is assigned to the ride (the commit point was O)."""

    resv: str
    ride: str
    driver: str


@dataclass(frozen=True, slots=True)
class Expired:
    """O -> R: the hold of ``resv`` ran out on O's clock; the driver is free again."""

    resv: str
    ride: str
    driver: str


@dataclass(frozen=True, slots=True)
class Started:
    """R -> O: the trip of the ride ``driver`` is assigned to under ``resv`` has started;
    the owner shows the driver on its trip (what it knows of the driver, not a decision:
    the assignment was already O's)."""

    resv: str
    ride: str
    driver: str


@dataclass(frozen=True, slots=True)
class Release:
    """R -> O: the ride lets go of ``resv`` (declined, withdrawn, cancelled, completed,
    expired); free the driver if it is still held or assigned under it."""

    resv: str
    ride: str
    driver: str
    reason: str


# -- hand-off: O -> O' -----------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class HandOff:
    """O -> O': a free driver's availability is now the receiver's (``epoch`` counts the
    driver's hand-offs; a receiver that saw a later epoch ignores it)."""

    driver: str
    epoch: int
    # What the receiver needs to serve the driver (the engine's; the model sends none):
    # and the live records of the driver's commands, so a retry finds its first outcome.
    name: str = ""
    trips: int = 0
    records: tuple[CarriedRecord, ...] = ()
    # The driver's vehicle, so that the receiver's matcher offers it the products it
    # serves; product "" (the model, or a message sent before vehicles): the default one.
    product: str = ""
    seats: int = 0
    accessible: bool = False

    def __post_init__(self) -> None:
        # Read from the wire, records are dicts: made records again.
        records = tuple(
            r if isinstance(r, CarriedRecord) else CarriedRecord.from_data(r) for r in self.records
        )
        object.__setattr__(self, "records", records)


Body = (
    OpenRide
    | UnlockRider
    | ActivateRide
    | RideActivated
    | Reserve
    | Granted
    | Refused
    | Moved
    | Accept
    | Confirmed
    | Expired
    | Started
    | Release
    | HandOff
)
KINDS: dict[str, type[Body]] = {kind.__name__: kind for kind in get_args(Body)}


# How a side of the protocol sends: to a shard, a body (the outbox numbers it).
Send = Callable[[int, Body], object]


@dataclass(frozen=True, slots=True)
class Envelope:
    """One message on the channel ``sender -> receiver``, numbered from 1 by the sender."""

    sender: int
    receiver: int
    seq: int
    body: Body

    @property
    def id(self) -> str:
        return f"{self.sender}>{self.receiver}#{self.seq}"

    def to_data(self) -> dict[str, Any]:
        return {
            "from": self.sender,
            "to": self.receiver,
            "seq": self.seq,
            "kind": type(self.body).__name__,
            "body": _plain(asdict(self.body)),
        }

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> Envelope:
        kind = KINDS[data["kind"]]
        return cls(int(data["from"]), int(data["to"]), int(data["seq"]), kind(**data["body"]))


def _plain(value: Any) -> Any:
    """JSON's shapes: tuples as lists (a body reads the same after a round trip)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


@dataclass(frozen=True, slots=True)
class Ack:
    """``sender`` has applied and committed the channel ``receiver -> sender`` up to
    ``upto``: the receiver of the ack drops those messages from its outbox."""

    sender: int
    receiver: int
    upto: int
