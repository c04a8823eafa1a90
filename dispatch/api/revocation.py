"""Revoked tokens: the check every authenticated request passes, and its bound.

A token is taken only at its principal's current token version as this instance's views
hold it (the credentials view; ``dispatch.domain.credentials.current``): one of a lower
version is refused (401 "token revoked"), one of a higher version too (401), unless it was
issued within the bound (503 ``views_behind``: a revocation through another instance may
have issued it, and this one's views may not hold it yet). The views follow the log, so an instance
learns of a revocation recorded through another one once its views have read the shard
that keeps the principal's version. To bound that, an instance refuses a principal's
tokens (503 ``views_behind``) while its last read of that shard to its end began more than
``DISPATCH_AUTH_REVOCATION_BOUND_S`` ago (``Runtime.views_age``): then it cannot tell
whether the token was revoked since. So once a revocation is committed, no instance takes
the revoked tokens after the bound has passed (docs/SECURITY.md, "Revocation").
"""

from __future__ import annotations

from uuid import UUID

from dispatch.api.auth import Principal
from dispatch.api.context import ApiContext
from dispatch.api.errors import ApiError, unauthorized
from dispatch.domain.credentials import credentials_shard, revoked
from dispatch.tokens import Role, ahead_reason, revoked_reason


def shard_of_principal(ctx: ApiContext, role: Role, sub: str) -> int | None:
    """The shard that keeps the principal's token version, or None for an id of a shard
    this deployment does not have (nothing can be recorded for it there)."""
    shard = credentials_shard(role, UUID(sub))
    return shard if shard < ctx.runtime.settings.shards else None


def current_version(ctx: ApiContext, sub: str) -> int:
    """The principal's token version as this instance's views hold it."""
    return ctx.runtime.views.credentials.version(sub)


def revocation(ctx: ApiContext, caller: Principal) -> ApiError | None:
    """None for a token of its principal's current version as this instance's views hold
    it. Else a 401 for a token of a revoked (lower) version; for one of a higher version,
    a 503 while it is younger than the revocation bound (a pair a revocation answered
    through another instance, whose version this one's views may not hold yet), else a
    401 (no revocation recorded that version: an operator's token minted ahead)."""
    current = current_version(ctx, caller.sub)
    if revoked(caller.ver, current):
        return unauthorized(revoked_reason(caller.role, caller.ver, current))
    if caller.ver == current:
        return None
    bound = ctx.tokens.settings.revocation_bound_s
    if ctx.runtime.clock() - caller.iat <= bound:
        return ApiError(
            503,
            "views_behind",
            f"your token is of version {caller.ver}, and this API instance's views hold "
            f"version {current}: the revocation that issued it may not have reached them "
            f"yet (they do within {bound:g} s, DISPATCH_AUTH_REVOCATION_BOUND_S); retry "
            "shortly",
            {"Retry-After": "1"},
        )
    return unauthorized(ahead_reason(caller.role, caller.ver, current))


def staleness(ctx: ApiContext, caller: Principal) -> ApiError | None:
    """A 503 while this instance's views of the principal's shard are older than the
    revocation bound, else None."""
    shard = shard_of_principal(ctx, caller.role, caller.sub)
    if shard is None:
        return None
    bound = ctx.tokens.settings.revocation_bound_s
    age = ctx.runtime.views_age(shard)
    if age <= bound:
        return None
    seen = f"{age:.1f} s ago" if age != float("inf") else "not yet"
    return ApiError(
        503,
        "views_behind",
        f"this API instance's views last read shard {shard} to its end {seen}, longer than "
        f"the revocation bound ({bound:g} s, DISPATCH_AUTH_REVOCATION_BOUND_S): it cannot "
        "tell whether your token was revoked since; retry shortly (or another instance)",
        {"Retry-After": "1"},
    )


def refuse_revoked(ctx: ApiContext, caller: Principal) -> None:
    """Raise the 401 of a revoked token, or the 503 of views too stale to tell."""
    problem = revocation(ctx, caller) or staleness(ctx, caller)
    if problem is not None:
        raise problem


def still_valid(ctx: ApiContext, caller: Principal) -> str | None:
    """Why ``caller``'s token is no longer taken (an open stream ends then), or None."""
    problem = revocation(ctx, caller) or staleness(ctx, caller)
    return problem.reason if problem is not None else None
