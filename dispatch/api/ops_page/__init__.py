"""The operations page at ``/ops``: a live map for operators (docs/OPERATIONS.md, "The
operations page").

Sign-in: an operator's access token, given once, by the form the page shows (``POST
/ops/session``) or as ``/ops?token=``, which is answered at once with a redirect to
``/ops`` that sets the session cookie. The cookie is not the token: it is a session of its
own, signed with a key derived from the token signing key, for the page's reads only
(``/ops/state``, ``/ops/stream``: Path=/ops, HttpOnly, SameSite=Strict, at most
``DISPATCH_OPS_SESSION_TTL_S`` and never past the token's own expiry). Every other route
reads only ``Authorization: Bearer``, so the cookie authorizes no write. Each read checks
the token's version as the views hold it (a revoked token's session ends) and is recorded
in the operators' read audit like any operator read. The access log keeps no query string
(``dispatch.api.serve.PathOnlyAccessLog``), so the token of ``?token=`` is in no log line.

The page's own script and style are package data (``static/``); it draws with no library:
its own Web-Mercator projection on an SVG, hexagon boundaries computed here with h3.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs, urlsplit

import anyio.to_thread
from fastapi import APIRouter, Cookie, FastAPI, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles

from dispatch.api import present, revocation
from dispatch.api.auth import Principal, TokenError
from dispatch.api.context import ApiContext
from dispatch.api.deps import audit_read
from dispatch.api.errors import ApiError, unauthorized
from dispatch.api.ops_page.past import PastStates
from dispatch.api.routers.streams import SSE_HEADERS, end_frame
from dispatch.api.settings import OpsPageSettings
from dispatch.tokens import operator_of
from projections.ops_picture import Limits, picture

STATIC = Path(__file__).parent / "static"
COOKIE = "dispatch_ops_session"
PATH = "/ops"
PURPOSE = b"dispatch ops-page session v1"  # the cookie's key: derived, never the token key


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Sessions:
    """Session cookies of the page: ``<kid>.<claims>.<mac>``, the MAC keyed by a key
    derived from the ring's key ``kid`` for this purpose alone."""

    def __init__(self, ctx: ApiContext, settings: OpsPageSettings) -> None:
        self._ctx = ctx
        self.settings = settings

    def _key(self, kid: str) -> bytes | None:
        raw = self._ctx.tokens.settings.ring_keys.get(kid)
        if raw is None:
            return None
        return hmac.new(raw.encode("utf-8"), PURPOSE, hashlib.sha256).digest()

    def open(self, token: str) -> tuple[str, int]:
        """A session for an operator's access token: (cookie value, seconds it lasts);
        ``ApiError`` 401 for a token that is not a valid operator token, or a revoked one."""
        ctx = self._ctx
        now = ctx.runtime.clock()
        try:
            caller = ctx.tokens.principal(token.strip(), now)
        except TokenError as error:
            raise unauthorized(error.reason) from None
        if caller.role != "operator" or caller.operator is None:
            raise unauthorized("the operations page is for operators; this is a "
                               f"{caller.role}'s token")  # fmt: skip
        revocation.refuse_revoked(ctx, caller)
        exp = min(int(now) + self.settings.session_ttl_s, caller.exp)
        claims = {
            "sub": caller.sub, "name": caller.operator.name, "role": caller.operator.role,
            "ver": caller.ver, "iat": caller.iat, "exp": exp,
        }  # fmt: skip
        kid = ctx.tokens.settings.signing_kid
        key = self._key(kid)
        assert key is not None
        body = _b64(json.dumps(claims, separators=(",", ":")).encode("utf-8"))
        signed = f"{kid}.{body}"
        mac = _b64(hmac.new(key, signed.encode("ascii"), hashlib.sha256).digest())
        return f"{signed}.{mac}", max(1, exp - int(now))

    def principal(self, cookie: str | None) -> Principal:
        """Who a session cookie stands for; 401 when missing, forged, expired or revoked."""
        if not cookie:
            raise unauthorized("no session: sign in at /ops")
        kid, _, rest = cookie.partition(".")
        body, _, mac = rest.partition(".")
        key = self._key(kid) if cookie.isascii() else None
        if key is None or not body or not mac:
            raise unauthorized("not a session of this page: sign in at /ops")
        want = hmac.new(key, f"{kid}.{body}".encode("ascii"), hashlib.sha256).digest()
        try:
            valid = hmac.compare_digest(want, _unb64(mac))
            claims = json.loads(_unb64(body)) if valid else None
        except ValueError:
            valid, claims = False, None
        if not valid or not isinstance(claims, dict):
            raise unauthorized("not a session of this page: sign in at /ops")
        if claims["exp"] <= self._ctx.runtime.clock():
            raise unauthorized("the session expired: sign in at /ops")
        operator = operator_of(claims["name"], claims["role"])
        caller = Principal(claims["sub"], "operator", claims["exp"], operator, claims["ver"],
                           claims["iat"])  # fmt: skip
        revocation.refuse_revoked(self._ctx, caller)
        return caller


SessionCookie = Annotated[str | None, Cookie(alias=COOKIE)]


def _headers(settings: OpsPageSettings) -> dict[str, str]:
    """Every answer of the page: nothing cached, no referrer (``?token=`` never leaks on),
    and scripts, styles and connections from this app only (tiles from their host too)."""
    img = "'self' data:"
    if settings.tile_url:
        parts = urlsplit(settings.tile_url.replace("{", "").replace("}", ""))
        img += f" {parts.scheme}://{parts.netloc}"
    policy = (
        f"default-src 'self'; script-src 'self'; style-src 'self'; img-src {img}; "
        "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    )
    return {
        "Cache-Control": "no-store",
        "Referrer-Policy": "no-referrer",
        "Content-Security-Policy": policy,
        "X-Content-Type-Options": "nosniff",
    }


def _sign_in_page(reason: str | None = None) -> str:
    page = (STATIC / "signin.html").read_text(encoding="utf-8")
    note = "" if reason is None else f'<p class="error" role="alert">{_escape(reason)}</p>'
    return page.replace("<!--reason-->", note)


def _escape(text: str) -> str:
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;"))  # fmt: skip


def state(ctx: ApiContext, settings: OpsPageSettings) -> dict[str, Any]:
    """What the page draws now (``projections.ops_picture``): drivers with a fresh position
    by status, rides in flight, the supply/demand heatmap and the surge layer."""
    runtime = ctx.runtime
    views = runtime.views
    now = runtime.clock()

    def pickup_of(value: Any) -> list[float] | None:
        where = present.latlng(value, "pickup", runtime.open_personal)  # None: erased
        return None if where is None else [where.lat, where.lng]

    limits = Limits(settings.max_drivers, settings.max_rides)
    with views.lock:
        locations = views.locations
        fresh = [locations.where(d, now) for d in sorted(locations.positions)]
        return picture(views, now, fresh, pickup_of, limits)


def install(app: FastAPI, ctx: ApiContext, settings: OpsPageSettings) -> None:
    """``/ops`` (sign-in or the page), ``/ops/session``, ``/ops/signout``, ``/ops/state``,
    ``/ops/stream`` and ``/ops/static/...``, none of them in the OpenAPI document."""
    sessions = Sessions(ctx, settings)
    past = PastStates(ctx.runtime.settings, settings.past_timeout_s)
    headers = _headers(settings)
    router = APIRouter(prefix=PATH, include_in_schema=False)
    config = json.dumps({"tile_url": settings.tile_url})

    def signed_in(value: str, max_age: int) -> RedirectResponse:
        answer = RedirectResponse(PATH, status_code=303, headers=headers)
        answer.set_cookie(
            COOKIE, value, max_age=max_age, path=PATH, httponly=True, samesite="strict",
            secure=False,  # the API may be served over plain HTTP on a private network
        )  # fmt: skip
        return answer

    def refused(reason: str, status: int = 401) -> HTMLResponse:
        return HTMLResponse(_sign_in_page(reason), status_code=status, headers=headers)

    @router.get("", response_model=None)
    async def page(
        request: Request,
        cookie: SessionCookie = None,
        token: Annotated[str | None, Query(max_length=4096)] = None,
    ) -> HTMLResponse | RedirectResponse:
        if token is not None:  # exchanged at once: the token leaves the address bar
            try:
                return signed_in(*sessions.open(token))
            except ApiError as error:
                return refused(error.reason, error.status)
        if cookie is None:
            return HTMLResponse(_sign_in_page(), headers=headers)
        try:
            caller = sessions.principal(cookie)
        except ApiError as error:
            return refused(error.reason, error.status)
        assert caller.operator is not None
        page = (STATIC / "ops.html").read_text(encoding="utf-8")
        page = page.replace("{{operator}}", _escape(caller.operator.name))
        page = page.replace("{{role}}", _escape(caller.operator.role))
        page = page.replace("{{config}}", _escape(config))
        return HTMLResponse(page, headers=headers)

    @router.post("/session", response_model=None)
    async def sign_in(request: Request) -> Any:
        # a form's urlencoded body, read here (no multipart parser needed for one field)
        fields = parse_qs((await request.body()).decode("utf-8", "replace"), max_num_fields=4)
        token = (fields.get("token") or [""])[0]
        if not token or len(token) > 4096:
            return refused("give an operator token", 400)
        try:
            return signed_in(*sessions.open(token))
        except ApiError as error:
            return refused(error.reason, error.status)

    @router.post("/signout")
    async def sign_out() -> RedirectResponse:
        answer = RedirectResponse(PATH, status_code=303, headers=headers)
        answer.delete_cookie(COOKIE, path=PATH, httponly=True, samesite="strict")
        return answer

    async def reader(request: Request, cookie: str | None) -> Principal:
        caller = sessions.principal(cookie)
        ctx.rate.caller(caller.role, caller.sub)
        await audit_read(request, caller, ctx)
        return caller

    @router.get("/state")
    async def current(
        request: Request,
        cookie: SessionCookie = None,
        at: Annotated[str | None, Query(max_length=64)] = None,
    ) -> JSONResponse:
        await reader(request, cookie)
        if at is None:
            body = await anyio.to_thread.run_sync(state, ctx, settings)
        else:
            body = await past.at(_moment(at, ctx.runtime.clock()))
        return JSONResponse(body, headers=headers)

    @router.get("/stream")
    async def stream(request: Request, cookie: SessionCookie = None) -> StreamingResponse:
        caller = await reader(request, cookie)
        return StreamingResponse(
            _follow(ctx, settings, caller),
            media_type="text/event-stream",
            headers={**SSE_HEADERS, **headers, "Cache-Control": "no-store"},
        )

    app.include_router(router)
    app.mount(f"{PATH}/static", StaticFiles(directory=STATIC), name="ops-static")


def _moment(text: str, now: float) -> float:
    """``at``: an ISO 8601 time (UTC if no zone), not in the future; 422 otherwise."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ApiError(422, "invalid_time", f"at: {text!r} is not an ISO 8601 time") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    moment = when.timestamp()
    if moment > now:
        raise ApiError(422, "invalid_time", f"at: {text} is in the future (now is "
                       f"{datetime.fromtimestamp(now, UTC).isoformat()})")  # fmt: skip
    return moment


async def _follow(
    ctx: ApiContext,
    settings: OpsPageSettings,
    caller: Principal,
) -> AsyncIterator[str]:
    """A ``state`` event at once and then whenever the state changed (looked at every
    ``refresh_s``), heartbeats while it does not; ends when the session expires or its
    token is no longer taken, or after the API's ``stream_max_s``."""
    yield "retry: 2000\n\n"
    loop = asyncio.get_running_loop()
    deadline = loop.time() + ctx.options.stream_max_s
    beat = loop.time() + ctx.options.heartbeat_s
    last = ""
    while True:
        if loop.time() >= deadline:
            yield end_frame("max duration")
            return
        if ctx.runtime.clock() >= caller.exp:
            yield end_frame("session expired")
            return
        refused = revocation.still_valid(ctx, caller)
        if refused is not None:
            yield end_frame(refused)
            return
        body = await anyio.to_thread.run_sync(state, ctx, settings)
        at = body.pop("at")
        text = json.dumps(body, separators=(",", ":"))
        if text != last:
            last = text
            yield f'event: state\ndata: {text[:-1]},"at":{json.dumps(at)}}}\n\n'
            beat = loop.time() + ctx.options.heartbeat_s
        elif loop.time() >= beat:
            yield ": heartbeat\n\n"
            beat = loop.time() + ctx.options.heartbeat_s
        await asyncio.sleep(settings.refresh_s)
