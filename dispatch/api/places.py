"""The markets' service areas at the API: a ride or a quote whose pickup or drop-off lies
outside its market's service area is refused before anything is sent (the shard checks
again: docs/MARKETPLACE.md, "Places: service areas")."""

from __future__ import annotations

from typing import Any

from dispatch.api.context import ApiContext
from dispatch.api.errors import ApiError
from dispatch.domain.errors import OutsideServiceArea
from schemas.api import Point

OUTSIDE_EXAMPLE: dict[str, Any] = {
    "summary": "The pickup or drop-off is in a market but outside its service area",
    "value": {
        "error": "outside_service_area",
        "reason": "the drop-off (37.81, -122.52) is outside market 'san-francisco''s service area",
    },
}


def require_served(ctx: ApiContext, pickup: Point, dropoff: Point) -> None:
    """422 ``outside_service_area`` naming the point outside its market's area."""
    try:
        ctx.runtime.markets.check_stops((pickup.lat, pickup.lng), (dropoff.lat, dropoff.lng))
    except OutsideServiceArea as error:
        raise ApiError(422, error.code, str(error)) from None
