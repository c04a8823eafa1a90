"""Reading a quote back from its verified claims (``QuoteCodec.verify``'s).

``read_quote`` checks them against the engine's clock with the tokens' leeway
(``LEEWAY_S``): the times, the lifetime against the one quotes are given now, the type, and
the fare, claim by claim: a claim that is not what ``Quote.claims`` writes is refused with
the reason, never taken as something else.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, cast, get_args

from dispatch.domain.fares import AMOUNTS, MAX_SURGE, MINOR_DIGITS, PRODUCTS, FareRule, Product
from dispatch.domain.geo import latlng_problem
from dispatch.pricing.quotes import QUOTE_TYPE, Quote, QuoteError
from dispatch.pricing.trip import Estimate, Place
from dispatch.tokens import LEEWAY_S, subject_fits

ESTIMATES: frozenset[str] = frozenset(get_args(Estimate))


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
    if type(fare.get("minimum_applied")) is not bool:
        raise QuoteError("malformed quote: minimum_applied is not true or false")
    total = _decimal(fare, "total", Decimal(0), None)
    if _count(fare, "total_minor") != total.scaleb(MINOR_DIGITS[currency]):
        raise QuoteError("malformed quote: total_minor is not the total in minor units")
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
        rule=_rule(fare.get("rule"), currency),
        surge=_decimal(fare, "surge", Decimal(1), MAX_SURGE),
        total=total,
        minimum_applied=fare["minimum_applied"],
        issued_at=iat,
        expires_at=exp,
    )


def _rule(value: object, currency: str) -> FareRule:
    if not isinstance(value, Mapping) or set(value) != set(AMOUNTS):
        raise QuoteError(f"malformed quote: its rule is not {{{', '.join(AMOUNTS)}}}")
    amounts = [_decimal(value, name, Decimal(0), None) for name in AMOUNTS]
    try:
        return FareRule(currency, *amounts)
    except ValueError as error:
        raise QuoteError(f"malformed quote: its rule ({error})") from None


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
