"""Dependencies for the routers, as ``Annotated`` aliases: the context, the caller, the
idempotency key and the consistency token of a read.

They are ``async``: FastAPI runs a sync dependency on a worker thread, and a thread hop per
dependency costs more than these checks (an HMAC over a token) do.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Annotated

import anyio.to_thread
from fastapi import Depends, Header, Query, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import WithJsonSchema

from dispatch.api import revocation
from dispatch.api.auth import Principal, TokenError
from dispatch.api.context import ApiContext
from dispatch.api.errors import ApiError, forbidden, unauthorized
from dispatch.domain.operators import DISPATCHING_ROLES
from dispatch.read_audit import ReadAuditUnavailable, ReadRecord, canonical_path, kept_query
from schemas.api import TOKEN_PATTERN
from schemas.api import ConsistencyToken as TokenText

log = logging.getLogger(__name__)

_bearer = HTTPBearer(
    auto_error=False,
    description="An access token from `POST /drivers`, `POST /riders` or `POST /auth/refresh`, "
    "or an operator's token (`dispatch operator-token --name NAME --role ROLE`).",
)


async def get_context(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.ctx
    return ctx


Ctx = Annotated[ApiContext, Depends(get_context)]


Bearer = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def _holder(ctx: ApiContext, credentials: HTTPAuthorizationCredentials | None) -> Principal:
    """Who a well-formed, unexpired access token stands for (revoked or not)."""
    if credentials is None:
        raise unauthorized("missing bearer token (Authorization: Bearer <token>)")
    try:
        caller = ctx.tokens.principal(credentials.credentials, ctx.runtime.clock())
    except TokenError as error:
        raise unauthorized(error.reason) from None
    return caller


async def get_principal(ctx: Ctx, credentials: Bearer) -> Principal:
    """The caller, whose token is not revoked (``dispatch.api.revocation``)."""
    caller = _holder(ctx, credentials)
    revocation.refuse_revoked(ctx, caller)
    ctx.rate.caller(caller.role, caller.sub)
    return caller


Caller = Annotated[Principal, Depends(get_principal)]


async def get_token_holder(ctx: Ctx, credentials: Bearer) -> Principal:
    """The caller of ``POST /auth/revoke``, whose token may be revoked already: only the
    retry of the revocation that revoked it goes further (the route and the shard
    decide). Views too stale to tell are a 503 as for every caller."""
    caller = _holder(ctx, credentials)
    problem = revocation.staleness(ctx, caller)
    if problem is not None:
        raise problem
    ctx.rate.caller(caller.role, caller.sub)
    return caller


TokenHolder = Annotated[Principal, Depends(get_token_holder)]


async def record_operator_read(request: Request, caller: Caller, ctx: Ctx) -> None:
    """An operator's read is recorded (``ctx.reads``) before it is answered; a read that
    cannot be recorded is refused (503 ``audit_unavailable``). Other callers' reads are
    not recorded. Recording runs on threads of its own (``RECORDING_THREADS``), so a slow
    store holds up operators' reads, not the threads every other request shares."""
    await audit_read(request, caller, ctx)


async def audit_read(request: Request, caller: Principal, ctx: ApiContext) -> None:
    """``record_operator_read`` for a caller found otherwise (the operations page's
    session cookie, ``dispatch.api.ops_page``)."""
    operator = caller.operator
    if operator is None:
        return
    route = request.scope.get("route")
    own = _query_names(route) if isinstance(route, APIRoute) else ()
    query, omitted = kept_query(request.query_params.multi_items(), own)
    record = ReadRecord(
        ctx.runtime.clock(),
        caller.sub,
        operator.name,
        operator.role,
        f"{request.method} {getattr(route, 'path', request.url.path)}",
        canonical_path(request.path_params),
        query,
        uuid.uuid4().hex,
        omitted,
    )
    try:
        await anyio.to_thread.run_sync(ctx.reads.record, record, limiter=_recording(request))
    except ReadAuditUnavailable as error:
        log.error("an operator read refused: it could not be recorded: %s", error)
        raise ApiError(
            503,
            "audit_unavailable",
            "operators' reads are recorded before they are answered, and this one could not "
            "be; retry",
            {"Retry-After": "5"},
        ) from None


RECORDING_THREADS = 8  # operators' reads recorded at once, per process


def _recording(request: Request) -> anyio.CapacityLimiter:
    """The app's own threads for recording reads (made in the event loop, at first use)."""
    state = request.app.state
    limiter: anyio.CapacityLimiter | None = getattr(state, "recording_threads", None)
    if limiter is None:
        limiter = state.recording_threads = anyio.CapacityLimiter(RECORDING_THREADS)
    return limiter


def _query_names(route: APIRoute) -> tuple[str, ...]:
    """The query parameters a route reads (its own and its dependencies'), by their names
    on the wire."""
    names: list[str] = []

    def walk(dependant: Dependant) -> None:
        names.extend(field.alias for field in dependant.query_params)
        for inner in dependant.dependencies:
            walk(inner)

    walk(route.dependant)
    return tuple(dict.fromkeys(names))


# On every read an operator may make: recorded before it is answered.
OperatorReadAudited = Depends(record_operator_read)


async def count_registration(ctx: Ctx, request: Request) -> None:
    """Registrations are open to anyone: limited by the client's address."""
    ctx.rate.registration(request)


RegistrationLimit = Depends(count_registration)


async def count_refresh(ctx: Ctx, request: Request) -> None:
    """Refreshes are open to anyone holding a token, or guessing one: limited by the
    client's address before the token is read."""
    ctx.rate.refresh(request)


RefreshLimit = Depends(count_refresh)


def _role(*roles: str) -> object:
    async def check(caller: Caller) -> Principal:
        if caller.role not in roles:
            wanted = " or ".join(roles)
            raise forbidden(f"this needs a token of role {wanted}; yours is {caller.role}")
        return caller

    return Depends(check)


def _operator_role(*roles: str) -> object:
    """An operator whose operator role is one of ``roles``."""

    async def check(caller: Caller) -> Principal:
        wanted = " or ".join(roles)
        if caller.operator is None:
            raise forbidden(f"this needs an operator of role {wanted}; yours is a {caller.role}")
        if caller.operator.role not in roles:
            raise forbidden(
                f"this needs an operator of role {wanted}; operator {caller.operator.name} is a "
                f"{caller.operator.role}"
            )
        return caller

    return Depends(check)


DriverCaller = Annotated[Principal, _role("driver")]
RiderCaller = Annotated[Principal, _role("rider")]
OperatorCaller = Annotated[Principal, _role("operator")]  # any operator: a viewer reads
DispatcherCaller = Annotated[Principal, _operator_role(*DISPATCHING_ROLES)]
RiderOrOperator = Annotated[Principal, _role("rider", "operator")]


def present(pattern: str, max_length: int) -> WithJsonSchema:
    """The documented schema of an optional header or query value: a string when it is sent
    (FastAPI would say ``string or null``, and a header cannot be null)."""
    return WithJsonSchema({"type": "string", "pattern": pattern, "maxLength": max_length})


KEY_PATTERN = r"^[A-Za-z0-9._~:+/=-]+$"
IdempotencyKey = Annotated[
    str | None,
    present(KEY_PATTERN, 64),
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=64,
        pattern=KEY_PATTERN,
        description="Makes a retry safe: the same key (per caller) for the same request "
        "returns the first outcome and changes nothing; the same key for another request is "
        "a 422 idempotency_key_reused.",
    ),
]
UUID4_PATTERN = (
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-4[0-9a-fA-F]{3}-[89abAB][0-9a-fA-F]{3}-[0-9a-fA-F]{12}$"
)
RegistrationKey = Annotated[
    str | None,
    present(UUID4_PATTERN, 36),
    Header(
        alias="Idempotency-Key",
        pattern=UUID4_PATTERN,
        max_length=36,
        description="Makes a registration retry safe: a random (version 4) UUID, which nobody "
        "can guess. A retry with the same key and body gets the same account and a fresh "
        "token; the same key with another body is a 422 idempotency_key_reused.",
    ),
]


@dataclass(frozen=True, slots=True)
class ReadAfter:
    shard: int
    position: int


def parse_token(ctx: ApiContext, text: str) -> ReadAfter:
    """A token the API could have issued: a known shard, a position not past the log head."""
    shard_text, _, position_text = text.partition(":")
    shard, position = int(shard_text), int(position_text)
    shards = ctx.runtime.settings.shards
    if shard >= shards:
        raise ApiError(422, "invalid_request", f"token {text}: no shard {shard} (of {shards})")
    if ctx.runtime.views.position(shard) >= position:
        return ReadAfter(shard, position)  # already visible: no need to read the log head
    head = ctx.runtime.head(shard)
    if head is not None and position > head:
        raise ApiError(422, "invalid_request", f"token {text} is past the log head {shard}:{head}")
    return ReadAfter(shard, position)


async def wait_for_token(
    ctx: Ctx,
    after: Annotated[
        TokenText | None,
        present(TOKEN_PATTERN, 24),
        Query(description="Read after this consistency token (`shard:pos`)."),
    ] = None,
    header: Annotated[
        TokenText | None, present(TOKEN_PATTERN, 24), Header(alias="X-Consistency-Token")
    ] = None,
) -> ReadAfter | None:
    """Wait (bounded) until the views include the token's position; 504 if they do not."""
    text = after or header
    if text is None:
        return None
    return await read_after(ctx, text)


async def read_after(ctx: ApiContext, text: str) -> ReadAfter:
    """The position ``text`` (``shard:pos``) once this instance's views include it: waited
    for up to ``read_wait_s`` (422 past the log head; 504 ``view_behind`` if not in time)."""
    token = parse_token(ctx, text)
    if ctx.runtime.views.position(token.shard) >= token.position:
        return token
    caught_up = await anyio.to_thread.run_sync(
        ctx.runtime.wait_for, token.shard, token.position, ctx.options.read_wait_s
    )
    if not caught_up:
        reached = ctx.runtime.views.position(token.shard)
        raise ApiError(
            504,
            "view_behind",
            f"the views reached {token.shard}:{reached}, not {text}, within "
            f"{ctx.options.read_wait_s:g} s; retry",
        )
    return token


Consistent = Annotated[ReadAfter | None, Depends(wait_for_token)]
