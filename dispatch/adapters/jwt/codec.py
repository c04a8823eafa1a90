"""``PyJwtCodec``: bearer tokens as JSON Web Tokens (RFC 7519) signed with HMAC-SHA256 by
PyJWT, verified as ``verify.verified`` says (the key ``kid`` names, one algorithm, issuer,
audience ``dispatch.tokens.AUDIENCE``, every required claim); the times are checked by the
core against the engine's clock (``dispatch.tokens.read_claims``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dispatch.adapters.jwt.verify import Wording, signed, verified
from dispatch.tokens import AUDIENCE, LEGACY_TYPE, REQUIRED_CLAIMS, KeyRing, TokenError

_WORDING = Wording(
    noun="token",
    claims="token payload",
    not_audience=f"token is not for this API (audience is not {AUDIENCE!r})",
)


class PyJwtCodec:
    """Signs with the ring's signing key, verifies with the key a token's ``kid`` names."""

    def __init__(self, ring: KeyRing) -> None:
        self._ring = ring

    def sign(self, claims: Mapping[str, Any]) -> str:
        return signed(dict(claims), self._ring)

    def verify(self, token: str) -> Mapping[str, Any]:
        if token.count(".") == 1:
            raise TokenError(
                "malformed token: not a JWT (a token of the previous format is not taken: "
                "the engine has a key ring, or DISPATCH_AUTH_ACCEPT_LEGACY_TOKENS is false)"
            )
        payload = verified(
            token, self._ring, audience=AUDIENCE, required=REQUIRED_CLAIMS, wording=_WORDING,
            fail=TokenError,
        )  # fmt: skip
        if payload.get("typ") == LEGACY_TYPE:  # only a legacy token's claims say so
            raise TokenError(f"malformed token payload: unknown token type '{LEGACY_TYPE}'")
        return payload
