"""``PyJwtCodec``: JSON Web Tokens (RFC 7519) signed with HMAC-SHA256 by PyJWT.

A token's ``kid`` header names the key of the ring that signed it; only that key verifies
it, and only with the algorithms listed here (never the token's own say: ``alg: none`` or
another algorithm is refused by PyJWT's ``algorithms=`` list). PyJWT also checks the
issuer, the audience and that every claim is there; the times are checked by the core
against the engine's clock (``dispatch.tokens.read_claims``), as PyJWT reads the wall clock.

A reason never repeats what an unverified header says beyond a short ASCII form (``shown``):
anyone can write a header, and the reason reaches a ``WWW-Authenticate`` header.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jwt

from dispatch.tokens import AUDIENCE, ISSUER, LEGACY_TYPE, REQUIRED_CLAIMS, KeyRing, TokenError

ALGORITHM = "HS256"
ALGORITHMS = [ALGORITHM]  # the only algorithms a token may name
_OPTIONS: Any = {
    "require": list(REQUIRED_CLAIMS),
    "verify_exp": False,  # the core checks times against the engine's clock
    "verify_nbf": False,
    "verify_iat": False,
    "strict_aud": True,  # one audience, exactly this engine's API
}


class PyJwtCodec:
    """Signs with the ring's signing key, verifies with the key a token's ``kid`` names."""

    def __init__(self, ring: KeyRing) -> None:
        self._ring = ring

    def sign(self, claims: Mapping[str, Any]) -> str:
        kid = self._ring.signing_kid
        key = self._ring.keys[kid].encode()
        return jwt.encode(dict(claims), key, algorithm=ALGORITHM, headers={"kid": kid})

    def verify(self, token: str) -> Mapping[str, Any]:
        if token.count(".") == 1:
            raise TokenError(
                "malformed token: not a JWT (a token of the previous format is not taken: "
                "the engine has a key ring, or DISPATCH_AUTH_ACCEPT_LEGACY_TOKENS is false)"
            )
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as error:
            raise TokenError(f"malformed token: {said(error)}") from None
        kid = header.get("kid")
        if kid is None:
            raise TokenError("token has no key id (kid header)")
        key = self._ring.keys.get(kid)
        if key is None:
            raise TokenError(
                f"unknown key id '{shown(kid)}': the key that signed this token is not "
                "(or no longer) one of this engine's"
            )
        try:
            payload: dict[str, Any] = jwt.decode(
                token,
                key.encode(),
                algorithms=ALGORITHMS,
                issuer=ISSUER,
                audience=AUDIENCE,
                options=_OPTIONS,
            )
        except jwt.InvalidAlgorithmError:
            alg = shown(header.get("alg"), 20)
            raise TokenError(f"algorithm '{alg}' is not accepted (only {ALGORITHM})") from None
        except jwt.InvalidSignatureError:
            raise TokenError("bad signature") from None
        except jwt.MissingRequiredClaimError as error:
            raise TokenError(f"malformed token payload: no {error.claim} claim") from None
        except jwt.InvalidAudienceError:
            raise TokenError(f"token is not for this API (audience is not {AUDIENCE!r})") from None
        except jwt.InvalidIssuerError:
            raise TokenError(f"token was not issued by {ISSUER!r}") from None
        except jwt.InvalidTokenError as error:
            raise TokenError(f"malformed token: {said(error)}") from None
        if payload.get("typ") == LEGACY_TYPE:  # only a legacy token's claims say so
            raise TokenError(f"malformed token payload: unknown token type '{LEGACY_TYPE}'")
        return payload


def shown(value: object, limit: int = 40) -> str:
    """An unverified header value as a reason may repeat it: its first ``limit`` characters,
    each one that is not an ASCII letter, digit, ``.``, ``_`` or ``-`` shown as ``?``."""
    return "".join(
        c if c.isascii() and (c.isalnum() or c in "._-") else "?" for c in str(value)[:limit]
    )


def said(error: Exception) -> str:
    """PyJWT's message, which may quote the token's header (an unknown ``crit`` extension):
    its first 80 characters, anything but printable ASCII (and quotes, backslashes) as ``?``."""
    return "".join(c if " " <= c <= "~" and c not in '"\\' else "?" for c in str(error)[:80])
