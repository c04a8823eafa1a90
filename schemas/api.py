"""HTTP API wire schemas: request bodies and write responses, named by role. Version 1.

Views (what queries return) live in ``schemas.views``. Every request model forbids unknown
fields, so a typo is a 422 with the reason rather than a silently ignored field.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
)

from dispatch.domain.geo import MAX_LAT, MAX_LNG, MIN_LAT, MIN_LNG
from schemas.common import LatLng, Name, OperatorName, Reason

MAX_PINGS_PER_BATCH = 500

TOKEN_PATTERN = r"^[0-9]{1,5}:[0-9]{1,18}$"
ConsistencyToken = Annotated[
    str,
    Field(
        pattern=TOKEN_PATTERN,
        max_length=24,
        description="A log position `<shard>:<position>`. Pass it to a query (`?after=` or the "
        "`X-Consistency-Token` header) to read your own write.",
        examples=["0:42"],
    ),
]


def _text_only(value: object) -> object:
    """JSON has no time type: a time is an ISO 8601 string, never a bare number."""
    if not isinstance(value, str | datetime):
        raise ValueError("expected an ISO 8601 date-time string with a time zone")
    return value


# Request fields take JSON's types as they are (``true`` is not the number 1, and ``1`` is
# not the boolean true); ``schemas.common`` keeps pydantic's lax coercion for internal use.
StrictLatitude = Annotated[
    float, Field(ge=MIN_LAT, le=MAX_LAT, allow_inf_nan=False, strict=True, examples=[37.7749])
]
StrictLongitude = Annotated[
    float, Field(ge=MIN_LNG, le=MAX_LNG, allow_inf_nan=False, strict=True, examples=[-122.4194])
]
StrictBool = Annotated[bool, Field(strict=True)]
IsoTime = Annotated[AwareDatetime, BeforeValidator(_text_only)]


class _Request(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Point(_Request):
    """A WGS84 coordinate in decimal degrees."""

    lat: StrictLatitude
    lng: StrictLongitude

    def as_latlng(self) -> LatLng:
        return LatLng(lat=self.lat, lng=self.lng)


class RegisterDriver(_Request):
    """A new driver, served by the market of their home location."""

    name: Name
    home: Point

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"name": "Dee", "home": {"lat": 37.77, "lng": -122.42}}]}
    )


class RegisterRider(_Request):
    """A new rider, served by the market of ``home`` (default: the first configured one)."""

    name: Name
    home: Point | None = None

    model_config = ConfigDict(json_schema_extra={"examples": [{"name": "Ray"}]})


class GoOffline(_Request):
    """``after_trip``: stay on the current ride and go offline when it ends."""

    after_trip: StrictBool = False


class LocationPing(_Request):
    """A driver's position. ``at`` (with a time zone) defaults to when the server got it."""

    lat: StrictLatitude
    lng: StrictLongitude
    at: IsoTime | None = None

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"lat": 37.7751, "lng": -122.4189, "at": "2026-01-05T08:00:00Z"}]
        }
    )


class LocationBatch(_Request):
    """Up to 500 pings of one driver, validated all together: one bad ping rejects the batch."""

    pings: Annotated[list[LocationPing], Field(min_length=1, max_length=MAX_PINGS_PER_BATCH)]


class RequestRide(_Request):
    pickup: Point
    dropoff: Point

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "pickup": {"lat": 37.7749, "lng": -122.4194},
                    "dropoff": {"lat": 37.62, "lng": -122.38},
                }
            ]
        }
    )


class CancelRide(_Request):
    reason: Reason = ""


class OperatorCancelRide(_Request):
    """Why an operator cancels a ride: required, recorded with their name."""

    reason: Annotated[
        str,
        Field(
            min_length=1,
            max_length=500,
            examples=["rider called in"],
            description="Shown to the ride's rider and driver as it is (in their view of the "
            "ride and its stream): no internal notes or other people's data.",
        ),
    ]


class TokenIssued(BaseModel):
    """A bearer (access) token bound to one driver, rider or operator, and the refresh token
    that gets the next pair (``POST /auth/refresh``) before or after it expires."""

    access_token: str = Field(description="Send as `Authorization: Bearer <access_token>`.")
    token_type: Literal["bearer"] = "bearer"
    expires_at: datetime = Field(description="When the access token expires.")
    refresh_token: str = Field(
        description="Exchange at `POST /auth/refresh` for a new access and refresh token; "
        "never a bearer token. Keep it secret: it gets tokens for the account."
    )
    refresh_expires_at: datetime = Field(description="When the refresh token expires.")


MAX_TOKEN_LENGTH = 4_096


class RefreshTokens(_Request):
    """A refresh token from a registration or an earlier refresh."""

    refresh_token: Annotated[str, Field(min_length=1, max_length=MAX_TOKEN_LENGTH)]


# Why an admin revokes another's tokens: required, recorded with their name.
AdminReason = Annotated[
    str,
    Field(
        min_length=1,
        max_length=500,
        examples=["phone reported stolen"],
        description="Why: recorded in the log with your name (the audit trail).",
    ),
]


class RevokeOwnTokens(_Request):
    """Revoke all your own tokens (sign out everywhere); the answer carries a new pair."""

    reason: Reason = ""


class RevokeDriverTokens(_Request):
    """An admin revokes all a driver's tokens."""

    driver_id: UUID
    reason: AdminReason


class RevokeRiderTokens(_Request):
    """An admin revokes all a rider's tokens."""

    rider_id: UUID
    reason: AdminReason


class RevokeOperatorTokens(_Request):
    """An admin revokes all the tokens of the operator of this name."""

    operator: OperatorName
    reason: AdminReason


_PRINCIPAL_FIELDS = {"driver_id": "driver", "rider_id": "rider", "operator": "operator"}


def _whose(value: Any) -> str | None:
    """Which body this is, by the principal it names (none: the caller's own)."""
    if isinstance(value, dict):
        named = [tag for field, tag in _PRINCIPAL_FIELDS.items() if field in value]
    else:
        named = [tag for field, tag in _PRINCIPAL_FIELDS.items() if hasattr(value, field)]
    if len(named) > 1:
        return None
    return named[0] if named else "own"


RevokeTokens = Annotated[
    Annotated[RevokeOwnTokens, Tag("own")]
    | Annotated[RevokeDriverTokens, Tag("driver")]
    | Annotated[RevokeRiderTokens, Tag("rider")]
    | Annotated[RevokeOperatorTokens, Tag("operator")],
    Discriminator(
        _whose,
        custom_error_type="one_principal",
        custom_error_message="name at most one of driver_id, rider_id and operator (none: "
        "your own tokens)",
    ),
]


class TokensRevoked(BaseModel):
    """Every token of the principal of a version below ``token_version`` is refused from
    now on, by this API instance at once and by every instance within the revocation
    bound. Revoking your own: ``token`` is your new pair, of ``token_version``."""

    command_id: str
    position: ConsistencyToken | None = None
    principal_id: UUID = Field(description="Whose tokens were revoked.")
    role: Literal["driver", "rider", "operator"]
    token_version: int = Field(
        ge=1, description="The principal's token version now, as this instance's views hold it."
    )
    token: TokenIssued | None = Field(
        default=None, description="Your new tokens, when you revoked your own."
    )


class CommandAccepted(BaseModel):
    """The command took effect. ``position`` is its consistency token."""

    command_id: str
    position: ConsistencyToken | None = None

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"command_id": "9b2e1c7a-5d3f-4e8a-8f1b-2a6c0d9e4f11:retry-1", "position": "0:42"}
            ]
        }
    )


class CommandPending(BaseModel):
    """No outcome within the wait: the command may still take effect. Retry with the same
    ``Idempotency-Key`` to learn its outcome without applying it twice."""

    command_id: str
    status: Literal["pending"] = "pending"


class DriverRegistered(CommandAccepted):
    driver_id: UUID
    token: TokenIssued


class RiderRegistered(CommandAccepted):
    rider_id: UUID
    token: TokenIssued


class RideRequested(CommandAccepted):
    ride_id: UUID


class DriverRegistrationPending(CommandPending):
    driver_id: UUID
    token: TokenIssued | None = Field(
        default=None,
        description="Only without an Idempotency-Key. With one, retry with the same key and "
        "body: the token comes with the outcome, once the request is known to be yours.",
    )


class RiderRegistrationPending(CommandPending):
    rider_id: UUID
    token: TokenIssued | None = Field(
        default=None,
        description="Only without an Idempotency-Key. With one, retry with the same key and "
        "body: the token comes with the outcome, once the request is known to be yours.",
    )


class RideRequestPending(CommandPending):
    ride_id: UUID


class PingsAccepted(BaseModel):
    """Pings queued for matching and applied to this process's location view."""

    accepted: int


class Problem(BaseModel):
    """Every error: a stable machine-readable code and a human reason."""

    error: str
    reason: str
    command_id: str | None = None
    details: list[dict[str, Any]] | None = None

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "error": "illegal_transition",
                    "reason": "cannot start ride 0000abcd-3c1a-4f7e-9d2b-5e8f1a2b3c4d: offered",
                    "command_id": "5f0c2a9e-1b7d-4c3e-a8f6-9d2e4b1c7a30",
                }
            ]
        }
    )
