"""Operator actions: what an operator who dispatches may change. Each is a command that
names the operator, and the event it records names them too (the audit trail). Reads are
the queries' and streams' (any operator, a viewer too)."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from dispatch.api import access
from dispatch.api.deps import Ctx, DispatcherCaller, IdempotencyKey
from dispatch.api.errors import COMMAND_RESPONSES
from dispatch.api.writes import write
from schemas import api
from schemas import commands as c

rides = APIRouter(prefix="/rides", tags=["operators"])


@rides.post(
    "/{ride_id}/operator-cancel",
    response_model=api.CommandAccepted,
    responses={**COMMAND_RESPONSES, 202: {"model": api.CommandPending}},
)
def operator_cancel_ride(
    ride_id: UUID,
    body: api.OperatorCancelRide,
    caller: DispatcherCaller,
    request: Request,
    ctx: Ctx,
    key: IdempotencyKey = None,
) -> JSONResponse:
    """Cancel a ride before its trip starts, as an operator of role dispatcher or admin
    (a viewer gets a 403), with a reason. The ride's driver, if any, is let go; the
    `Ride.CancelledByOperator` event names you and your role (`dispatch replay audit`
    lists it). **The reason is shown to the ride's rider and driver** (in their view of
    the ride and its stream), word for word: write it for them, with no internal notes or
    other people's data. Who you are is not shown to them."""
    access.existing_shard(ctx, ride_id)
    operator = caller.operator
    # DispatcherCaller: an operator who dispatches
    assert operator is not None and operator.role != "viewer"
    command = c.OperatorCancelRide(
        ride_id=ride_id, operator_id=UUID(caller.sub), operator_name=operator.name,
        operator_role=operator.role, reason=body.reason,
    )  # fmt: skip
    return write(ctx, request, caller.sub, key, command, body)
