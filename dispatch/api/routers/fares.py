"""Fares: a quote for a trip (docs/MARKETPLACE.md)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from fastapi import APIRouter, Response

from dispatch.api.auth import NO_STORE
from dispatch.api.deps import Ctx, RiderCaller
from dispatch.api.errors import AUTH_RESPONSES, TOO_LARGE, ApiError
from dispatch.api.places import OUTSIDE_EXAMPLE, require_served
from dispatch.api.products import require_product
from dispatch.pricing.rules import FareError
from schemas import api
from schemas.common import LatLng

router = APIRouter(prefix="/fares", tags=["fares"])

# Answers the API gives (test_fare_estimate.py asks for each and compares).
NO_FARE_EXAMPLES: dict[str, dict[str, Any]] = {
    "product_not_offered": {
        "summary": "The pickup's market has no rule for the product",
        "value": {
            "error": "product_not_offered",
            "reason": "'accessible' is not offered in market 'san-francisco' (offered: standard)",
        },
    },
    "no_fare_rules": {
        "summary": "The pickup is outside every market, and no rules price places there",
        "value": {
            "error": "no_fare_rules",
            "reason": "the pickup is outside every market, and there are no fare rules for "
            "places outside them (DISPATCH_FARES has no 'elsewhere')",
        },
    },
    "outside_service_area": OUTSIDE_EXAMPLE,
    "trip_too_long": {
        "summary": "The trip is longer than DISPATCH_MAX_TRIP_KM (San Francisco to Tokyo)",
        "value": {
            "error": "trip_too_long",
            "reason": "the trip is 8,265.7 km in a straight line, longer than the 200 km a "
            "quote may price (DISPATCH_MAX_TRIP_KM)",
        },
    },
}
ESTIMATE_RESPONSES: dict[int | str, dict[str, Any]] = {
    **AUTH_RESPONSES,
    403: {**AUTH_RESPONSES[403], "description": "Not a rider's token."},
    413: TOO_LARGE,
    422: {
        **AUTH_RESPONSES[422],
        "description": "Invalid input, with pydantic's reasons (an unknown product among "
        "them); or no fare for this trip: the product is not offered in the pickup's market "
        "(product_not_offered), the pickup is outside every market with fare rules "
        "(no_fare_rules), the pickup or drop-off is outside its market's service area "
        "(outside_service_area), or the trip is longer than DISPATCH_MAX_TRIP_KM "
        "(trip_too_long).",
        "content": {"application/json": {"examples": NO_FARE_EXAMPLES}},
    },
}


@router.post("/estimate", response_model=api.FareQuote, responses=ESTIMATE_RESPONSES)
def estimate_fare(
    body: api.EstimateFare, caller: RiderCaller, ctx: Ctx, response: Response
) -> api.FareQuote:
    """Price a trip from `pickup` to `dropoff` in `product`: its distance and duration
    (over the road network when one is configured, else the straight-line estimate), the
    surge (the multiplier of the pickup's H3 cell now, as `GET /surge` answers it), the total
    in the currency of the pickup's market, and the quote:
    a signed token of all that, for you only, valid until `expires_at`. The pickup's market
    prices the trip wherever it ends. Nothing is recorded (a quote is not an event until a
    ride carries it). Not to be cached (`Cache-Control: no-store`)."""
    require_product(ctx, body.product)
    require_served(ctx, body.pickup, body.dropoff)
    pickup, dropoff = (body.pickup.lat, body.pickup.lng), (body.dropoff.lat, body.dropoff.lng)
    try:
        issued = ctx.fares.estimate(caller.sub, pickup, dropoff, body.product, ctx.runtime.clock())
    except FareError as error:
        raise ApiError(422, error.code, error.reason) from None
    response.headers.update(NO_STORE)
    quote = issued.quote
    return api.FareQuote(
        quote_id=UUID(quote.quote_id),
        quote=issued.token,
        product=quote.product,
        pickup=LatLng(lat=quote.pickup[0], lng=quote.pickup[1]),
        dropoff=LatLng(lat=quote.dropoff[0], lng=quote.dropoff[1]),
        market=quote.market,
        distance_m=quote.distance_m,
        duration_s=quote.duration_s,
        estimated_by=quote.estimated_by,
        rule=api.AppliedRule.model_validate(quote.rule_text()),
        minimum_applied=quote.minimum_applied,
        surge=quote.surge,
        total=quote.total,
        total_minor=quote.total_minor,
        currency=quote.currency,
        rules_version=quote.rules_version,
        issued_at=datetime.fromtimestamp(quote.issued_at, UTC),
        expires_at=datetime.fromtimestamp(quote.expires_at, UTC),
    )
