"""``PyJwtQuotes``: fare quotes as JWTs signed with HMAC-SHA256 by PyJWT, with the bearer
tokens' key ring but the quotes' own audience (``dispatch.pricing.quotes``), verified as
``verify.verified`` says: a bearer token is refused here (its audience is not
``QUOTE_AUDIENCE``); the times are the core's (``dispatch.pricing.reading``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dispatch.adapters.jwt.verify import Wording, signed, verified
from dispatch.pricing.quotes import QUOTE_AUDIENCE, QUOTE_CLAIMS, QuoteError
from dispatch.tokens import KeyRing

_WORDING = Wording(
    noun="quote",
    claims="quote",
    not_audience=(
        f"not a fare quote (its audience is not {QUOTE_AUDIENCE!r}): a bearer token is never "
        "a quote"
    ),
)


class PyJwtQuotes:
    """Signs quotes with the ring's signing key, verifies them with the key ``kid`` names."""

    def __init__(self, ring: KeyRing) -> None:
        self._ring = ring

    def sign(self, claims: Mapping[str, Any]) -> str:
        return signed(dict(claims), self._ring)

    def verify(self, token: str) -> Mapping[str, Any]:
        return verified(
            token, self._ring, audience=QUOTE_AUDIENCE, required=QUOTE_CLAIMS, wording=_WORDING,
            fail=QuoteError,
        )  # fmt: skip
