"""Sending a command: envelope, send, and the outcome as an HTTP response.

accepted -> 200 (201 when it created something) with the consistency token; rejected ->
the status of its code (``errors.OUTCOME_STATUS``); no outcome in time -> 202 with the
command id. A retry with the same ``Idempotency-Key`` gets the first status and body: from
this process's memory when it answered the first request, else from the engine, which
answers a repeated command id with its first outcome and records nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal
from uuid import UUID

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from dispatch.api.auth import issue
from dispatch.api.context import ApiContext
from dispatch.api.errors import ApiError, problem_body, status_for
from dispatch.api.idempotency import Remembered, fingerprint
from dispatch.domain.ids import derived_id, new_id
from schemas.commands import Command, CommandEnvelope, Outcome

REPLAYED_HEADER = "Idempotent-Replayed"


@dataclass(frozen=True, slots=True)
class Write:
    """One command to send and what a success answers besides the command id and token."""

    command: Command
    command_id: str
    keyed: bool
    fingerprint: str
    created: bool = False
    extra: dict[str, Any] = field(default_factory=dict)  # in the 200/201 and the 202 bodies


def command_id_for(scope: str, key: str | None) -> tuple[str, bool]:
    """The command id: the caller-scoped Idempotency-Key, or a fresh one."""
    return (f"{scope}:{key}", True) if key else (str(uuid.uuid4()), False)


def write(
    ctx: ApiContext,
    request: Request,
    scope: str,
    key: str | None,
    command: Command,
    body: BaseModel | None = None,
) -> JSONResponse:
    """Send a command that creates nothing on behalf of ``scope`` (the caller's id)."""
    command_id, keyed = command_id_for(scope, key)
    text = body.model_dump_json() if body is not None else ""
    return send(
        ctx, Write(command, command_id, keyed, fingerprint(request.method, request.url.path, text))
    )


def register(
    ctx: ApiContext,
    request: Request,
    key: str | None,
    body: BaseModel,
    role: Literal["driver", "rider"],
    shard: int,
    namespace: UUID,
    make: Callable[[UUID], Command],
) -> JSONResponse:
    """Register a driver or rider in ``shard``: a new id (for a retried ``Idempotency-Key``
    the same one again, derived in ``namespace``), a bearer token bound to it, and the
    command ``make`` builds for that id."""
    command_id, keyed = command_id_for(f"register-{role}", key)
    new = derived_id(shard, namespace, command_id) if keyed else new_id(shard)
    token = issue(ctx.auth, str(new), role, ctx.runtime.clock())
    extra = {f"{role}_id": str(new), "token": token.model_dump(mode="json")}
    print_ = fingerprint(request.method, request.url.path, body.model_dump_json())
    return send(ctx, Write(make(new), command_id, keyed, print_, True, extra))


def token_of(outcome: Outcome, ctx: ApiContext) -> str:
    """The outcome's position as a consistency token. A duplicate carries none: the log head
    then is a safe stand-in (the first outcome's position is at or before it)."""
    if outcome.position is not None:
        return f"{outcome.shard}:{outcome.position}"
    head = ctx.runtime.head(outcome.shard)
    return (
        f"{outcome.shard}:{head if head is not None else ctx.runtime.views.position(outcome.shard)}"
    )


def send(ctx: ApiContext, write: Write) -> JSONResponse:
    remembered = ctx.cache.get(write.command_id) if write.keyed else None
    if remembered is not None and remembered.fingerprint != write.fingerprint:
        raise ApiError(
            422,
            "idempotency_key_reused",
            "this Idempotency-Key was used for a different request",
            command_id=write.command_id,
        )
    if remembered is not None:  # same key, same request: the first answer stands
        return JSONResponse(
            remembered.body, status_code=remembered.status, headers={REPLAYED_HEADER: "true"}
        )
    envelope = CommandEnvelope(
        command_id=write.command_id,
        issued_at=datetime.fromtimestamp(ctx.runtime.clock(), UTC),
        command=write.command,
    )
    outcome = ctx.runtime.send(envelope, ctx.options.command_timeout_s)
    kind = write.command.type
    if outcome is None:
        ctx.metrics.outcomes.labels(kind, "timeout").inc()
        body = {"command_id": write.command_id, "status": "pending", **write.extra}
        return JSONResponse(body, status_code=202)
    ctx.metrics.outcomes.labels(kind, outcome.code if not outcome.accepted else "ok").inc()
    if outcome.accepted:
        status = 201 if write.created else 200
        body = {"command_id": write.command_id, "position": token_of(outcome, ctx), **write.extra}
    else:
        status = status_for(outcome.code)
        body = problem_body(outcome.code, outcome.reason, write.command_id)
    if write.keyed and outcome.code != "unavailable":  # unavailable: nothing was recorded
        ctx.cache.put(write.command_id, Remembered(write.fingerprint, status, body))
    headers = {REPLAYED_HEADER: "true"} if outcome.duplicate else None
    return JSONResponse(body, status_code=status, headers=headers)
