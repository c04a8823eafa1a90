"""Bearer tokens: HMAC-SHA256 over a compact JSON payload ``{sub, role, exp}``.

A token is ``base64url(payload) "." base64url(hmac_sha256(secret, base64url(payload)))``.
Registering a driver or rider mints a token bound to that id; an operator token is minted
from the settings (``mint_operator_token``), never over HTTP.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from zxcvbn import zxcvbn

from schemas.api import TokenIssued

Role = Literal["driver", "rider", "operator"]
ROLES: frozenset[str] = frozenset({"driver", "rider", "operator"})
OPERATOR_SUBJECT = "operator"
MIN_SECRET_LENGTH = 32
MIN_SECRET_BITS = 100.0
_ESTIMATED_PREFIX = 72  # zxcvbn reads at most this many characters
PLACEHOLDER_SECRETS = frozenset(
    {"change-me", "changeme", "change_me", "changethis", "secret", "development", "dev"}
)


class AuthSettings(BaseSettings):
    """Token settings, read from ``DISPATCH_AUTH_*``. Outside development the secret must be
    a real one: at least 32 characters, not a placeholder, and an estimated strength of at
    least ``MIN_SECRET_BITS`` (zxcvbn's guess count, as bits). No error ever shows it."""

    model_config = SettingsConfigDict(
        env_prefix="DISPATCH_AUTH_", frozen=True, extra="ignore", hide_input_in_errors=True
    )

    secret: SecretStr = SecretStr("change-me")
    token_ttl_s: int = Field(default=86_400, ge=60, le=90 * 86_400)
    environment: Literal["development", "production"] = "development"

    @model_validator(mode="after")
    def _refuse_placeholder_secret(self) -> AuthSettings:
        if self.environment != "development" and self.weak_secret:
            raise ValueError(
                "DISPATCH_AUTH_SECRET is too weak: a placeholder, shorter than "
                f"{MIN_SECRET_LENGTH} characters or under {MIN_SECRET_BITS:g} bits of "
                f"estimated strength (it has about {self.secret_bits:.0f}); refusing to run "
                f"in {self.environment}. Set it to a random value, e.g. "
                "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`."
            )
        return self

    @property
    def weak_secret(self) -> bool:
        raw = self.secret.get_secret_value()
        if raw.strip().lower() in PLACEHOLDER_SECRETS or len(raw) < MIN_SECRET_LENGTH:
            return True
        return self.secret_bits < MIN_SECRET_BITS

    @property
    def secret_bits(self) -> float:
        """The secret's estimated strength in bits: log2 of the guesses zxcvbn says an
        attacker needs (repeats, sequences, keyboard walks and words count for little).
        Estimated over its first 72 characters."""
        raw = self.secret.get_secret_value()[:_ESTIMATED_PREFIX]
        if not raw:
            return 0.0
        return float(zxcvbn(raw)["guesses_log10"]) * math.log2(10)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the subject (a driver or rider id, or ``operator``) and its role."""

    sub: str
    role: Role
    exp: int


class TokenError(Exception):
    """The token is missing, malformed, forged or expired; ``reason`` says which."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(secret: SecretStr, payload: str) -> str:
    key = secret.get_secret_value().encode()
    return _b64(hmac.new(key, payload.encode("ascii"), hashlib.sha256).digest())


def mint_token(settings: AuthSettings, sub: str, role: Role, now: float | None = None) -> Principal:
    """A principal valid for ``token_ttl_s`` from ``now``; encode it with ``encode``."""
    issued = time.time() if now is None else now
    return Principal(sub, role, int(issued) + settings.token_ttl_s)


def encode(settings: AuthSettings, principal: Principal) -> str:
    body = {"sub": principal.sub, "role": principal.role, "exp": principal.exp}
    payload = _b64(json.dumps(body, separators=(",", ":")).encode())
    return f"{payload}.{_sign(settings.secret, payload)}"


def decode(settings: AuthSettings, token: str, now: float | None = None) -> Principal:
    """The principal a token stands for, or ``TokenError`` with the reason."""
    payload, dot, signature = token.partition(".")
    if not dot or not payload or not signature:
        raise TokenError("malformed token: expected <payload>.<signature>")
    if not token.isascii():
        raise TokenError("malformed token: not ASCII")
    expected = _sign(settings.secret, payload)
    if not hmac.compare_digest(expected, signature):
        raise TokenError("bad signature")
    try:
        body = json.loads(_unb64(payload))
        sub, role, exp = body["sub"], body["role"], body["exp"]
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise TokenError("malformed token payload") from None
    if not isinstance(sub, str) or role not in ROLES or not isinstance(exp, int):
        raise TokenError("malformed token payload")
    if not _subject_fits(sub, role):
        raise TokenError(f"malformed token payload: no {role} is called {sub[:40]!r}")
    if exp <= (time.time() if now is None else now):
        raise TokenError("token expired")
    return Principal(sub, role, exp)


def _subject_fits(sub: str, role: str) -> bool:
    """An operator token names the operator; a driver's or rider's names an id."""
    if role == "operator":
        return sub == OPERATOR_SUBJECT
    try:
        return str(uuid.UUID(sub)) == sub
    except ValueError:
        return False


def mint_operator_token(settings: AuthSettings, now: float | None = None) -> str:
    """An operator token (for operator-only endpoints such as the heatmap). For the CLI."""
    return encode(settings, mint_token(settings, OPERATOR_SUBJECT, "operator", now))


def issue(settings: AuthSettings, sub: str, role: Role, now: float) -> TokenIssued:
    """A fresh token for ``sub``, as returned by the registration endpoints."""
    principal = mint_token(settings, sub, role, now)
    return TokenIssued(
        access_token=encode(settings, principal),
        expires_at=datetime.fromtimestamp(principal.exp, UTC),
    )
