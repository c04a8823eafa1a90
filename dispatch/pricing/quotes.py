"""Fare quotes as signed, self-contained tokens: what one says, its port, and whether it
fits a ride request.

A quote is a JWT signed with the bearer tokens' key ring (``dispatch.tokens.KeyRing``) but
for another audience, ``QUOTE_AUDIENCE``, and of type ``quote``: a quote is never taken as
a bearer token (its audience is not the API's, its type none of a bearer's) and a bearer
token never as a quote (its audience is not ``QUOTE_AUDIENCE``, and it has no ``fare``).
Any API instance with the ring checks one without a lookup. ``QuoteCodec`` is the port
(signature, algorithm, issuer, audience); the PyJWT adapter implements it
(``dispatch.adapters.jwt.quotes``). ``dispatch.pricing.reading`` reads a verified quote
back; ``check_quote`` says whether it fits a ride request. A quote is signed, not
encrypted: its rider can read it (it is their own trip). It carries the rule that priced
it, so its total can be explained from the quote alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

from dispatch.domain.fares import AMOUNTS, FareRule, Product, amount_text, minor_units
from dispatch.domain.ride_fare import SurgeSource
from dispatch.matching.geo import haversine_m
from dispatch.pricing.trip import Estimate, Place
from dispatch.tokens import ISSUER

QUOTE_AUDIENCE = "dispatch-quote"  # who may take a quote: this engine's ride requests
QUOTE_TYPE = "quote"
# Every claim a quote carries that the adapter checks is there; ``fare`` is read here.
QUOTE_CLAIMS = ("iss", "aud", "sub", "role", "typ", "iat", "nbf", "exp", "jti")
# How far a ride request's pickup, and its drop-off, may be from the quote's (great-circle
# metres): a client that rounds or re-reads a position still fits its quote. The price
# stays the quote's: 100 m more trip at most, tens of cents at the default rates.
PLACE_TOLERANCE_M = 50.0
EXPIRED, MISMATCH = "quote_expired", "quote_mismatch"  # QuoteError's codes but the default


class QuoteError(Exception):
    """The quote is malformed, forged, expired, of the wrong kind or for another request;
    ``reason`` says which, and ``code`` what it is: ``quote_invalid`` (not a quote of this
    engine's as issued), ``quote_expired``, or ``quote_mismatch`` (a valid quote for another
    rider, trip or product)."""

    def __init__(self, reason: str, code: str = "quote_invalid") -> None:
        super().__init__(reason)
        self.reason, self.code = reason, code


@dataclass(frozen=True, slots=True)
class Quote:
    """A price given to one rider for one trip, until ``expires_at`` (epoch seconds), with
    the rule that priced it (in the quote's currency) and whether its minimum applied."""

    quote_id: str
    rider_id: str
    pickup: Place
    dropoff: Place
    product: Product
    market: str | None  # None: outside every market (priced by the ``elsewhere`` rules)
    rules_version: str
    distance_m: int
    duration_s: int
    estimated_by: Estimate
    rule: FareRule
    surge: Decimal
    total: Decimal
    minimum_applied: bool
    issued_at: int
    expires_at: int
    surge_from: SurgeSource | None = None  # the event that set the surge

    @property
    def currency(self) -> str:
        return self.rule.currency

    @property
    def total_minor(self) -> int:
        """The total in the currency's minor units (cents)."""
        return minor_units(self.total, self.currency)

    def rule_text(self) -> dict[str, str]:
        """The rule's amounts as text, with the currency's minor digits or more."""
        return {name: amount_text(getattr(self.rule, name), self.currency) for name in AMOUNTS}

    def claims(self) -> dict[str, Any]:
        fare = {
            "pickup": [float(v) for v in self.pickup],
            "dropoff": [float(v) for v in self.dropoff],
            "product": self.product,
            "market": self.market,
            "rules_version": self.rules_version,
            "distance_m": self.distance_m,
            "duration_s": self.duration_s,
            "estimated_by": self.estimated_by,
            "rule": self.rule_text(),
            "surge": str(self.surge),
            "total": amount_text(self.total, self.currency),
            "total_minor": self.total_minor,
            "minimum_applied": self.minimum_applied,
            "currency": self.currency,
            "surge_from": None if self.surge_from is None else self.surge_from.to_data(),
        }
        return {
            "iss": ISSUER,
            "aud": QUOTE_AUDIENCE,
            "sub": self.rider_id,
            "role": "rider",
            "typ": QUOTE_TYPE,
            "iat": self.issued_at,
            "nbf": self.issued_at,
            "exp": self.expires_at,
            "jti": self.quote_id,
            "fare": fare,
        }


class QuoteCodec(Protocol):
    """Signs and verifies quotes (the port; ``dispatch.adapters.jwt.quotes`` implements it)."""

    def sign(self, claims: Mapping[str, Any]) -> str:
        """A quote of ``claims``, signed with the ring's signing key, its id in ``kid``."""
        ...

    def verify(self, token: str) -> Mapping[str, Any]:
        """The claims of a quote whose signature the key its ``kid`` names verifies with an
        accepted algorithm, whose issuer is this engine, whose audience is
        ``QUOTE_AUDIENCE`` and which carries every claim of ``QUOTE_CLAIMS``; else
        ``QuoteError`` with the reason. Times are not checked here
        (``dispatch.pricing.reading``)."""
        ...


def check_quote(
    quote: Quote, rider_id: str, pickup: Place, dropoff: Place, product: Product
) -> None:
    """``QuoteError`` unless ``quote`` was issued to ``rider_id`` for this trip: a pickup
    and a drop-off each within ``PLACE_TOLERANCE_M`` of the quote's, the same product."""
    if quote.rider_id != rider_id:
        raise QuoteError("this quote was issued to another rider", MISMATCH)
    for name, quoted, asked in (("pickup", quote.pickup, pickup), ("dropoff", quote.dropoff,
                                                                    dropoff)):  # fmt: skip
        apart = haversine_m(*quoted, *asked)
        if apart > PLACE_TOLERANCE_M:
            raise QuoteError(
                f"the request's {name} {_place(asked)} is {apart:.0f} m from the quote's "
                f"{_place(quoted)}: at most {PLACE_TOLERANCE_M:.0f} m",
                MISMATCH,
            )
    if quote.product != product:
        raise QuoteError(
            f"the quote is for {quote.product!r}, the request for {product!r}", MISMATCH
        )


def _place(place: Place) -> str:
    return f"({place[0]!r}, {place[1]!r})"
