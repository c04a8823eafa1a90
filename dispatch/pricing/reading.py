"""Reading a quote back from its verified claims (``QuoteCodec.verify``'s).

``read_quote`` checks them against the engine's clock with the tokens' leeway
(``LEEWAY_S``): the times, the lifetime against the one quotes are given now, the type, and
the fare, claim by claim: a claim that is not what ``Quote.claims`` writes is refused with
the reason, never taken as something else.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, get_args

from dispatch.domain.fares import (
    AMOUNTS,
    MAX_SURGE,
    MINOR_DIGITS,
    FareRule,
    amount_text,
    from_minor,
)
from dispatch.domain.geo import latlng_problem
from dispatch.domain.products import is_product_name
from dispatch.domain.ride_fare import SurgeSource
from dispatch.pricing.quotes import EXPIRED, QUOTE_TYPE, Quote, QuoteError
from dispatch.pricing.trip import Estimate, Place
from dispatch.tokens import LEEWAY_S, subject_fits

ESTIMATES: frozenset[str] = frozenset(get_args(Estimate))
# What ``Quote.claims`` writes, and no more: a rule's amount or the surge as plain decimal
# text (at most 100,000, 4 digits after the point: a rule's bounds), whole counts and
# totals well below any JSON reader's exact integers, short names.
DECIMAL_TEXT = re.compile(r"[0-9]{1,6}(\.[0-9]{1,4})?")
MAX_COUNT = 10**9  # metres or seconds
MAX_TOTAL_MINOR = 10**15
MAX_NAME = 200  # a market's name (MarketConfig's bound) or a rules version


def read_quote(
    payload: Mapping[str, Any], now: float, lifetime_s: int, expired_ok: bool = False
) -> Quote:
    """The quote of verified claims, checked against the clock ``now`` (with ``LEEWAY_S``;
    ``expired_ok``: but for its expiry) and against ``lifetime_s``, the longest a quote is
    given now; else ``QuoteError``."""
    if payload.get("typ") != QUOTE_TYPE:
        raise QuoteError("not a fare quote (its type is not 'quote')")
    if payload.get("role") != "rider":
        raise QuoteError("not a rider's quote (its role is not 'rider')")
    iat, nbf, exp = (_seconds(payload, name) for name in ("iat", "nbf", "exp"))
    if exp <= now - LEEWAY_S and not expired_ok:
        raise QuoteError("quote expired: ask for a new one (POST /fares/estimate)", EXPIRED)
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
    if not isinstance(product, str) or not is_product_name(product):
        raise QuoteError("malformed quote: its product")
    if not (market is None or _short(market)) or not isinstance(currency, str):
        raise QuoteError("malformed quote: its market or currency")
    if currency not in MINOR_DIGITS:
        raise QuoteError("malformed quote: its market or currency")
    if fare.get("estimated_by") not in ESTIMATES or not _short(fare.get("rules_version")):
        raise QuoteError("malformed quote: its estimate or rules version")
    if type(fare.get("minimum_applied")) is not bool:
        raise QuoteError("malformed quote: minimum_applied is not true or false")
    total = from_minor(_count(fare, "total_minor", MAX_TOTAL_MINOR), currency)
    if fare.get("total") != amount_text(total, currency):
        raise QuoteError("malformed quote: total is not total_minor in the currency's digits")
    return Quote(
        quote_id=jti,
        rider_id=sub,
        pickup=_place_of(fare.get("pickup")),
        dropoff=_place_of(fare.get("dropoff")),
        product=product,
        market=market,
        rules_version=fare["rules_version"],
        distance_m=_count(fare, "distance_m", MAX_COUNT),
        duration_s=_count(fare, "duration_s", MAX_COUNT),
        estimated_by=fare["estimated_by"],
        rule=_rule(fare.get("rule"), currency),
        surge=_decimal(fare, "surge", Decimal(1), MAX_SURGE),
        total=total,
        minimum_applied=fare["minimum_applied"],
        issued_at=iat,
        expires_at=exp,
        surge_from=_surge_source(fare.get("surge_from")),
    )


def _surge_source(value: object) -> SurgeSource | None:
    """The surge's event, as ``SurgeSource.to_data`` writes it (null: a quote from before
    it was recorded)."""
    if value is None:
        return None
    if not isinstance(value, Mapping) or set(value) != {"event"}:
        raise QuoteError("malformed quote: its surge source is not {event}")
    event = value["event"]
    if event is not None and (
        not isinstance(event, Mapping) or set(event) != {"shard", "position", "at"}
    ):
        raise QuoteError("malformed quote: its surge event is not {shard, position, at}")
    try:
        return SurgeSource.from_data({"event": event})
    except ValueError as error:
        raise QuoteError(f"malformed quote: {error}") from error


def _rule(value: object, currency: str) -> FareRule:
    if not isinstance(value, Mapping) or set(value) != set(AMOUNTS):
        raise QuoteError(f"malformed quote: its rule is not {{{', '.join(AMOUNTS)}}}")
    amounts = [_decimal(value, name, Decimal(0), Decimal(100_000)) for name in AMOUNTS]
    try:
        return FareRule(currency, *amounts)
    except ValueError as error:
        raise QuoteError(f"malformed quote: its rule ({error})") from None


def _seconds(payload: Mapping[str, Any], name: str) -> int:
    value = payload[name]
    if type(value) is not int:
        raise QuoteError(f"malformed quote: {name} is not a whole number of seconds")
    return value


def _count(fare: Mapping[str, Any], name: str, high: int) -> int:
    value = fare.get(name)
    if type(value) is not int or not 0 <= value <= high:
        raise QuoteError(f"malformed quote: {name} is not a whole number from 0 to {high:,}")
    return value


def _decimal(fare: Mapping[str, Any], name: str, low: Decimal, high: Decimal) -> Decimal:
    text = fare.get(name)
    if not isinstance(text, str) or DECIMAL_TEXT.fullmatch(text) is None:
        raise QuoteError(f"malformed quote: {name} is not a decimal in text")
    value = Decimal(text)
    if not low <= value <= high:
        raise QuoteError(f"malformed quote: {name} is out of range")
    return value


def _short(value: object) -> bool:
    """A text of 1 to ``MAX_NAME`` characters."""
    return isinstance(value, str) and 0 < len(value) <= MAX_NAME


def _place_of(value: object) -> Place:
    if not isinstance(value, list) or len(value) != 2:
        raise QuoteError("malformed quote: a place is not [lat, lng]")
    lat, lng = value
    numbers = all(type(v) in (int, float) and math.isfinite(v) for v in (lat, lng))
    if not numbers or latlng_problem(lat, lng) is not None:
        raise QuoteError("malformed quote: a place is not [lat, lng]")
    return float(lat), float(lng)
