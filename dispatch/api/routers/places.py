"""Geofenced places: ``GET /places/{place_id}/queue`` (docs/MARKETPLACE.md, "Places:
geofences and queues")."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Path

from dispatch.api.deps import Caller, Consistent, Ctx, OperatorReadAudited
from dispatch.api.errors import QUERY_RESPONSES, forbidden, not_found
from schemas.views import PlaceQueue, QueuedDriver

router = APIRouter(tags=["places"], dependencies=[OperatorReadAudited])

PlaceId = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$", examples=["sfo"])]


def _at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


@router.get("/places/{place_id}/queue", response_model=PlaceQueue, responses=QUERY_RESPONSES)
async def place_queue(
    place_id: PlaceId, caller: Caller, ctx: Ctx, _after: Consistent
) -> PlaceQueue:
    """The place's queue of available drivers, head first (a pickup inside the place is
    offered to its head first). An operator sees the whole queue and how many drivers are
    inside; a driver sees the queue's length and their own position (none when they are
    not in it). Riders may not read it. 404: no such place, or a place without a queue."""
    if caller.role == "rider":
        raise forbidden("a place's queue is for drivers and operators")
    found = next(
        ((m.name, p) for m in ctx.runtime.settings.markets for p in m.places if p.id == place_id),
        None,
    )
    if found is None:
        raise not_found(f"no place {place_id!r}")
    market, place = found
    if not place.queue:
        raise not_found(f"place {place_id!r} keeps no queue")
    views = ctx.runtime.views
    with views.lock:
        queue = views.places.queue(place_id)
        inside = views.places.inside(place_id)
    answer = PlaceQueue(place_id=place_id, name=place.name or place_id, market=market,
                        length=len(queue))  # fmt: skip
    if caller.role == "operator":
        answer.inside = inside
        answer.drivers = [
            QueuedDriver(driver_id=UUID(d), position=n, queued_at=_at(at))
            for n, (d, at) in enumerate(queue, start=1)
        ]
        return answer
    for n, (driver_id, at) in enumerate(queue, start=1):
        if driver_id == caller.sub:
            answer.position, answer.queued_at = n, _at(at)
    return answer
