"""Sending a command: envelope, send, and the outcome as an HTTP response.

accepted -> 200 (201 when it created something) with the consistency token; rejected ->
the status of its code (``errors.OUTCOME_STATUS``); no outcome in time -> 202 with the
command id. A keyed write carries the request's fingerprint to the engine, which answers a
retry (same key, same fingerprint) with the first outcome and refuses the same key for
another request with ``idempotency_key_reused`` (``dispatch.api.idempotency``).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal
from uuid import UUID

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from dispatch import logs
from dispatch.api.auth import NO_STORE
from dispatch.api.context import ApiContext
from dispatch.api.errors import problem_body, status_for
from dispatch.api.idempotency import Fingerprint, registration_key
from dispatch.domain.ids import derived_id, new_id
from dispatch.messages import FOLLOW_THE_DRIVER
from dispatch.ports import NotDelivered
from schemas.commands import Command, CommandEnvelope, Outcome

REPLAYED_HEADER = "Idempotent-Replayed"

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Write:
    """One command to send and what a success answers besides the command id and token.

    ``fingerprint`` is set for a keyed write only (an unkeyed one has a fresh command id).
    ``granted`` is what only an accepted outcome may reveal (a registration's token, a
    revocation's new tokens): it is computed from the outcome once the shard has compared
    fingerprints, never for a 202; it may raise an ``ApiError`` instead."""

    command: Command
    command_id: str
    fingerprint: Fingerprint | None
    created: bool = False
    extra: dict[str, Any] = field(default_factory=dict)  # in the 200/201 and the 202 bodies
    granted: Callable[[Outcome], dict[str, Any]] | None = None  # in the 200/201 body only
    # The ``extra`` key naming the aggregate the command creates: a duplicate's answer
    # takes it from the first outcome (a retry may have derived another id for it).
    creates: str | None = None
    # A ride request whose ride opens at another shard (its pickup's) than the one that
    # answers it (the rider's): the answer waits for the ride there, and its token is there.
    opens_ride_in: int | None = None


def keyed_id(
    request: Request,
    caller: str,
    key: str | None,
    body: BaseModel | None,
    exclude: set[str] | None = None,
) -> tuple[str, Fingerprint | None]:
    """The command id and fingerprint of a write by ``caller``: the caller-scoped
    Idempotency-Key and the request's fingerprint (keyed: ``dispatch.api.idempotency``), or
    a fresh id and no fingerprint. ``exclude``: fields left out of the fingerprint (fields
    added later, at their defaults: a request fingerprints as it did before them, so a
    retry across an upgrade of the API is answered, not refused as another request)."""
    if key is None:
        return str(uuid.uuid4()), None
    text = body.model_dump_json(exclude=exclude) if body is not None else ""
    ctx: ApiContext = request.app.state.ctx
    fingerprints = ctx.tokens.fingerprints
    return f"{caller}:{key}", fingerprints.of(request.method, request.url.path, caller, text)


def write(
    ctx: ApiContext,
    request: Request,
    caller: str,
    key: str | None,
    command: Command,
    body: BaseModel | None = None,
) -> JSONResponse:
    """Send a command that creates nothing on behalf of ``caller`` (the caller's id)."""
    command_id, print_ = keyed_id(request, caller, key, body)
    return send(ctx, Write(command, command_id, print_))


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
    """Register a driver or rider in ``shard``: a new id (for a retried ``Idempotency-Key``,
    a random UUID, the same one again, derived in ``namespace``), a bearer token bound to
    it, freshly issued for every answer, and the command ``make`` builds for that id.

    A keyed registration's token is issued only once the shard accepted the request's
    fingerprint: a 202 for a derived id would hand the account to anyone who knows the key,
    whatever the body. An unkeyed one's random id is nobody else's: its 202 has the token."""
    if key is not None:
        key = registration_key(key)
    # No caller yet: the key is scoped by the role it registers (`register-driver:<key>`).
    command_id, print_ = keyed_id(request, f"register-{role}", key, body)
    new = derived_id(shard, namespace, command_id) if key is not None else new_id(shard)

    def token(_: Outcome | None = None) -> dict[str, Any]:
        issued = ctx.tokens.issue(str(new), role, ctx.runtime.clock())
        return {"token": issued.model_dump(mode="json")}

    extra: dict[str, Any] = {f"{role}_id": str(new)}
    if key is None:
        return send(ctx, Write(make(new), command_id, print_, True, extra | token()))
    return send(ctx, Write(make(new), command_id, print_, True, extra, granted=token))


def token_of(outcome: Outcome, ctx: ApiContext) -> str:
    """The outcome's position as a consistency token. A duplicate carries none: the log head
    then is a safe stand-in (the first outcome's position is at or before it)."""
    if outcome.position is not None:
        return f"{outcome.shard}:{outcome.position}"
    head = ctx.runtime.head(outcome.shard)
    return (
        f"{outcome.shard}:{head if head is not None else ctx.runtime.views.position(outcome.shard)}"
    )


def _ride_opened(ctx: ApiContext, shard: int, ride_id: str, token: str, wait: bool) -> str:
    """The consistency token of a ride opened at ``shard``: the views' position there once
    they hold it (waiting at most the command timeout when ``wait``), or ``token`` (the
    request's, at the rider's shard) if it has not opened by then. A retry's answer (not
    ``wait``) does not wait: its ride opened with the first answer, or is about to."""
    views = ctx.runtime.views
    with views.progress:
        opened = not wait or views.progress.wait_for(
            lambda: ride_id in views.rides, ctx.options.command_timeout_s
        )
        return f"{shard}:{views.position(shard)}" if opened else token


def send(ctx: ApiContext, write: Write) -> JSONResponse:
    """Send the command and answer with its outcome; traced (``Runtime.tracer``), in a
    span of its own whose context the command carries to its shard, with the command id
    in the log context."""
    tracer = ctx.runtime.tracer
    if tracer is None:
        return _send(ctx, write)
    with (
        tracer.span("dispatch.command", command=write.command.type),
        logs.bound(command_id=logs.loggable_command_id(write.command_id)),
    ):
        return _send(ctx, write)


def _send(ctx: ApiContext, write: Write) -> JSONResponse:
    command = write.command
    envelope = CommandEnvelope(
        command_id=write.command_id,
        fingerprint=write.fingerprint.primary if write.fingerprint is not None else None,
        fingerprint_alternates=write.fingerprint.alternates if write.fingerprint else (),
        issued_at=datetime.fromtimestamp(ctx.runtime.clock(), UTC),
        # a driver's command goes where the views last saw the driver served (handed off)
        shard=ctx.runtime.serving(command.driver_id)
        if isinstance(command, FOLLOW_THE_DRIVER)
        else None,
        command=command,
    )
    kind = write.command.type
    try:
        outcome = ctx.runtime.send(envelope, ctx.options.command_timeout_s)
    except NotDelivered as e:  # not even "pending": the log may not have it
        log.debug("%s not delivered: %s", kind, e)
        ctx.metrics.outcomes.labels(kind, "not_delivered").inc()
        body = problem_body(
            "unavailable",
            f"{e}; it may or may not have been recorded: retry with the same Idempotency-Key",
            write.command_id,
        )
        return JSONResponse(body, status_code=503, headers={"Retry-After": "1"})
    if outcome is None:
        log.debug("%s: no outcome in time (pending)", kind)
        ctx.metrics.outcomes.labels(kind, "timeout").inc()
        body = {"command_id": write.command_id, "status": "pending", **write.extra}
        return JSONResponse(body, status_code=202, headers=_no_store(body))
    log.debug("%s answered by shard %s: %s", kind, outcome.shard, outcome.code)
    ctx.metrics.outcomes.labels(kind, outcome.code if not outcome.accepted else "ok").inc()
    if outcome.accepted:
        status = 201 if write.created else 200
        body = {"command_id": write.command_id, "position": token_of(outcome, ctx), **write.extra}
        if write.creates is not None and outcome.duplicate and outcome.aggregate_ids:
            body[write.creates] = outcome.aggregate_ids[0]
        if write.opens_ride_in is not None and write.creates:
            body["position"] = _ride_opened(
                ctx, write.opens_ride_in, body[write.creates], body["position"],
                wait=not outcome.duplicate,
            )  # fmt: skip
        if write.granted is not None:
            body |= write.granted(outcome)
    else:
        status = status_for(outcome.code)
        body = problem_body(outcome.code, outcome.reason, write.command_id)
    replayed = outcome.duplicate and outcome.code != "idempotency_key_reused"
    headers = {REPLAYED_HEADER: "true"} if replayed else {}
    return JSONResponse(body, status_code=status, headers=headers | _no_store(body))


def _no_store(body: dict[str, Any]) -> dict[str, str]:
    """No cache may keep an answer that carries tokens (a registration's)."""
    return NO_STORE if "token" in body else {}
