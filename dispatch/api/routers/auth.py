"""Tokens: a new pair for a refresh token, and revocation of every token of a principal."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Body, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from dispatch.api import revocation
from dispatch.api.auth import NO_STORE, Principal, TokenError
from dispatch.api.context import ApiContext
from dispatch.api.deps import UUID4_PATTERN, Ctx, IdempotencyKey, RefreshLimit, TokenHolder
from dispatch.api.errors import (
    AUTH_RESPONSES,
    COMMAND_RESPONSES,
    TOO_LARGE,
    ApiError,
    forbidden,
    not_found,
    unauthorized,
)
from dispatch.api.writes import Write, keyed_id, send
from dispatch.domain.credentials import PrincipalRole
from dispatch.domain.ids import shard_of
from dispatch.domain.operators import operator_id
from dispatch.tokens import MAX_VERSION, Claims
from schemas import api
from schemas import commands as c
from schemas.commands import Outcome

router = APIRouter(prefix="/auth", tags=["auth"])


@router.post(
    "/refresh",
    summary="Refresh tokens",
    response_model=api.TokenIssued,
    dependencies=[RefreshLimit],
    responses={
        401: {
            **AUTH_RESPONSES[401],
            "description": "Not a valid refresh token (malformed, forged, expired, revoked, an "
            "access token, or signed with a key this engine no longer has).",
        },
        413: TOO_LARGE,
        422: AUTH_RESPONSES[422],
        429: {
            **AUTH_RESPONSES[429],
            "description": "Over the refresh attempts of this client address "
            "(DISPATCH_RATE_LIMIT_REGISTRATIONS_PER_MIN), or over the request rate of the "
            "token's caller (DISPATCH_RATE_LIMIT_REQUESTS_PER_S): rate_limited.",
        },
        503: AUTH_RESPONSES[503],
    },
)
async def refresh(body: api.RefreshTokens, ctx: Ctx, response: Response) -> api.TokenIssued:
    """Exchange a refresh token for a new access token and a new refresh token, bound to
    the same driver, rider or operator, of the same token version. The refresh token sent
    stays valid until it expires or is revoked (`POST /auth/revoke`): keep only the
    newest. The answer is not to be cached (`Cache-Control: no-store`)."""
    response.headers.update(NO_STORE)
    now = ctx.runtime.clock()
    try:
        claims = ctx.tokens.read(body.refresh_token, "refresh", now)
    except TokenError as error:
        raise unauthorized(error.reason) from None
    revocation.refuse_revoked(ctx, Principal.of(claims))
    ctx.rate.caller(claims.role, claims.sub)
    # Taken: its version is the current one, which the new pair keeps.
    return ctx.tokens.issue(claims.sub, claims.role, now, claims.operator, claims.ver)


class _Fingerprinted(BaseModel):
    """What a revocation's Idempotency-Key stands for: an admin's, the body; your own, the
    reason and the very tokens sent (their ids and version: a retry must send the same
    access and refresh token, so another token of the same version cannot replay it)."""

    body: api.RevokeTokens | None = None
    reason: str = ""
    token_version: int | None = None
    jti: str | None = None
    refresh_jti: str | None = None


@router.post(
    "/revoke",
    summary="Revoke tokens",
    response_model=api.TokensRevoked,
    responses={
        **COMMAND_RESPONSES,
        202: {"model": api.CommandPending},
        401: {
            **AUTH_RESPONSES[401],
            "description": "No valid bearer token (missing, malformed, forged, expired, or "
            "revoked: a revoked token is taken only for the retry, with its "
            "Idempotency-Key, of the revocation that revoked it).",
        },
        404: {"model": api.Problem, "description": "No such driver or rider."},
        504: {
            "model": api.Problem,
            "description": "The revocation is recorded, but this instance's views did not "
            "show it in time (view_behind): retry with the same Idempotency-Key and token.",
        },
    },
)
def revoke(
    ctx: Ctx,
    caller: TokenHolder,
    request: Request,
    body: Annotated[api.RevokeTokens | None, Body()] = None,
    key: IdempotencyKey = None,
) -> JSONResponse:
    """Revoke every token of a principal: its token version goes up, and tokens of a lower
    version are refused by this API instance as soon as this answers and by every instance
    within the revocation bound (`DISPATCH_AUTH_REVOCATION_BOUND_S`, docs/SECURITY.md).

    **Your own** (sign out everywhere): `{"refresh_token": "...", "reason": "..."}` (the
    refresh token issued with your access token, of the same version: an access token
    alone cannot revoke), with an `Idempotency-Key` that is a random UUID (required: your
    old tokens stop working, so a lost answer is recovered only by a retry with the same
    key and the same two tokens, which gets your new pair). The answer carries your new
    tokens (`token`); a retry answered after a later revocation is a 401
    (`token_revoked`), its pair being revoked already. **Another's**, as an operator of
    role admin: `{"driver_id": ...}`, `{"rider_id": ...}` or `{"operator": "<name>"}`,
    each with a `reason` (recorded with your name, `dispatch replay audit`); the answer
    carries no tokens. A driver or rider whose tokens an admin revoked has no way to get
    new ones: there is no other credential."""
    role, principal = _target(caller, body)
    own = (role, str(principal)) == (caller.role, caller.sub)
    reason = body.reason if body is not None else ""
    if own:
        command = _own(ctx, caller, key, reason)
        proof = _possession(ctx, caller, body)
        printed = _Fingerprinted(
            reason=reason, token_version=caller.ver, jti=caller.jti, refresh_jti=proof.jti
        )
    else:
        command = _another(ctx, caller, role, principal, reason)
        printed = _Fingerprinted(body=body)
    command_id, print_ = keyed_id(request, caller.sub, key, printed)
    answer = _answer(ctx, caller, command, own)
    response = send(ctx, Write(command, command_id, print_, granted=answer))
    if response.status_code == 401:  # the shard refused a revoked token
        response.headers.update(unauthorized("token revoked").headers)
    return response


def _target(caller: Principal, body: api.RevokeTokens | None) -> tuple[PrincipalRole, UUID]:
    """Whose tokens the body names (the caller's own when it names nobody)."""
    if isinstance(body, api.RevokeDriverTokens):
        return "driver", body.driver_id
    if isinstance(body, api.RevokeRiderTokens):
        return "rider", body.rider_id
    if isinstance(body, api.RevokeOperatorTokens):
        return "operator", operator_id(body.operator)
    return caller.role, UUID(caller.sub)


def _own(ctx: ApiContext, caller: Principal, key: str | None, reason: str) -> c.RevokeTokens:
    """The caller revokes its own tokens. A token already revoked goes on only with an
    Idempotency-Key: the shard answers the retry of the revocation that revoked it from its
    record, and refuses anything else (``token_revoked``). The key is a random UUID, as a
    registration's: the retry with it answers a new pair."""
    if key is None:
        revoked = revocation.revocation(ctx, caller)
        if revoked is not None:
            raise revoked
        raise ApiError(
            422,
            "invalid_request",
            "revoking your own tokens needs an Idempotency-Key (a random UUID): your tokens "
            "stop working, so if the answer is lost only a retry with the same key and "
            "tokens gets the new ones",
        )
    if not re.fullmatch(UUID4_PATTERN, key):
        raise ApiError(
            422,
            "invalid_request",
            "revoking your own tokens needs an Idempotency-Key that is a random (version 4) "
            "UUID, which nobody can guess: its retry answers your new tokens",
        )
    if caller.ver >= MAX_VERSION:
        raise ApiError(422, "invalid_request", "a token of the highest version cannot revoke")
    op = caller.operator
    return c.RevokeTokens(
        principal_id=UUID(caller.sub), principal_role=caller.role,
        caller_token_version=caller.ver, reason=reason,
        operator_id=op.id if op else None, operator_name=op.name if op else None,
        operator_role=op.role if op else None,
    )  # fmt: skip


def _possession(ctx: ApiContext, caller: Principal, body: api.RevokeTokens | None) -> Claims:
    """The claims of the refresh token the body sends, which must be the caller's own of
    the same token version: an access token alone (15 minutes) cannot revoke and so mint
    itself a 30-day refresh token. Not checked against the views (the shard decides, so
    that the retry of the revocation that revoked it is answered)."""
    if not isinstance(body, api.RevokeOwnTokens):
        raise ApiError(
            422,
            "invalid_request",
            'revoking your own tokens needs your refresh token: send {"refresh_token": '
            '"...", "reason": "..."} (an access token alone cannot revoke, since the answer '
            "carries a new refresh token)",
        )
    try:
        claims = ctx.tokens.read(body.refresh_token, "refresh", ctx.runtime.clock())
    except TokenError as error:
        raise unauthorized(f"refresh_token: {error.reason}") from None
    held = (claims.sub, claims.role, claims.operator, claims.ver)
    if held != (caller.sub, caller.role, caller.operator, caller.ver):
        raise unauthorized(
            "refresh_token is not of the bearer token's principal and token version: send "
            "the refresh token issued with your access token"
        )
    return claims


def _another(
    ctx: ApiContext, caller: Principal, role: PrincipalRole, principal: UUID, reason: str
) -> c.RevokeTokens:
    """An admin revokes another principal's tokens."""
    revocation.refuse_revoked(ctx, caller)
    op = caller.operator
    if op is None:
        raise forbidden(
            "only an operator of role admin may revoke another's tokens; to revoke your own, "
            "send no body (or one without driver_id, rider_id or operator)"
        )
    if op.role != "admin":
        raise forbidden(
            f"revoking another's tokens needs an operator of role admin; operator {op.name} "
            f"is a {op.role}"
        )
    if role != "operator" and shard_of(principal) >= ctx.runtime.settings.shards:
        raise not_found(f"no {role} {principal}")
    return c.RevokeTokens(
        principal_id=principal, principal_role=role, reason=reason,
        operator_id=op.id, operator_name=op.name, operator_role=op.role,
    )  # fmt: skip


def _answer(
    ctx: ApiContext, caller: Principal, command: c.RevokeTokens, own: bool
) -> Callable[[Outcome], dict[str, Any]]:
    """The answer's body once the shard accepted: after this instance's views hold the
    revocation (so it refuses the old tokens from then on), with the new version and,
    revoking your own, your new pair of that version."""
    sub = str(command.principal_id)
    shard = shard_of(command.credentials_id)
    views = ctx.runtime.views
    wait_s = ctx.options.command_timeout_s

    def body(outcome: Outcome) -> dict[str, Any]:
        new = caller.ver + 1
        if own:  # the version it set is one above the token's: wait until it shows
            ctx.runtime.runner.nudge()
            with views.progress:
                held = views.progress.wait_for(
                    lambda: views.credentials.version(sub) >= new, wait_s
                )
        elif outcome.position is not None:
            held = ctx.runtime.wait_for(outcome.shard, outcome.position, wait_s)
        else:  # a retry answered from its record: the views read past it
            held = ctx.runtime.runner.wait_caught_up(outcome.shard, wait_s)
        if not held:
            raise ApiError(
                504,
                "view_behind",
                f"the revocation is recorded, but this instance's views of shard "
                f"{shard} did not show it within {wait_s:g} s: retry with the same "
                "Idempotency-Key (and the same token) for the answer",
                command_id=outcome.command_id,
            )
        version = views.credentials.version(sub)
        if own and version > new:  # a retry answered after a later revocation
            reason = (
                f"token revoked: the tokens this revocation issued (version {new}) were "
                f"revoked since (this {caller.role}'s tokens are at version {version}); use "
                "the tokens the later revocation answered"
            )
            raise ApiError(401, "token_revoked", reason, unauthorized(reason).headers)
        out: dict[str, Any] = {
            "principal_id": sub,
            "role": command.principal_role,
            "token_version": version,
        }
        if own:
            issued = ctx.tokens.issue(
                sub, caller.role, ctx.runtime.clock(), caller.operator, caller.ver + 1
            )
            out["token"] = issued.model_dump(mode="json")
        return out

    return body
