"""``PyJwtQuotes``: fare quotes as JWTs signed with HMAC-SHA256 by PyJWT, with the bearer
tokens' key ring but the quotes' own audience (``dispatch.pricing.quotes``).

As for bearer tokens (``codec``): the ``kid`` header names the ring's key that verifies a
quote, only ``ALGORITHMS`` are accepted, PyJWT checks the issuer, the audience (exactly
``QUOTE_AUDIENCE``: a bearer token is refused here) and that every claim is there; the
times are the core's (``dispatch.pricing.reading``). A reason repeats an unverified
header only in ``shown`` form.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jwt

from dispatch.adapters.jwt.codec import ALGORITHM, ALGORITHMS, said, shown
from dispatch.pricing.quotes import QUOTE_AUDIENCE, QUOTE_CLAIMS, QuoteError
from dispatch.tokens import ISSUER, KeyRing

_OPTIONS: Any = {
    "require": list(QUOTE_CLAIMS),
    "verify_exp": False,  # the core checks times against the engine's clock
    "verify_nbf": False,
    "verify_iat": False,
    "strict_aud": True,
}


class PyJwtQuotes:
    """Signs quotes with the ring's signing key, verifies them with the key ``kid`` names."""

    def __init__(self, ring: KeyRing) -> None:
        self._ring = ring

    def sign(self, claims: Mapping[str, Any]) -> str:
        kid = self._ring.signing_kid
        key = self._ring.keys[kid].encode()
        return jwt.encode(dict(claims), key, algorithm=ALGORITHM, headers={"kid": kid})

    def verify(self, token: str) -> Mapping[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as error:
            raise QuoteError(f"malformed quote: {said(error)}") from None
        kid = header.get("kid")
        if kid is None:
            raise QuoteError("quote has no key id (kid header)")
        key = self._ring.keys.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise QuoteError(
                f"unknown key id '{shown(kid)}': the key that signed this quote is not (or no "
                "longer) one of this engine's"
            )
        try:
            payload: dict[str, Any] = jwt.decode(
                token,
                key.encode(),
                algorithms=ALGORITHMS,
                issuer=ISSUER,
                audience=QUOTE_AUDIENCE,
                options=_OPTIONS,
            )
        except jwt.InvalidAlgorithmError:
            alg = shown(header.get("alg"), 20)
            raise QuoteError(f"algorithm '{alg}' is not accepted (only {ALGORITHM})") from None
        except jwt.InvalidSignatureError:
            raise QuoteError("bad signature: the quote was altered or not signed here") from None
        except jwt.MissingRequiredClaimError as error:
            raise QuoteError(f"malformed quote: no {error.claim} claim") from None
        except jwt.InvalidAudienceError:
            raise QuoteError(
                f"not a fare quote (its audience is not {QUOTE_AUDIENCE!r}): a bearer token "
                "is never a quote"
            ) from None
        except jwt.InvalidIssuerError:
            raise QuoteError(f"quote was not issued by {ISSUER!r}") from None
        except jwt.InvalidTokenError as error:
            raise QuoteError(f"malformed quote: {said(error)}") from None
        return payload
