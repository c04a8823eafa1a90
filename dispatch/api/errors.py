"""Errors on the wire: one table from outcome codes to HTTP statuses, one Problem body.

Every error the API returns is ``{"error": code, "reason": ..., "command_id"?: ...}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from dispatch.privacy import KeyNotYetKnown
from schemas.api import Problem

# Rejection codes of the domain and the worker -> HTTP status.
OUTCOME_STATUS: Mapping[str, int] = {
    "illegal_transition": 409,
    "already_exists": 409,
    "not_found": 404,
    "forbidden": 403,
    "invalid_command": 422,
    # The rider or driver was erased (docs/PRIVACY.md): nothing more is done for them.
    "erased": 410,
    "quote_expired": 422,  # a ride request's quote, expired on the shard's clock
    "outside_service_area": 422,  # a ride's pickup or drop-off outside its market's area
    "scheduled_time_out_of_range": 422,  # a booking's time nearer than the lead or too far
    "too_many_scheduled": 409,  # the rider holds the most scheduled rides a rider may
    "idempotency_key_reused": 422,
    # A revocation sent with a token of a version already revoked (not the retry of the
    # revocation that revoked it, which its record answers).
    "token_revoked": 401,
    # An admin's revocation of a principal whose version is already the highest a token
    # can carry (dispatch.domain.credentials.MAX_TOKEN_VERSION).
    "token_version_exhausted": 409,
    # A UUIDv7 key older than the idempotency window, or dated too far ahead of the engine's
    # clock: send the request again with a new key (docs/ARCHITECTURE.md, Idempotency).
    "idempotency_key_expired": 422,
    "idempotency_key_invalid": 422,
    "unavailable": 503,
    # A driver's command that could not follow the driver to the shard serving it now (a
    # hand-off in progress): retry.
    "moved": 503,
    "not_here_yet": 503,
    "misrouted": 500,  # the API routed by the id's shard: a bug, not bad input
    "internal_error": 500,
}

_HTTP_CODES: Mapping[int, str] = {
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    408: "request_timeout",
    415: "unsupported_media_type",
    422: "invalid_request",
}


def status_for(code: str) -> int:
    return OUTCOME_STATUS.get(code, 500)


class ApiError(Exception):
    """Raised anywhere in the API layer; rendered as a Problem with ``status``."""

    def __init__(
        self,
        status: int,
        error: str,
        reason: str,
        headers: Mapping[str, str] | None = None,
        command_id: str | None = None,
    ) -> None:
        super().__init__(reason)
        self.status, self.error, self.reason = status, error, reason
        self.headers = dict(headers or {})
        self.command_id = command_id


def unauthorized(reason: str) -> ApiError:
    """A 401 with the reason in the body and in a ``WWW-Authenticate: Bearer`` challenge."""
    challenge = f'Bearer error="invalid_token", error_description="{challenge_text(reason)}"'
    return ApiError(401, "unauthorized", reason, {"WWW-Authenticate": challenge})


def challenge_text(reason: str, limit: int = 200) -> str:
    """``reason`` as a challenge's ``error_description`` may carry it (RFC 6750, 3: printable
    ASCII but ``"`` and ``\\``): a double quote becomes a single one, a backslash a slash,
    any other character outside it ``?``. A header is encoded as latin-1, so a character
    beyond it would fail the response (a 500) rather than the token."""
    text = reason[:limit].replace('"', "'").replace("\\", "/")
    return "".join(c if " " <= c <= "~" else "?" for c in text)


def forbidden(reason: str) -> ApiError:
    return ApiError(403, "forbidden", reason)


def not_found(reason: str) -> ApiError:
    return ApiError(404, "not_found", reason)


def problem_body(
    error: str, reason: str, command_id: str | None = None, details: list[Any] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"error": error, "reason": reason}
    if command_id is not None:
        body["command_id"] = command_id
    if details is not None:
        body["details"] = details
    return body


def _details(errors: Any) -> list[dict[str, Any]]:
    out = []
    for e in errors:
        out.append(
            {
                "loc": [str(x) for x in e.get("loc", ())],
                "msg": e.get("msg", ""),
                "type": e.get("type", ""),
            }
        )
    return out


def _summary(details: list[dict[str, Any]]) -> str:
    parts = [f"{'.'.join(d['loc'])}: {d['msg']}" for d in details[:5]]
    more = f" (+{len(details) - 5} more)" if len(details) > 5 else ""
    return "; ".join(parts) + more


async def _api_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    body = problem_body(exc.error, exc.reason, exc.command_id)
    return JSONResponse(body, status_code=exc.status, headers=exc.headers)


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    details = _details(exc.errors())
    body = problem_body("invalid_request", _summary(details) or "invalid request", None, details)
    return JSONResponse(body, status_code=422)


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400:  # FastAPI's "error parsing the body" (e.g. not UTF-8)
        body = problem_body("invalid_request", f"malformed request body: {exc.detail}")
        return JSONResponse(body, status_code=422)
    code = _HTTP_CODES.get(exc.status_code, "error")
    body = problem_body(code, str(exc.detail))
    return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)


async def _key_not_yet_known(_: Request, exc: Exception) -> JSONResponse:
    """A token whose key this process cannot read yet (a key just committed on Kafka):
    retryable, never shown as erased (docs/PRIVACY.md, "The key store")."""
    body = problem_body("unavailable", "a personal field's key is not readable yet; retry")
    return JSONResponse(body, status_code=503, headers={"Retry-After": "1"})


def install(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(KeyNotYetKnown, _key_not_yet_known)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)


def _doc(description: str) -> dict[str, Any]:
    return {"model": Problem, "description": description}


def _throttled(description: str) -> dict[str, Any]:
    retry_after = {
        "description": "Seconds to wait before the limit lets a request through.",
        "required": True,
        "schema": {"type": "integer", "minimum": 1},
    }
    return _doc(description) | {"headers": {"Retry-After": retry_after}}


KEY_PROBLEMS = (
    "the Idempotency-Key was used for another request (idempotency_key_reused), is a UUIDv7 "
    "older than the idempotency window (idempotency_key_expired) or dated ahead of the "
    "engine's clock (idempotency_key_invalid)"
)
VIEWS_BEHIND = (
    "this API instance's views of the shard that keeps the caller's token version are "
    "older than the revocation bound (DISPATCH_AUTH_REVOCATION_BOUND_S), so it cannot tell "
    "whether the token was revoked (views_behind, with Retry-After)"
)
AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: _doc("No valid bearer token (missing, malformed, forged, expired or revoked)."),
    403: _doc("Valid token, but not allowed to act on or see this resource."),
    422: _doc("Invalid input, with pydantic's reasons."),
    429: _throttled(
        "Over this caller's request rate (DISPATCH_RATE_LIMIT_REQUESTS_PER_S): rate_limited."
    ),
    503: _doc(f"Not now: {VIEWS_BEHIND}."),
}
TOO_LARGE = _doc("The request body is over DISPATCH_MAX_BODY_BYTES (payload_too_large).")
REGISTRATION_RESPONSES: dict[int | str, dict[str, Any]] = {
    409: _doc("The id is taken (already_exists)."),
    413: TOO_LARGE,
    422: _doc(
        "Invalid input, with pydantic's reasons; or the Idempotency-Key was used for another "
        "registration (idempotency_key_reused); or a driver's vehicle that cannot be "
        "registered (invalid_vehicle: an unknown product, naming the known ones, or a "
        "vehicle that does not qualify for its product, saying what it needs)."
    ),
    429: _throttled(
        "Over the registrations of this client address "
        "(DISPATCH_RATE_LIMIT_REGISTRATIONS_PER_MIN): rate_limited."
    ),
    500: _doc("The engine failed to handle the command (internal_error)."),
    503: _doc("The shard could not save the command; retry with the same Idempotency-Key."),
}
COMMAND_RESPONSES: dict[int | str, dict[str, Any]] = {
    **AUTH_RESPONSES,
    413: TOO_LARGE,
    404: _doc("The ride, driver or rider does not exist."),
    409: _doc("The current state does not allow this (illegal_transition, already_exists)."),
    410: _doc("The rider or driver was erased (erased): nothing more is done for them."),
    422: _doc(f"Invalid input, with pydantic's reasons; or {KEY_PROBLEMS}."),
    500: _doc("The engine failed to handle the command (internal_error)."),
    503: _doc(
        "The shard could not save the command; retry with the same Idempotency-Key. Or "
        f"{VIEWS_BEHIND}."
    ),
}
# An operator's read that could not be recorded first (``deps.record_operator_read``).
AUDIT_UNAVAILABLE = _doc("An operator's read that could not be recorded (audit_unavailable).")
QUERY_RESPONSES: dict[int | str, dict[str, Any]] = {
    **AUTH_RESPONSES,
    404: _doc("Unknown id."),
    503: AUDIT_UNAVAILABLE,
    504: _doc("The view did not reach the consistency token in time; retry."),
}
