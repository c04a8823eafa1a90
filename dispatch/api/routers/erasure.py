"""Erasure of a rider's or driver's personal data (docs/PRIVACY.md): ``DELETE
/riders/{id}`` and ``DELETE /drivers/{id}``, by the rider or driver themself or an operator
of role admin. The subject's key is deleted, so every sealed copy of their personal fields
reads as erased; every token of theirs is revoked in the same batch (a later request with
one is a 401 ``token revoked``, as after ``POST /auth/revoke``); a command of theirs that
reaches the shard otherwise (an admin's) is refused (410 ``erased``)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from dispatch.api.auth import Principal
from dispatch.api.deps import Caller, Ctx, IdempotencyKey
from dispatch.api.errors import COMMAND_RESPONSES, ApiError, forbidden, not_found
from dispatch.api.present import when
from dispatch.api.writes import Write, keyed_id, send
from dispatch.domain.ids import shard_of
from schemas import api
from schemas import commands as c
from schemas.commands import Outcome

router = APIRouter(tags=["privacy"])

ERASURE_RESPONSES = {
    **COMMAND_RESPONSES,
    202: {"model": api.CommandPending},
    409: {
        **COMMAND_RESPONSES[409],
        "description": "Not now (illegal_transition): a rider with an active ride, a driver "
        "who is not offline, or a log whose personal fields are not sealed (Kafka, for now).",
    },
    504: {
        "model": api.Problem,
        "description": "The erasure is recorded, but this instance's views did not show it "
        "in time (view_behind): retry with the same Idempotency-Key for the 200 (the "
        "subject's own retry is a 401 once the views show the revocation of their tokens).",
    },
}


def _who(caller: Principal, role: str, subject: UUID) -> dict[str, Any]:
    """The subject themself (no operator fields), or an admin, named as the audit trail
    names operators (id, name, role); anyone else gets a 403."""
    if caller.role == role and caller.sub == str(subject):
        return {"by": "self"}
    if caller.operator is not None and caller.operator.role == "admin":
        return {
            "by": "operator",
            "operator_id": UUID(caller.sub),
            "operator_name": caller.operator.name,
            "operator_role": caller.operator.role,
        }
    raise forbidden(f"only the {role} themself or an operator of role admin may erase a {role}")


def _check_shard(ctx: Ctx, subject: UUID, role: str) -> None:
    if shard_of(subject) >= ctx.runtime.settings.shards:
        raise not_found(f"no {role} {subject}")


@router.delete(
    "/riders/{rider_id}", response_model=api.ErasureAccepted, responses=ERASURE_RESPONSES
)
def erase_rider(
    rider_id: UUID, caller: Caller, request: Request, ctx: Ctx, key: IdempotencyKey = None
) -> JSONResponse:
    """Erase a rider's personal data: their name, and the pickup and drop-off of every ride
    of theirs, everywhere the engine keeps them (docs/PRIVACY.md). By the rider or an admin;
    refused while the rider has an active ride (cancel it first). Every token of the rider
    is revoked with it: from this answer on they are refused (401). Erasing again (an
    admin) is accepted and changes nothing."""
    who = _who(caller, "rider", rider_id)
    _check_shard(ctx, rider_id, "rider")
    command = c.EraseRider(rider_id=rider_id, **who)
    return _answered(ctx, _erase(ctx, request, caller.sub, key, command))


@router.delete(
    "/drivers/{driver_id}", response_model=api.ErasureAccepted, responses=ERASURE_RESPONSES
)
def erase_driver(
    driver_id: UUID, caller: Caller, request: Request, ctx: Ctx, key: IdempotencyKey = None
) -> JSONResponse:
    """Erase a driver's personal data (their name) everywhere the engine keeps it
    (docs/PRIVACY.md). By the driver or an admin; only an offline driver served by their
    home shard. Every token of the driver is revoked with it: from this answer on they are
    refused (401). Erasing again (an admin) is accepted and changes nothing."""
    who = _who(caller, "driver", driver_id)
    _check_shard(ctx, driver_id, "driver")
    command = c.EraseDriver(driver_id=driver_id, **who)
    return _answered(ctx, _erase(ctx, request, caller.sub, key, command))


def _erase(
    ctx: Ctx, request: Request, caller: str, key: str | None, command: c.EraseRider | c.EraseDriver
) -> JSONResponse:
    """Send the erasure; an accepted one is answered once this instance's views hold it
    (its revocation of the subject's tokens included), so from the answer on this instance
    refuses the subject's tokens. Views that do not get there within the command timeout
    answer 504 ``view_behind`` (the erasure is recorded; a retry with the same key gets the
    200), as ``POST /auth/revoke`` does; other instances refuse the tokens within the
    revocation bound (docs/SECURITY.md, "Revocation")."""
    command_id, print_ = keyed_id(request, caller, key, None)
    wait_s = ctx.options.command_timeout_s

    def held(outcome: Outcome) -> dict[str, Any]:
        if outcome.position is not None:
            caught_up = ctx.runtime.wait_for(outcome.shard, outcome.position, wait_s)
        else:  # a retry answered from its record: the views read past it
            caught_up = ctx.runtime.runner.wait_caught_up(outcome.shard, wait_s)
        if not caught_up:  # as /auth/revoke: no 200 this instance does not yet hold
            raise ApiError(
                504,
                "view_behind",
                f"the erasure is recorded, but this instance's views of shard "
                f"{outcome.shard} did not show it within {wait_s:g} s: retry with the same "
                "Idempotency-Key for the answer (the subject's own retry is refused 401 "
                "once the views show the revocation the erasure made)",
                command_id=outcome.command_id,
            )
        return {}

    return send(ctx, Write(command, command_id, print_, granted=held))


def _answered(ctx: Ctx, response: JSONResponse) -> JSONResponse:
    """A 200 says since when data is sealed, when data from before is in the clear."""
    clear_before = ctx.runtime.clear_before
    if response.status_code != 200:
        return response
    body = orjson.loads(bytes(response.body))
    body["clear_before"] = None if clear_before is None else when(clear_before).isoformat()
    headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
    return JSONResponse(body, status_code=200, headers=headers)
