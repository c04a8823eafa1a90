"""Driver endpoints: registration, availability, location pings and actions on rides."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Body, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from dispatch.api import access
from dispatch.api.auth import Principal
from dispatch.api.context import ApiContext
from dispatch.api.deps import (
    Ctx,
    DriverCaller,
    IdempotencyKey,
    RegistrationKey,
    RegistrationLimit,
)
from dispatch.api.errors import (
    AUTH_RESPONSES,
    COMMAND_RESPONSES,
    REGISTRATION_RESPONSES,
    ApiError,
)
from dispatch.api.products import require_vehicle
from dispatch.api.writes import register, write
from dispatch.messages import MAX_PING_AHEAD_S, Ping
from schemas import api
from schemas import commands as c

router = APIRouter(prefix="/drivers", tags=["drivers"])
rides = APIRouter(prefix="/rides", tags=["drivers"])

REGISTRATION_NAMESPACE = UUID("0d0b4a55-1a4e-4f0c-8e55-7a0f3c1d2e9b")

VEHICLE_EXAMPLES = {
    "unknown_product": {
        "summary": "A vehicle registered for a product the catalog does not list",
        "value": {"error": "invalid_vehicle",
                  "reason": "body.vehicle: unknown product 'limo': the products are standard, "
                  "xl, accessible"},
    },
    "does_not_qualify": {
        "summary": "A vehicle that does not qualify for its product",
        "value": {"error": "invalid_vehicle",
                  "reason": "body.vehicle: a vehicle of 4 seats, not accessible cannot serve "
                  "'xl', which needs at least 6 seats"},
    },
}  # fmt: skip
_CREATED: dict[int | str, dict[str, object]] = {
    **REGISTRATION_RESPONSES,
    422: {
        **REGISTRATION_RESPONSES[422],
        "content": {"application/json": {"examples": VEHICLE_EXAMPLES}},
    },
    202: {"model": api.DriverRegistrationPending, "description": "No outcome in time."},
}
_ACTION: dict[int | str, dict[str, object]] = {
    **COMMAND_RESPONSES,
    202: {"model": api.CommandPending, "description": "No outcome in time."},
}


def driver_write(
    ctx: ApiContext,
    request: Request,
    caller: Principal,
    key: str | None,
    command: c.Command,
    body: BaseModel | None = None,
) -> JSONResponse:
    return write(ctx, request, caller.sub, key, command, body)


@router.post(
    "",
    status_code=201,
    response_model=api.DriverRegistered,
    responses=_CREATED,
    dependencies=[RegistrationLimit],
)
def register_driver(
    body: api.RegisterDriver, request: Request, ctx: Ctx, key: RegistrationKey = None
) -> JSONResponse:
    """Register a driver in the market of their home location; returns the driver's id and a
    bearer token bound to it. With an `Idempotency-Key`, a retry returns the same driver."""
    require_vehicle(ctx, body.vehicle)
    shard = ctx.runtime.markets.shard_for(body.home.lat, body.home.lng)
    vehicle = body.vehicle
    return register(
        ctx, request, key, body, "driver", shard, REGISTRATION_NAMESPACE,
        lambda driver_id: c.RegisterDriver(driver_id=driver_id, name=body.name, vehicle=vehicle),
    )  # fmt: skip


@router.post("/{driver_id}/online", response_model=api.CommandAccepted, responses=_ACTION)
def go_online(
    driver_id: UUID, caller: DriverCaller, request: Request, ctx: Ctx, key: IdempotencyKey = None
) -> JSONResponse:
    """Go online: become available for offers. Send location pings so the matcher sees you."""
    access.require_self(caller, driver_id)
    return driver_write(ctx, request, caller, key, c.GoOnline(driver_id=driver_id))


@router.post("/{driver_id}/offline", response_model=api.CommandAccepted, responses=_ACTION)
def go_offline(
    driver_id: UUID,
    caller: DriverCaller,
    request: Request,
    ctx: Ctx,
    body: Annotated[api.GoOffline | None, Body()] = None,
    key: IdempotencyKey = None,
) -> JSONResponse:
    """Go offline now, or with `after_trip` when the current ride ends."""
    access.require_self(caller, driver_id)
    after_trip = body.after_trip if body is not None else False
    command = c.GoOffline(driver_id=driver_id, after_trip=after_trip)
    return driver_write(ctx, request, caller, key, command, body)


def _pings(ctx: ApiContext, driver_id: UUID, pings: Sequence[api.LocationPing]) -> list[Ping]:
    """The pings to send; 410 ``erased`` for an erased driver (as their commands are): a
    position is personal, and nothing more is done for them."""
    views = ctx.runtime.views
    with views.lock:
        row = views.drivers.rows.get(str(driver_id))
        erased = row is not None and getattr(row, "erased", False)
    if erased:
        raise ApiError(410, "erased", f"driver {driver_id} is erased: no location is taken")
    now = ctx.runtime.clock()
    out = []
    for i, p in enumerate(pings):
        at = p.at.timestamp() if p.at is not None else now
        if at > now + MAX_PING_AHEAD_S:
            where = f"pings.{i}.at" if len(pings) > 1 else "at"
            raise ApiError(
                422, "invalid_request", f"{where}: more than {MAX_PING_AHEAD_S:g} s ahead"
            )
        out.append(Ping(driver_id, p.lat, p.lng, at))
    return out


_PING_RESPONSES: dict[int | str, dict[str, object]] = {
    **AUTH_RESPONSES,
    410: {"model": api.Problem, "description": "The driver was erased (erased)."},
    413: {"model": api.Problem, "description": "The request body is too large."},
}


@router.post(
    "/{driver_id}/location",
    status_code=202,
    response_model=api.PingsAccepted,
    responses=_PING_RESPONSES,
)
def report_location(
    driver_id: UUID, body: api.LocationPing, caller: DriverCaller, ctx: Ctx
) -> api.PingsAccepted:
    """Report one position. Pings are not commands: they feed the matcher and the location
    view, and are dropped while the driver is offline."""
    access.require_self(caller, driver_id)
    ctx.runtime.send_pings(_pings(ctx, driver_id, [body]))
    ctx.metrics.pings.inc()
    return api.PingsAccepted(accepted=1)


@router.post(
    "/{driver_id}/locations",
    status_code=202,
    response_model=api.PingsAccepted,
    responses=_PING_RESPONSES,
)
def report_locations(
    driver_id: UUID, body: api.LocationBatch, caller: DriverCaller, ctx: Ctx
) -> api.PingsAccepted:
    """Report up to 500 positions at once (all or nothing: one bad ping rejects the batch)."""
    access.require_self(caller, driver_id)
    pings = _pings(ctx, driver_id, body.pings)
    ctx.runtime.send_pings(pings)
    ctx.metrics.pings.inc(len(pings))
    return api.PingsAccepted(accepted=len(pings))


def _on_ride(
    ctx: ApiContext,
    request: Request,
    caller: Principal,
    key: str | None,
    ride_id: UUID,
    make: Callable[[UUID, UUID], c.Command],
    body: BaseModel | None = None,
) -> JSONResponse:
    access.driver_on_ride(ctx, caller, ride_id)
    return driver_write(ctx, request, caller, key, make(ride_id, UUID(caller.sub)), body)


@rides.post("/{ride_id}/accept", response_model=api.CommandAccepted, responses=_ACTION)
def accept_offer(
    ride_id: UUID, caller: DriverCaller, request: Request, ctx: Ctx, key: IdempotencyKey = None
) -> JSONResponse:
    """Accept the offer of this ride before it expires: the ride is then yours."""
    return _on_ride(ctx, request, caller, key, ride_id, _command(c.AcceptOffer))


@rides.post("/{ride_id}/decline", response_model=api.CommandAccepted, responses=_ACTION)
def decline_offer(
    ride_id: UUID, caller: DriverCaller, request: Request, ctx: Ctx, key: IdempotencyKey = None
) -> JSONResponse:
    """Decline the offer of this ride: it goes to another driver."""
    return _on_ride(ctx, request, caller, key, ride_id, _command(c.DeclineOffer))


@rides.post("/{ride_id}/arrived", response_model=api.CommandAccepted, responses=_ACTION)
def mark_arrived(
    ride_id: UUID, caller: DriverCaller, request: Request, ctx: Ctx, key: IdempotencyKey = None
) -> JSONResponse:
    """Tell the rider you are at the pickup."""
    return _on_ride(ctx, request, caller, key, ride_id, _command(c.MarkArrived))


@rides.post("/{ride_id}/start", response_model=api.CommandAccepted, responses=_ACTION)
def start_trip(
    ride_id: UUID, caller: DriverCaller, request: Request, ctx: Ctx, key: IdempotencyKey = None
) -> JSONResponse:
    """Start the trip: the rider is on board."""
    return _on_ride(ctx, request, caller, key, ride_id, _command(c.StartTrip))


@rides.post("/{ride_id}/complete", response_model=api.CommandAccepted, responses=_ACTION)
def complete_trip(
    ride_id: UUID, caller: DriverCaller, request: Request, ctx: Ctx, key: IdempotencyKey = None
) -> JSONResponse:
    """Complete the trip at the drop-off: you are available again."""
    return _on_ride(ctx, request, caller, key, ride_id, _command(c.CompleteTrip))


@rides.post("/{ride_id}/driver-cancel", response_model=api.CommandAccepted, responses=_ACTION)
def driver_cancel(
    ride_id: UUID,
    caller: DriverCaller,
    request: Request,
    ctx: Ctx,
    body: Annotated[api.CancelRide | None, Body()] = None,
    key: IdempotencyKey = None,
) -> JSONResponse:
    """Cancel an accepted ride before the trip starts: it goes back to dispatch."""
    reason = body.reason if body is not None else ""

    def make(ride: UUID, driver: UUID) -> c.Command:
        return c.DriverCancel(ride_id=ride, driver_id=driver, reason=reason)

    return _on_ride(ctx, request, caller, key, ride_id, make, body)


def _command(
    kind: type[c.AcceptOffer | c.DeclineOffer | c.MarkArrived | c.StartTrip | c.CompleteTrip],
) -> Callable[[UUID, UUID], c.Command]:
    return lambda ride, driver: kind(ride_id=ride, driver_id=driver)
