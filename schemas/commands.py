"""Command envelopes: what the API and the simulator send to a shard's worker.

``command_id`` is the idempotency key: a repeated id gets the first outcome back and
records nothing new. The shard is carried in the aggregate ids (see ``dispatch.domain.ids``).
Schema version 1.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from dispatch.domain.credentials import PrincipalRole, credentials_id
from dispatch.domain.operators import DispatchingRole, OperatorRole
from dispatch.domain.operators import operator_id as id_of_operator
from dispatch.domain.pooling import MAX_RIDE_SEATS, MIN_RIDE_SEATS
from schemas.common import LatLng, Name, OperatorName, ProductName, Reason, VehicleData
from schemas.fares import FareTermsData

SCHEMA_VERSION: Literal[1] = 1


class _Command(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RegisterDriver(_Command):
    type: Literal["register_driver"] = "register_driver"
    driver_id: UUID
    name: Name
    vehicle: VehicleData | None = None  # None: the default vehicle (standard, 4 seats)


class RegisterRider(_Command):
    type: Literal["register_rider"] = "register_rider"
    rider_id: UUID
    name: Name


class GoOnline(_Command):
    type: Literal["go_online"] = "go_online"
    driver_id: UUID


class GoOffline(_Command):
    type: Literal["go_offline"] = "go_offline"
    driver_id: UUID
    after_trip: bool = False


class RequestRide(_Command):
    type: Literal["request_ride"] = "request_ride"
    ride_id: UUID
    rider_id: UUID
    pickup: LatLng
    dropoff: LatLng
    fare: FareTermsData | None = Field(
        default=None,
        description="How the ride is priced (from its quote, or the rules in force); null: "
        "not priced.",
    )
    product: ProductName | None = Field(
        default=None,
        description="The kind of vehicle asked for (one of the catalog's): the ride is "
        "offered only to vehicles that serve it, priced or not. With fare terms, it must be "
        "theirs. Null or absent (a command sent before rides carried their product): the "
        "fare terms', or standard for a ride not priced.",
    )
    scheduled_for: AwareDatetime | None = Field(
        default=None,
        description="Book the ride for this time (a scheduled ride, dispatched ahead of "
        "it): at least the least lead time and at most the horizon ahead on the shard's "
        'clock (docs/MARKETPLACE.md, "Scheduled rides"). Null: an immediate ride.',
    )
    shared: bool = Field(
        default=False,
        description="A shared ride: it may ride with others going its way, within the "
        'deployment\'s wait and detour bounds (docs/ARCHITECTURE.md, "Shared rides").',
    )
    seats: int = Field(
        default=1, ge=MIN_RIDE_SEATS, le=MAX_RIDE_SEATS,
        description="The seats a shared ride takes (1 or 2); 1 for a single ride.",
    )  # fmt: skip

    @model_validator(mode="after")
    def _sharing_fits(self) -> RequestRide:
        if self.seats != 1 and not self.shared:
            raise ValueError("seats: only a shared ride asks for seats (a single ride has the car)")
        if self.shared and self.scheduled_for is not None:
            raise ValueError("scheduled_for: a shared ride is not booked ahead")
        return self


class CancelRide(_Command):
    """The rider cancels (any time before the trip starts)."""

    type: Literal["cancel_ride"] = "cancel_ride"
    ride_id: UUID
    rider_id: UUID
    reason: Reason = ""


class OperatorCancelRide(_Command):
    """An operator who dispatches cancels a ride (before the trip starts), with a reason;
    the event it records names them."""

    type: Literal["operator_cancel_ride"] = "operator_cancel_ride"
    ride_id: UUID
    operator_id: UUID = Field(
        description="The operator's id: the one their name gives (a UUIDv5 of "
        "operator_name, dispatch.domain.operators.operator_id); any other is refused."
    )
    operator_name: OperatorName
    operator_role: DispatchingRole = Field(
        description="The role their token gives them (one that may cancel), recorded with them."
    )
    reason: Annotated[str, Field(min_length=1, max_length=500)]

    @model_validator(mode="after")
    def _names_one_operator(self) -> OperatorCancelRide:
        """The id and the name are one operator's: the audit record cannot disagree."""
        expected = id_of_operator(self.operator_name)
        if self.operator_id != expected:
            raise ValueError(
                f"operator_id {self.operator_id} is not the id of operator "
                f"{self.operator_name!r} ({expected})"
            )
        return self


class RevokeTokens(_Command):
    """Revoke every token of one principal: its token version goes up, and every token of
    a lower version is refused from then on (``dispatch.domain.credentials``). By the
    principal itself (no operator fields, or the operator's own id), with the version of
    the token it revoked with; or by an operator of role admin, naming them."""

    type: Literal["revoke_tokens"] = "revoke_tokens"
    principal_id: UUID = Field(description="Whose tokens: a driver, rider or operator id.")
    principal_role: PrincipalRole
    caller_token_version: Annotated[int, Field(ge=0, lt=2**31 - 1)] | None = Field(
        default=None,
        description="The principal revoking its own tokens: the version of the token it "
        "sent (the new version is one above it; a revoked one is refused). None when an "
        "admin revokes another's.",
    )
    operator_id: UUID | None = Field(
        default=None, description="The operator who revoked (the id operator_name gives)."
    )
    operator_name: OperatorName | None = None
    operator_role: OperatorRole | None = None
    reason: Reason = ""

    @model_validator(mode="after")
    def _one_author(self) -> RevokeTokens:
        """Who revokes is the principal itself or an admin, named consistently: the audit
        record cannot disagree with itself."""
        named = (self.operator_id, self.operator_name, self.operator_role)
        if any(f is not None for f in named) and not all(f is not None for f in named):
            raise ValueError("operator_id, operator_name and operator_role go together")
        if self.operator_id is not None and self.operator_name is not None:
            expected = id_of_operator(self.operator_name)
            if self.operator_id != expected:
                raise ValueError(
                    f"operator_id {self.operator_id} is not the id of operator "
                    f"{self.operator_name!r} ({expected})"
                )
        if self.operator_id is None and self.principal_role == "operator":
            raise ValueError("an operator's tokens are revoked by an operator (name them)")
        own = self.by_itself
        if own and self.operator_id is not None and self.principal_role != "operator":
            raise ValueError("an operator revoking their own tokens is an operator principal")
        if own != (self.caller_token_version is not None):
            raise ValueError(
                "caller_token_version is the principal's own token's, given exactly when the "
                "principal revokes its own tokens"
            )
        if not own and self.operator_role != "admin":
            raise ValueError("only an operator of role admin revokes another's tokens")
        return self

    @property
    def by_itself(self) -> bool:
        """The principal revokes its own tokens (a driver or rider, or the operator named)."""
        return self.operator_id is None or self.operator_id == self.principal_id

    @property
    def credentials_id(self) -> UUID:
        return credentials_id(self.principal_role, self.principal_id)


class _DriverRideCommand(_Command):
    ride_id: UUID
    driver_id: UUID


class AcceptOffer(_DriverRideCommand):
    type: Literal["accept_offer"] = "accept_offer"


class DeclineOffer(_DriverRideCommand):
    type: Literal["decline_offer"] = "decline_offer"


class MarkArrived(_DriverRideCommand):
    type: Literal["mark_arrived"] = "mark_arrived"


class StartTrip(_DriverRideCommand):
    type: Literal["start_trip"] = "start_trip"


class CompleteTrip(_DriverRideCommand):
    type: Literal["complete_trip"] = "complete_trip"


class DriverCancel(_DriverRideCommand):
    """The assigned driver cancels before the trip starts: the ride goes back to dispatch."""

    type: Literal["driver_cancel"] = "driver_cancel"
    reason: Reason = ""


ErasedBy = Literal["self", "operator"]


class _Erase(_Command):
    """By the subject themself (no operator fields), or by an admin, who is named as an
    operator's cancellation names them (the audit fields)."""

    by: ErasedBy
    operator_id: UUID | None = Field(default=None, description="The admin's id, when by one.")
    operator_name: OperatorName | None = Field(default=None, description="The admin's name.")
    operator_role: Literal["admin"] | None = Field(default=None, description="Their role.")

    @model_validator(mode="after")
    def _names_the_admin(self) -> _Erase:
        named = (self.operator_id, self.operator_name, self.operator_role)
        if self.by == "self":
            if any(v is not None for v in named):
                raise ValueError("an erasure by the subject names no operator")
            return self
        if self.operator_id is None or self.operator_name is None or self.operator_role is None:
            raise ValueError("an erasure by an operator names them: id, name and role")
        expected = id_of_operator(self.operator_name)
        if self.operator_id != expected:
            raise ValueError(
                f"operator_id {self.operator_id} is not the id of operator "
                f"{self.operator_name!r} ({expected})"
            )
        return self


class EraseRider(_Erase):
    """Erase a rider's personal data (docs/PRIVACY.md): by the rider, or an admin."""

    type: Literal["erase_rider"] = "erase_rider"
    rider_id: UUID


class EraseDriver(_Erase):
    """Erase a driver's personal data (docs/PRIVACY.md): by the driver, or an admin."""

    type: Literal["erase_driver"] = "erase_driver"
    driver_id: UUID


Command = Annotated[
    RegisterDriver
    | RegisterRider
    | GoOnline
    | GoOffline
    | RequestRide
    | CancelRide
    | OperatorCancelRide
    | AcceptOffer
    | DeclineOffer
    | MarkArrived
    | StartTrip
    | CompleteTrip
    | DriverCancel
    | EraseRider
    | EraseDriver
    | RevokeTokens,
    Field(discriminator="type"),
]


# The most fingerprint alternates a command carries: one per token key of the ring but the
# signing one, and the legacy hash (``DISPATCH_AUTH_KEYS`` is checked against it at start).
MAX_FINGERPRINT_ALTERNATES = 16


class CommandEnvelope(BaseModel):
    """One command on its way to a shard: routed by the id of the aggregate it targets."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: Literal[1] = SCHEMA_VERSION
    command_id: Annotated[str, Field(min_length=1, max_length=128)]
    fingerprint: Annotated[str, Field(min_length=1, max_length=128)] | None = Field(
        default=None,
        description="The request this command id stands for (the API hashes route, caller "
        "and body). A repeated command id with another fingerprint is refused with "
        "idempotency_key_reused; without one, the id alone decides.",
    )
    fingerprint_alternates: tuple[Annotated[str, Field(min_length=1, max_length=128)], ...] = Field(
        default=(),
        max_length=MAX_FINGERPRINT_ALTERNATES,
        description="Other fingerprints of the same request that also match its record "
        "(under the API's previous keys, or of an earlier fingerprint version); never "
        "recorded.",
    )
    issued_at: datetime
    reply_to: str | None = None
    shard: Annotated[int, Field(ge=0)] | None = Field(
        default=None,
        description="The shard it is addressed to, when not its target's home shard (the "
        "shard the target id names): a driver's command goes to the shard that owns the "
        "driver now, after a hand-off.",
    )
    command: Command

    @property
    def reply_key(self) -> str:
        """What this command's outcome is matched by: its id and its fingerprint (two
        requests that share an id but not a fingerprint each get their own answer)."""
        return reply_key(self.command_id, self.fingerprint)

    @property
    def target_id(self) -> UUID:
        """The aggregate whose shard handles this command."""
        cmd = self.command
        if isinstance(cmd, RegisterDriver | GoOnline | GoOffline | AcceptOffer | EraseDriver):
            return cmd.driver_id  # an acceptance commits at the driver's own shard
        if isinstance(cmd, RegisterRider | RequestRide | EraseRider):
            return cmd.rider_id  # a request takes the rider's lock at home first
        if isinstance(cmd, RevokeTokens):
            return cmd.credentials_id  # in the principal's home shard (an operator's: 0)
        return cmd.ride_id


class Outcome(BaseModel):
    """The one reply to a command: accepted (with its log position) or rejected with a reason."""

    model_config = ConfigDict(frozen=True)

    command_id: str
    shard: int
    accepted: bool
    code: str = "ok"
    reason: str = ""
    position: int | None = None
    duplicate: bool = False
    fingerprint: str | None = Field(
        default=None, description="The fingerprint of the command this answers, if it had one."
    )
    aggregate_ids: list[str] = Field(
        default_factory=list,
        description="The aggregates an accepted command changed (for a duplicate, the "
        "first command's, from its record): the ride a retried request created, say.",
    )
    moved_to: int | None = Field(
        default=None,
        description="With code moved: the shard that owns the driver now (None: not known "
        "here); the command is to be sent there.",
    )

    @property
    def reply_key(self) -> str:
        return reply_key(self.command_id, self.fingerprint)


def reply_key(command_id: str, fingerprint: str | None) -> str:
    """The key a waiter and an outcome meet by."""
    return command_id if fingerprint is None else f"{command_id}#{fingerprint}"
