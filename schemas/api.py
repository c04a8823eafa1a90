"""HTTP API wire schemas: request bodies and write responses, named by role. Version 1.

Views (what queries return) live in ``schemas.views``. Every request model forbids unknown
fields, so a typo is a 422 with the reason rather than a silently ignored field.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
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
    WithJsonSchema,
)

from dispatch.domain.geo import MAX_LAT, MAX_LNG, MIN_LAT, MIN_LNG
from dispatch.domain.pooling import MAX_RIDE_SEATS, MIN_RIDE_SEATS
from schemas.common import LatLng, Name, OperatorName, ProductName, Reason, VehicleData

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
    """A new driver, served by the market of their home location, with their ``vehicle``
    (default: a standard car of 4 seats, not accessible)."""

    name: Name
    home: Point
    vehicle: VehicleData | None = Field(
        default=None,
        description="The vehicle: its product must be one of the catalog's (by default "
        "standard, xl, accessible) and the vehicle must qualify for it (seats, access); it "
        "is offered rides of every product it qualifies for (docs/MARKETPLACE.md, "
        '"The product lever"). Null or absent: standard, 4 seats, not accessible.',
    )

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"name": "Dee", "home": {"lat": 37.77, "lng": -122.42}},
                {
                    "name": "Xavi",
                    "home": {"lat": 37.77, "lng": -122.42},
                    "vehicle": {"product": "xl", "seats": 6, "accessible": False},
                },
                {
                    "name": "Ana",
                    "home": {"lat": 37.77, "lng": -122.42},
                    "vehicle": {"product": "accessible", "seats": 4, "accessible": True},
                },
            ]
        }
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


class _Trip(_Request):
    """From ``pickup`` to ``dropoff``: what a ride request and a fare estimate share (and
    no more: a field either gains is not the other's)."""

    pickup: Point
    dropoff: Point


class RequestRide(_Trip):
    """A ride from ``pickup`` to ``dropoff`` in ``product`` (default standard), priced by
    ``quote`` when it carries one (docs/MARKETPLACE.md, "The ride's fare")."""

    product: Annotated[
        ProductName,
        Field(
            description="The kind of vehicle: one of the catalog's products (by default "
            "standard, xl, accessible; DISPATCH_PRODUCTS). One the pickup's market does not "
            "price is refused (422 product_not_offered, naming those it offers)."
        ),
    ] = "standard"
    quote: str | None = Field(
        default=None,
        max_length=4096,
        description="A signed quote (POST /fares/estimate's `quote`) for this rider, trip "
        "(each end within 50 m) and product, still valid: the ride keeps its price. "
        "Without one, the ride is priced when it completes by the rules in force now.",
    )
    scheduled_for: AwareDatetime | None = Field(
        default=None,
        description="Book the ride for this pickup time (ISO 8601 with its offset): a "
        "scheduled ride, dispatched ahead of it. At least DISPATCH_SCHEDULED_MIN_LEAD_S "
        "(default 15 minutes) and at most DISPATCH_SCHEDULED_HORIZON_S (default 7 days) "
        "ahead, else 422 scheduled_time_out_of_range; a rider holds at most "
        "DISPATCH_SCHEDULED_MAX_PER_RIDER (default 3) at once, else 409 too_many_scheduled. "
        "Priced at booking without surge (or by its quote). Null: dispatched now.",
    )
    shared: bool = Field(
        default=False,
        description="A shared ride: it may ride with others going its way, picked up within "
        "DISPATCH_POOL_MAX_WAIT_S (default 300 s) of the request and in the vehicle at most "
        "DISPATCH_POOL_DETOUR_FACTOR (default 1.5) times the direct trip. Refused (422 "
        "shared_rides_off) where the deployment does not pool (DISPATCH_POOL); not booked "
        "ahead (422 sharing_invalid with scheduled_for).",
    )
    seats: int = Field(
        default=1, ge=MIN_RIDE_SEATS, le=MAX_RIDE_SEATS,
        description="The seats a shared ride takes (1 or 2); only a shared ride asks for "
        "more than 1 (else 422 sharing_invalid).",
    )  # fmt: skip

    def sharing_problem(self) -> str | None:
        """Why the sharing fields do not fit the rest of the request (a 422 the route
        gives: the fields' schema cannot say it), or None."""
        if self.seats != 1 and not self.shared:
            return "seats: only a shared ride asks for seats (a single ride has the car)"
        if self.shared and self.scheduled_for is not None:
            return "scheduled_for: a shared ride is not booked ahead"
        return None

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "pickup": {"lat": 37.7749, "lng": -122.4194},
                    "dropoff": {"lat": 37.62, "lng": -122.38},
                },
                {
                    "pickup": {"lat": 37.7749, "lng": -122.4194},
                    "dropoff": {"lat": 37.62, "lng": -122.38},
                    "shared": True,
                    "seats": 2,
                },
                {
                    "pickup": {"lat": 37.7749, "lng": -122.4194},
                    "dropoff": {"lat": 37.6213, "lng": -122.379},
                    "scheduled_for": "2026-12-04T06:30:00-08:00",
                },
                {
                    "pickup": {"lat": 37.7749, "lng": -122.4194},
                    "dropoff": {"lat": 37.7599, "lng": -122.4148},
                    "product": "standard",
                    "quote": "eyJhbGciOiJIUzI1NiIsImtpZCI6ImsxIiwidHlwIjoiSldUIn0...",
                },
            ]
        }
    )


class EstimateFare(_Trip):
    """A trip to price: from ``pickup`` to ``dropoff`` in ``product`` (default standard)."""

    product: Annotated[
        ProductName,
        Field(
            description="The kind of vehicle: one of the catalog's products (by default "
            "standard, xl, accessible; DISPATCH_PRODUCTS). One the pickup's market does not "
            "price is refused (422 product_not_offered, naming those it offers)."
        ),
    ] = "standard"

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "pickup": {"lat": 37.7749, "lng": -122.4194},
                    "dropoff": {"lat": 37.7599, "lng": -122.4148},
                    "product": "standard",
                }
            ]
        }
    )


# A decimal number written as text: money is never a JSON number (a float to most readers).
DecimalText = Annotated[
    Decimal, WithJsonSchema({"type": "string", "pattern": r"^[0-9]+(\.[0-9]+)?$"})
]


class AppliedRule(BaseModel):
    """The fare rule that priced a quote, in its currency (docs/MARKETPLACE.md)."""

    base: DecimalText = Field(examples=["2.50"])
    per_km: DecimalText = Field(examples=["1.10"])
    per_min: DecimalText = Field(examples=["0.30"])
    minimum: DecimalText = Field(examples=["7.00"])


class FareQuote(BaseModel):
    """A price for one trip, promised to the rider who asked until ``expires_at``. ``quote``
    is the signed quote itself (a ride request will carry it); the other fields say what
    it says. Nothing is recorded: a quote is not an event until a ride carries it."""

    quote_id: UUID
    quote: str = Field(
        description="The signed quote (a JWT for the quotes' own audience, never a bearer "
        "token): valid for this rider, trip and product until expires_at."
    )
    product: ProductName
    pickup: LatLng = Field(description="The pickup priced: a ride's may be up to 50 m from it.")
    dropoff: LatLng = Field(description="The drop-off priced: the same.")
    market: str | None = Field(
        description="The pickup's market, whose rules price the trip wherever it ends "
        "(null: outside every market, priced by the rules for elsewhere)."
    )
    distance_m: int = Field(ge=0, description="Metres, pickup to drop-off.")
    duration_s: int = Field(ge=0, description="Seconds of driving, pickup to drop-off.")
    estimated_by: Literal["road_network", "straight_line"] = Field(
        description="road_network: the fastest route over the configured roads; "
        "straight_line: great-circle distance x the road factor at the configured speed."
    )
    surge: DecimalText = Field(
        description="The surge multiplier (1.00 until surge pricing exists).", examples=["1.00"]
    )
    rule: AppliedRule = Field(
        description="The rule that priced the trip: total = max(minimum, base + per_km x km "
        "+ per_min x minutes) x surge, rounded half up to the currency's minor unit."
    )
    minimum_applied: bool = Field(
        description="Whether the minimum set the total (base and rates came to less)."
    )
    total: DecimalText = Field(
        description="The price, rounded half up to the currency's minor unit.", examples=["7.36"]
    )
    total_minor: int = Field(ge=0, description="The total in minor units (cents).")
    currency: str = Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 code.")
    rules_version: str = Field(description="The version of the fare rules that priced it.")
    issued_at: datetime = Field(description="When the quote was issued (whole seconds).")
    expires_at: datetime = Field(description="Until when the quote may be used.")

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "quote_id": "6f1c2a9e-1b7d-4c3e-a8f6-9d2e4b1c7a30",
                    "quote": "eyJhbGciOiJIUzI1NiIsImtpZCI6ImRlZmF1bHQiLCJ0eXAiOiJKV1QifQ.e30.c2ln",
                    "product": "standard",
                    "pickup": {"lat": 37.7749, "lng": -122.4194},
                    "dropoff": {"lat": 37.7599, "lng": -122.4148},
                    "market": "san-francisco",
                    "distance_m": 2345,
                    "duration_s": 456,
                    "estimated_by": "straight_line",
                    "rule": {
                        "base": "2.50",
                        "per_km": "1.10",
                        "per_min": "0.30",
                        "minimum": "7.00",
                    },
                    "minimum_applied": False,
                    "surge": "1.00",
                    "total": "7.36",
                    "total_minor": 736,
                    "currency": "USD",
                    "rules_version": "sha256:3f9a1c0d2b7e4a55",
                    "issued_at": "2026-01-05T08:00:00Z",
                    "expires_at": "2026-01-05T08:05:00Z",
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


class ErasureAccepted(BaseModel):
    """The erasure took effect. ``clear_before``: personal data this engine recorded before
    that time was stored before sealing began and stays in the clear (docs/PRIVACY.md);
    null when every personal field it holds was sealed."""

    command_id: str
    position: ConsistencyToken | None = None
    clear_before: datetime | None = None


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
    """Revoke all your own tokens (sign out everywhere); the answer carries a new pair. The
    refresh token issued with your access token proves you hold more than a stolen access
    token (which alone cannot revoke, as the answer carries a new refresh token)."""

    refresh_token: Annotated[
        str,
        Field(
            min_length=1,
            max_length=MAX_TOKEN_LENGTH,
            description="Your refresh token, of the same token version as the bearer token.",
        ),
    ]
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
