"""Tokens: a new access token (and refresh token) for a refresh token."""

from __future__ import annotations

from fastapi import APIRouter, Response

from dispatch.api.auth import NO_STORE, TokenError
from dispatch.api.deps import Ctx, RefreshLimit
from dispatch.api.errors import AUTH_RESPONSES, TOO_LARGE, unauthorized
from schemas import api

router = APIRouter(prefix="/auth", tags=["auth"])


@router.post(
    "/refresh",
    summary="Refresh tokens",
    response_model=api.TokenIssued,
    dependencies=[RefreshLimit],
    responses={
        401: {
            **AUTH_RESPONSES[401],
            "description": "Not a valid refresh token (malformed, forged, expired, an access "
            "token, or signed with a key this engine no longer has).",
        },
        413: TOO_LARGE,
        422: AUTH_RESPONSES[422],
        429: {
            **AUTH_RESPONSES[429],
            "description": "Over the refresh attempts of this client address "
            "(DISPATCH_RATE_LIMIT_REGISTRATIONS_PER_MIN), or over the request rate of the "
            "token's caller (DISPATCH_RATE_LIMIT_REQUESTS_PER_S): rate_limited.",
        },
    },
)
async def refresh(body: api.RefreshTokens, ctx: Ctx, response: Response) -> api.TokenIssued:
    """Exchange a refresh token for a new access token and a new refresh token, bound to
    the same driver, rider or operator. The refresh token sent stays valid until it
    expires (there is no revocation yet): keep only the newest. The answer is not to be
    cached (`Cache-Control: no-store`)."""
    response.headers.update(NO_STORE)
    now = ctx.runtime.clock()
    try:
        claims = ctx.tokens.read(body.refresh_token, "refresh", now)
    except TokenError as error:
        raise unauthorized(error.reason) from None
    ctx.rate.caller(claims.role, claims.sub)
    return ctx.tokens.issue(claims.sub, claims.role, now, claims.operator)
