"""Bearer tokens: JSON Web Tokens with a key id, in pairs of an access and a refresh token.

Registering a driver or rider issues a pair bound to that id; ``POST /auth/refresh``
exchanges a refresh token for a new pair; ``POST /auth/revoke`` revokes every token of a
principal (``dispatch.api.revocation``); an operator's are issued from the settings
for a named operator with a role (``mint_operator_token``, ``dispatch operator-token
--name alice --role dispatcher``), never over HTTP. What a token
carries and how it is checked: ``dispatch.tokens``; the keys and lifetimes:
``dispatch.api.keys``; the signing library: the codec the composition root builds.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from dispatch.api.idempotency import Fingerprinter
from dispatch.api.keys import AuthSettings
from dispatch.bootstrap import build_token_codec
from dispatch.domain.operators import OperatorRole
from dispatch.tokens import (
    LEGACY_TYPE,
    Claims,
    Operator,
    Role,
    TokenCodec,
    TokenError,
    TokenType,
    mint,
    operator_of,
    read_claims,
)
from schemas.api import TokenIssued

__all__ = [
    "NO_STORE",
    "AuthSettings",
    "Principal",
    "TokenError",
    "Tokens",
    "decode",
    "issue_operator_tokens",
    "mint_operator_token",
]

# The headers of every answer that carries tokens: no cache may keep it (RFC 6749, 5.1).
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the subject (a driver, rider or operator id) and its role; for an
    operator, their name and operator role; the token version, issue time (``iat``) and id
    (``jti``) of the token they called with."""

    sub: str
    role: Role
    exp: int
    operator: Operator | None = None
    ver: int = 0
    iat: int = field(default=0, compare=False)  # which token, not who: not compared
    jti: str = field(default="", compare=False)

    @classmethod
    def of(cls, claims: Claims) -> Principal:
        return cls(
            claims.sub, claims.role, claims.exp, claims.operator, claims.ver, claims.iat,
            claims.jti,
        )  # fmt: skip


class Tokens:
    """Issues and reads the tokens of one key ring, with the settings' lifetimes."""

    def __init__(self, settings: AuthSettings, codec: TokenCodec) -> None:
        self.settings = settings
        self._codec = codec
        # request fingerprints are keyed by keys derived from the same ring
        self.fingerprints = Fingerprinter(
            settings.ring_keys, settings.signing_kid, settings.accept_legacy_fingerprints
        )
        # no token lives longer than its type is given now (so a shortened TTL holds at once)
        self._lifetimes = {
            "access": settings.token_ttl_s,
            "refresh": settings.refresh_token_ttl_s,
            LEGACY_TYPE: settings.legacy_token_ttl_s,
        }

    def access_token(
        self, sub: str, role: Role, now: float, operator: Operator | None = None, ver: int = 0
    ) -> tuple[str, Claims]:
        claims = mint(sub, role, "access", now, self.settings.token_ttl_s, operator, ver)
        return self._codec.sign(claims.as_json()), claims

    def issue(
        self, sub: str, role: Role, now: float, operator: Operator | None = None, ver: int = 0
    ) -> TokenIssued:
        """A fresh access token and refresh token for ``sub`` (an operator's names them), of
        token version ``ver``."""
        access, claims = self.access_token(sub, role, now, operator, ver)
        ttl = self.settings.refresh_token_ttl_s
        refresh = mint(sub, role, "refresh", now, ttl, operator, ver)
        return TokenIssued(
            access_token=access,
            expires_at=datetime.fromtimestamp(claims.exp, UTC),
            refresh_token=self._codec.sign(refresh.as_json()),
            refresh_expires_at=datetime.fromtimestamp(refresh.exp, UTC),
        )

    def principal(self, token: str, now: float) -> Principal:
        """Who an access token stands for, or ``TokenError`` with the reason."""
        return Principal.of(self.read(token, "access", now))

    def read(self, token: str, typ: TokenType, now: float) -> Claims:
        if not token.isascii():
            raise TokenError("malformed token: not ASCII")
        return read_claims(self._codec.verify(token), typ, now, self._lifetimes)


def tokens_for(settings: AuthSettings) -> Tokens:
    """The tokens of ``settings``' key ring, signed and checked by the engine's codec."""
    codec = build_token_codec(
        settings.key_ring(), settings.legacy_secret, settings.legacy_token_ttl_s
    )
    return Tokens(settings, codec)


def mint_access_token(
    settings: AuthSettings, sub: str, role: Role, now: float | None = None
) -> str:
    """An access token for ``sub`` (for tools and tests that act as a known caller)."""
    return tokens_for(settings).access_token(sub, role, _now(now))[0]


def mint_operator_token(
    settings: AuthSettings,
    name: str,
    role: OperatorRole | str,
    now: float | None = None,
    token_version: int = 0,
) -> str:
    """An access token for the operator ``name`` with the operator ``role``, of
    ``token_version``; ``ValueError`` for a name, role or version that is not one."""
    operator = operator_of(name, role)
    tokens = tokens_for(settings)
    sub = str(operator.id)
    return tokens.access_token(sub, "operator", _now(now), operator, token_version)[0]


def issue_operator_tokens(
    settings: AuthSettings,
    name: str,
    role: OperatorRole | str,
    now: float | None = None,
    token_version: int = 0,
) -> TokenIssued:
    """An access and a refresh token for the operator ``name`` with ``role``, of
    ``token_version``."""
    operator = operator_of(name, role)
    sub = str(operator.id)
    return tokens_for(settings).issue(sub, "operator", _now(now), operator, token_version)


def decode(settings: AuthSettings, token: str, now: float | None = None) -> Principal:
    """Who an access token stands for, or ``TokenError`` with the reason."""
    return tokens_for(settings).principal(token, _now(now))


def _now(now: float | None) -> float:
    return time.time() if now is None else now
