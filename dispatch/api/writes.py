"""Sending a command: envelope, send, and the outcome as an HTTP response.

accepted -> 200 (201 when it created something) with the consistency token; rejected ->
the status of its code (``errors.OUTCOME_STATUS``); no outcome in time -> 202 with the
command id. A retry with the same ``Idempotency-Key`` gets the first status and body: from
this process's memory when it answered the first request, else from the engine, which
answers a repeated command id with its first outcome and records nothing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from fastapi.responses import JSONResponse

from dispatch.api.context import ApiContext
from dispatch.api.errors import ApiError, problem_body, status_for
from dispatch.api.idempotency import Remembered
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
    extra: dict[str, Any] = field(default_factory=dict)
    pending_extra: dict[str, Any] = field(default_factory=dict)


def command_id_for(scope: str, key: str | None) -> tuple[str, bool]:
    """The command id: the caller-scoped Idempotency-Key, or a fresh one."""
    return (f"{scope}:{key}", True) if key else (str(uuid.uuid4()), False)


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
        body = {"command_id": write.command_id, "status": "pending", **write.pending_extra}
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
