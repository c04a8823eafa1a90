"""Tokens of the format before JWTs, taken as access tokens until they expire.

Such a token is ``base64url(json {sub, role, exp}) "." base64url(hmac_sha256(secret,
base64url(json)))``, signed with ``DISPATCH_AUTH_SECRET``. ``LegacyTokens`` wraps the JWT
codec behind the same port: a token with a single dot is checked here (the signature
compared in constant time), any other goes to the JWT codec; nothing is ever signed in
this format. Its claims go back with ``typ`` ``dispatch.tokens.LEGACY_TYPE`` for the core's
checks (subject against role, expiry against the engine's clock); as the format has no
issue time, ``iat`` and ``nbf`` are the earliest it could have been issued, ``exp`` less
``lifetime_s``, so one that expires further ahead than that is refused. The settings turn
this on only while the ring is the single ``DISPATCH_AUTH_SECRET`` (``dispatch.api.keys``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

from dispatch.tokens import AUDIENCE, ISSUER, LEGACY_TYPE, TokenCodec, TokenError


class LegacyTokens:
    """A ``TokenCodec`` that takes tokens of the previous format too (``verify``) and signs
    with ``codec`` only."""

    def __init__(self, codec: TokenCodec, secret: str, lifetime_s: int) -> None:
        self._codec = codec
        self._key = secret.encode()
        self._lifetime_s = lifetime_s

    def sign(self, claims: Mapping[str, Any]) -> str:
        return self._codec.sign(claims)

    def verify(self, token: str) -> Mapping[str, Any]:
        if token.count(".") != 1:
            return self._codec.verify(token)
        payload, _, signature = token.partition(".")
        if not payload or not signature or not token.isascii():
            raise TokenError("malformed token: expected <payload>.<signature>")
        expected = _b64(hmac.new(self._key, payload.encode("ascii"), hashlib.sha256).digest())
        if not hmac.compare_digest(expected, signature):
            raise TokenError("bad signature (a token of the previous format)")
        try:
            body = json.loads(_unb64(payload))
            sub, role, exp = body["sub"], body["role"], body["exp"]
        except (binascii.Error, ValueError, KeyError, TypeError):
            raise TokenError("malformed token payload (a token of the previous format)") from None
        if type(exp) is not int:
            raise TokenError("malformed token payload: exp is not a whole number of seconds")
        since = exp - self._lifetime_s
        return {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": sub,
            "role": role,
            "typ": LEGACY_TYPE,
            "iat": since,
            "nbf": since,
            "exp": exp,
            "jti": f"legacy-{signature[:22]}",
        }


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
