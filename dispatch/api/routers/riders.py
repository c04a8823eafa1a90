"""Rider endpoints: registration, requesting a ride and cancelling it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Body, Request
from fastapi.responses import JSONResponse

from dispatch.api import access
from dispatch.api.context import ApiContext
from dispatch.api.deps import (
    Ctx,
    IdempotencyKey,
    RegistrationKey,
    RegistrationLimit,
    RiderCaller,
)
from dispatch.api.errors import COMMAND_RESPONSES, REGISTRATION_RESPONSES, ApiError
from dispatch.api.places import OUTSIDE_EXAMPLE, require_served
from dispatch.api.products import require_product
from dispatch.api.writes import Write, keyed_id, register, send, write
from dispatch.domain.errors import ScheduledTimeOutOfRange
from dispatch.domain.ids import derived_id, new_id, shard_of
from dispatch.domain.ride_fare import FareTerms
from dispatch.pricing.quotes import QuoteError
from dispatch.pricing.rules import FareError
from schemas import api
from schemas import commands as c
from schemas.common import LatLng
from schemas.fares import FareTermsData

router = APIRouter(prefix="/riders", tags=["riders"])
rides = APIRouter(prefix="/rides", tags=["riders"])

REGISTRATION_NAMESPACE = UUID("5b8f3e1a-9c2d-4a7b-b6e0-2f4d8c1a9e37")
RIDE_NAMESPACE = UUID("a3c9e2f1-7b4d-4e8a-9f06-1d2c3b4a5e6f")


def _default_home(ctx: ApiContext) -> LatLng:
    markets = ctx.runtime.settings.markets
    return LatLng(lat=markets[0].lat, lng=markets[0].lng) if markets else LatLng(lat=0, lng=0)


@router.post(
    "",
    status_code=201,
    response_model=api.RiderRegistered,
    responses={**REGISTRATION_RESPONSES, 202: {"model": api.RiderRegistrationPending}},
    dependencies=[RegistrationLimit],
)
def register_rider(
    body: api.RegisterRider, request: Request, ctx: Ctx, key: RegistrationKey = None
) -> JSONResponse:
    """Register a rider in the market of `home` (default: the first configured market);
    returns the rider's id and a bearer token bound to it. Rides are requested in that
    market. With an `Idempotency-Key`, a retry returns the same rider."""
    home = body.home.as_latlng() if body.home is not None else _default_home(ctx)
    shard = ctx.runtime.markets.shard_for(home.lat, home.lng)
    return register(
        ctx, request, key, body, "rider", shard, REGISTRATION_NAMESPACE,
        lambda rider_id: c.RegisterRider(rider_id=rider_id, name=body.name),
    )  # fmt: skip


# Answers the API gives to a ride request's bad quote (test_quoted_rides.py asks for each).
QUOTE_EXAMPLES: dict[str, dict[str, Any]] = {
    "quote_invalid": {
        "summary": "Not a quote of this engine's as it was issued (here: its total changed)",
        "value": {"error": "quote_invalid",
                  "reason": "bad signature: the quote was altered or not signed here"},
    },
    "quote_expired": {
        "summary": "The quote has expired",
        "value": {"error": "quote_expired",
                  "reason": "quote expired: ask for a new one (POST /fares/estimate)"},
    },
    "quote_mismatch": {
        "summary": "A valid quote for another rider, trip or product",
        "value": {"error": "quote_mismatch",
                  "reason": "the request's pickup (37.776, -122.4194) is 122 m from the "
                  "quote's (37.7749, -122.4194): at most 50 m"},
    },
    "product_not_offered": {
        "summary": "The pickup's market does not offer the product (the reason names those it "
        "offers)",
        "value": {"error": "product_not_offered",
                  "reason": "'xl' is not offered in market 'san-francisco' (offered: standard)"},
    },
    "outside_service_area": OUTSIDE_EXAMPLE,
    "no_fare_rules": {
        "summary": "No fare rule prices the pickup (outside every market, no 'elsewhere' rules)",
        "value": {"error": "no_fare_rules",
                  "reason": "the pickup is outside every market, and there are no fare rules "
                  "for places outside them (DISPATCH_FARES has no 'elsewhere')"},
    },
}  # fmt: skip
REQUEST_RESPONSES: dict[int | str, dict[str, Any]] = {
    **COMMAND_RESPONSES,
    202: {"model": api.RideRequestPending},
    422: {
        **COMMAND_RESPONSES[422],
        "description": f"{COMMAND_RESPONSES[422]['description'].rstrip('.')}; or the quote "
        "is refused: quote_invalid, quote_expired or quote_mismatch, with the reason; or, "
        "without a quote, no fare rule prices the ride: product_not_offered (the reason "
        "names the products the pickup's market offers) or no_fare_rules; or the pickup or "
        "drop-off is outside its market's service area (outside_service_area).",
        "content": {"application/json": {"examples": QUOTE_EXAMPLES}},
    },
}


@rides.post("", status_code=201, response_model=api.RideRequested, responses=REQUEST_RESPONSES)
def request_ride(
    body: api.RequestRide,
    caller: RiderCaller,
    request: Request,
    ctx: Ctx,
    key: IdempotencyKey = None,
) -> JSONResponse:
    """Ask for a ride from `pickup` to `dropoff` in `product`, in any market. Dispatch
    starts at once; follow it on `GET /rides/{ride_id}/events`. A rider has one active ride
    at a time (else 409). With a `quote` (from `POST /fares/estimate`), the ride keeps the
    quoted price; a quote that is not valid, has expired, or is another rider's or for
    another trip or product is refused (422 `quote_invalid`, `quote_expired`,
    `quote_mismatch`, with the reason) and no ride is made; with an `Idempotency-Key`, a
    retry after the quote expired gets the first request's outcome. Without a quote, the
    ride is priced when it completes, by the rules in force now; a product the pickup's
    market does not offer, or a pickup no rule prices, is refused (422
    `product_not_offered`, `no_fare_rules`, with the reason) and no ride is made; so is a
    ride whose pickup or drop-off lies outside its market's service area (422
    `outside_service_area`, naming the point) (docs/MARKETPLACE.md).

    With `scheduled_for`, the ride is booked for that time instead (status `scheduled`,
    priced now without surge or by its quote) and dispatched ahead of it; it may be
    cancelled free until `free_cancel_until` (`GET /rides/{ride_id}`), and after that for
    its fare rule's minimum (docs/MARKETPLACE.md, "Scheduled rides").

    With `shared: true` (and `seats`, 1 or 2), the ride may be pooled with others going its
    way, within the deployment's wait and detour bounds; its pickup must lie in the
    rider's home market's shard (docs/ARCHITECTURE.md, "Shared rides")."""
    rider_id = UUID(caller.sub)
    require_product(ctx, body.product)
    problem = body.sharing_problem()
    if problem is not None:
        raise ApiError(422, "sharing_invalid", problem)
    if key is None and body.shared and not ctx.runtime.settings.pool:  # (a retry: its record)
        raise ApiError(
            422,
            "shared_rides_off",
            "shared: shared rides are not enabled on this deployment (DISPATCH_POOL)",
        )
    if key is None:  # a keyed request may be a retry: its record answers it (the shard
        require_served(ctx, body.pickup, body.dropoff)  # checks a new one), not today's areas
        if body.scheduled_for is not None:
            _require_bookable(ctx, body.scheduled_for)
    terms = _fare_terms(ctx, caller.sub, body, keyed=key is not None)
    # The ride lives in the shard of its pickup; the rider's home shard takes the request
    # (the one-active-ride lock) and, for a pickup elsewhere, opens the ride there.
    shard = ctx.runtime.markets.shard_for(body.pickup.lat, body.pickup.lng)
    single = None if body.shared else {"shared", "seats"}  # as before shared rides
    command_id, print_ = keyed_id(request, caller.sub, key, body, single)
    # A keyed request's ride id is derived from its command id and the idempotency window's
    # period (as its record's is): a retry within the window is answered from the record
    # (with the ride it created), and a repeat after it, a new command, names a new ride,
    # never one that ended long ago (which a shard restored from a checkpoint no longer
    # holds, and would create again).
    window_s = ctx.runtime.settings.idempotency_window_s
    period = int(ctx.runtime.clock() // window_s)
    derived = derived_id(shard, RIDE_NAMESPACE, f"{period}:{command_id}")
    ride_id = derived if key else new_id(shard)
    command = c.RequestRide(
        ride_id=ride_id,
        rider_id=rider_id,
        pickup=body.pickup.as_latlng(),
        dropoff=body.dropoff.as_latlng(),
        fare=None if terms is None else FareTermsData.model_validate(terms.to_data()),
        product=body.product,
        scheduled_for=body.scheduled_for,
        shared=body.shared,
        seats=body.seats,
    )
    extra = {"ride_id": str(ride_id)}
    elsewhere = shard if shard != shard_of(rider_id) else None
    return send(
        ctx, Write(command, command_id, print_, True, extra, creates="ride_id",
                   opens_ride_in=elsewhere),
    )  # fmt: skip


def _require_bookable(ctx: ApiContext, scheduled_for: datetime) -> None:
    """422 ``scheduled_time_out_of_range`` for a time nearer than the least lead time or
    beyond the horizon, on this process's clock (the rider's home shard checks again on
    its own, and decides)."""
    now = datetime.fromtimestamp(ctx.runtime.clock(), UTC)
    try:
        ctx.runtime.settings.scheduling.check(scheduled_for, now)
    except ScheduledTimeOutOfRange as error:
        raise ApiError(422, error.code, error.reason) from None


def _fare_terms(
    ctx: ApiContext, rider: str, body: api.RequestRide, keyed: bool
) -> FareTerms | None:
    """The terms the ride is priced on: its quote's, if it carries one (checked: else a 422
    with the reason), or the rules in force (no rule for the trip: a 422 with the reason;
    None: the deployment has no fare rules at all, the ride is not priced). A keyed
    request's quote may have expired here: the shard refuses it then, after answering a
    retry from its record (the first request's outcome)."""
    pickup, dropoff = (body.pickup.lat, body.pickup.lng), (body.dropoff.lat, body.dropoff.lng)
    if body.quote is None:
        try:
            return ctx.fares.terms_for(pickup, body.product, surged=body.scheduled_for is None)
        except FareError as error:  # refused before anything is sent: nothing recorded
            raise ApiError(422, error.code, error.reason) from None
    now = ctx.runtime.clock()
    try:
        quote = ctx.fares.check(body.quote, rider, pickup, dropoff, body.product, now, keyed)
    except QuoteError as error:
        raise ApiError(422, error.code, error.reason) from None
    return ctx.fares.terms_of(quote)


@rides.post(
    "/{ride_id}/cancel",
    response_model=api.CommandAccepted,
    responses={**COMMAND_RESPONSES, 202: {"model": api.CommandPending}},
)
def cancel_ride(
    ride_id: UUID,
    caller: RiderCaller,
    request: Request,
    ctx: Ctx,
    body: Annotated[api.CancelRide | None, Body()] = None,
    key: IdempotencyKey = None,
) -> JSONResponse:
    """Cancel your ride, any time before the trip starts."""
    access.rider_of(ctx, caller, ride_id)
    reason = body.reason if body is not None else ""
    command = c.CancelRide(ride_id=ride_id, rider_id=UUID(caller.sub), reason=reason)
    return write(ctx, request, caller.sub, key, command, body)
