"""Rider endpoints: registration, requesting a ride and cancelling it."""

from __future__ import annotations

from typing import Annotated
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
from dispatch.api.errors import COMMAND_RESPONSES, REGISTRATION_RESPONSES
from dispatch.api.writes import Write, keyed_id, register, send, write
from dispatch.domain.ids import derived_id, new_id, shard_of
from schemas import api
from schemas import commands as c
from schemas.common import LatLng

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


@rides.post(
    "",
    status_code=201,
    response_model=api.RideRequested,
    responses={**COMMAND_RESPONSES, 202: {"model": api.RideRequestPending}},
)
def request_ride(
    body: api.RequestRide,
    caller: RiderCaller,
    request: Request,
    ctx: Ctx,
    key: IdempotencyKey = None,
) -> JSONResponse:
    """Ask for a ride from `pickup` to `dropoff`, in any market. Dispatch starts at once;
    follow it on `GET /rides/{ride_id}/events`. A rider has one active ride at a time
    (else 409)."""
    rider_id = UUID(caller.sub)
    # The ride lives in the shard of its pickup; the rider's home shard takes the request
    # (the one-active-ride lock) and, for a pickup elsewhere, opens the ride there.
    shard = ctx.runtime.markets.shard_for(body.pickup.lat, body.pickup.lng)
    command_id, print_ = keyed_id(request, caller.sub, key, body)
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
    )
    extra = {"ride_id": str(ride_id)}
    elsewhere = shard if shard != shard_of(rider_id) else None
    return send(
        ctx, Write(command, command_id, print_, True, extra, creates="ride_id",
                   opens_ride_in=elsewhere),
    )  # fmt: skip


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
