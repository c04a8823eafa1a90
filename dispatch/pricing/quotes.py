"""Fare quotes as signed, self-contained tokens: what one says and the checks on it.

A quote is a JWT signed with the bearer tokens' key ring (``dispatch.tokens.KeyRing``) but
for another audience, ``QUOTE_AUDIENCE``, and of type ``quote``: a quote is never taken as
a bearer token (its audience is not the API's, its type none of a bearer's) and a bearer
token never as a quote (its audience is not ``QUOTE_AUDIENCE``, and it has no ``fare``).
Any API instance with the ring checks one without a lookup. ``QuoteCodec`` is the port
(signature, algorithm, issuer, audience); the PyJWT adapter implements it
(``dispatch.adapters.jwt.quotes``). ``read_quote`` checks the rest against the engine's
clock with the tokens' leeway (``LEEWAY_S``): its times, its lifetime against the one
quotes are given now, its type and its fare; ``check_quote`` whether it fits a ride
request. A quote is signed, not encrypted: its rider can read it (it is their own trip).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol, cast, get_args

from dispatch.domain.fares import MAX_SURGE, MINOR_DIGITS, PRODUCTS, Product
from dispatch.domain.geo import latlng_problem
from dispatch.pricing.trip import Estimate, Place
from dispatch.tokens import ISSUER, LEEWAY_S, subject_fits

QUOTE_AUDIENCE = "dispatch-quote"  # who may take a quote: this engine's ride requests
QUOTE_TYPE = "quote"
# Every claim a quote carries that the adapter checks is there; ``fare`` is read here.
QUOTE_CLAIMS = ("iss", "aud", "sub", "role", "typ", "iat", "nbf", "exp", "jti")
ESTIMATES: frozenset[str] = frozenset(get_args(Estimate))


class QuoteError(Exception):
    """The quote is malformed, forged, expired, of the wrong kind or for another request;
    ``reason`` says which."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Quote:
    """A price given to one rider for one trip, until ``expires_at`` (epoch seconds)."""

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
    surge: Decimal
    total: Decimal
    currency: str
    issued_at: int
    expires_at: int

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
            "surge": str(self.surge),
            "total": str(self.total),
            "currency": self.currency,
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
        ``QuoteError`` with the reason. Times are not checked here (``read_quote``)."""
        ...


def read_quote(payload: Mapping[str, Any], now: float, lifetime_s: int) -> Quote:
    """The quote of verified claims, checked against the clock ``now`` (with ``LEEWAY_S``)
    and against ``lifetime_s``, the longest a quote is given now; else ``QuoteError``."""
    if payload.get("typ") != QUOTE_TYPE or payload.get("role") != "rider":
        raise QuoteError("not a fare quote (its type is not 'quote')")
    iat, nbf, exp = (_seconds(payload, name) for name in ("iat", "nbf", "exp"))
    if exp <= now - LEEWAY_S:
        raise QuoteError("quote expired: ask for a new one (POST /fares/estimate)")
    if nbf > now + LEEWAY_S or iat > now + LEEWAY_S:
        raise QuoteError("quote issued in the future (iat or nbf)")
    if exp - iat > lifetime_s + LEEWAY_S:
        raise QuoteError(
            f"quote lives {exp - iat} s, longer than the {lifetime_s} s quotes are given now"
        )
    return _quote(payload, iat, exp)


def check_quote(
    quote: Quote, rider_id: str, pickup: Place, dropoff: Place, product: Product
) -> None:
    """``QuoteError`` unless ``quote`` was issued to ``rider_id`` for this very trip: the
    same pickup and drop-off (the same numbers) and the same product."""
    if quote.rider_id != rider_id:
        raise QuoteError("this quote was issued to another rider")
    for name, quoted, asked in (("pickup", quote.pickup, pickup), ("dropoff", quote.dropoff,
                                                                    dropoff)):  # fmt: skip
        if quoted != asked:
            raise QuoteError(
                f"the quote's {name} {_place(quoted)} is not the request's {_place(asked)}"
            )
    if quote.product != product:
        raise QuoteError(f"the quote is for {quote.product!r}, the request for {product!r}")


def _quote(payload: Mapping[str, Any], iat: int, exp: int) -> Quote:
    sub, jti, fare = payload["sub"], payload["jti"], payload.get("fare")
    if not isinstance(sub, str) or not subject_fits(sub):
        raise QuoteError("malformed quote: its subject is not a rider id")
    if not isinstance(jti, str) or not 0 < len(jti) <= 64:
        raise QuoteError("malformed quote: the quote id (jti) is not a short string")
    if not isinstance(fare, Mapping):
        raise QuoteError("malformed quote: no fare")
    product, market, currency = fare.get("product"), fare.get("market"), fare.get("currency")
    if product not in PRODUCTS:
        raise QuoteError("malformed quote: unknown product")
    if not (market is None or isinstance(market, str)) or not isinstance(currency, str):
        raise QuoteError("malformed quote: its market or currency")
    if currency not in MINOR_DIGITS:
        raise QuoteError("malformed quote: its market or currency")
    if fare.get("estimated_by") not in ESTIMATES or not isinstance(fare.get("rules_version"), str):
        raise QuoteError("malformed quote: its estimate or rules version")
    return Quote(
        quote_id=jti,
        rider_id=sub,
        pickup=_place_of(fare.get("pickup")),
        dropoff=_place_of(fare.get("dropoff")),
        product=cast(Product, product),
        market=market,
        rules_version=fare["rules_version"],
        distance_m=_count(fare, "distance_m"),
        duration_s=_count(fare, "duration_s"),
        estimated_by=fare["estimated_by"],
        surge=_decimal(fare, "surge", Decimal(1), MAX_SURGE),
        total=_decimal(fare, "total", Decimal(0), None),
        currency=currency,
        issued_at=iat,
        expires_at=exp,
    )


def _seconds(payload: Mapping[str, Any], name: str) -> int:
    value = payload[name]
    if type(value) is not int:
        raise QuoteError(f"malformed quote: {name} is not a whole number of seconds")
    return value


def _count(fare: Mapping[str, Any], name: str) -> int:
    value = fare.get(name)
    if type(value) is not int or value < 0:
        raise QuoteError(f"malformed quote: {name} is not a whole number")
    return value


def _decimal(fare: Mapping[str, Any], name: str, low: Decimal, high: Decimal | None) -> Decimal:
    text = fare.get(name)
    try:
        if not isinstance(text, str):
            raise InvalidOperation
        value = Decimal(text)
    except InvalidOperation:
        raise QuoteError(f"malformed quote: {name} is not a decimal in text") from None
    if not value.is_finite() or value < low or (high is not None and value > high):
        raise QuoteError(f"malformed quote: {name} is out of range")
    return value


def _place_of(value: object) -> Place:
    if not isinstance(value, list) or len(value) != 2:
        raise QuoteError("malformed quote: a place is not [lat, lng]")
    lat, lng = value
    numbers = all(type(v) in (int, float) and math.isfinite(v) for v in (lat, lng))
    if not numbers or latlng_problem(lat, lng) is not None:
        raise QuoteError("malformed quote: a place is not [lat, lng]")
    return float(lat), float(lng)


def _place(place: Place) -> str:
    return f"({place[0]!r}, {place[1]!r})"
