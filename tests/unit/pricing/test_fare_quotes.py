"""Fare quotes as signed tokens (``dispatch.pricing.quotes``, ``dispatch.pricing.desk``, the
PyJWT adapter): a quote reads back as it was issued on any instance with the key ring; a
tampered, forged, expired or foreign one is refused with the reason; a quote is never a
bearer token and a bearer token never a quote; a quote fits only its rider's same trip."""

from __future__ import annotations

import base64
import json
from decimal import Decimal
from typing import Any

import jwt
import pytest
from pydantic import SecretStr

from dispatch.adapters.jwt.quotes import PyJwtQuotes
from dispatch.api.auth import AuthSettings, TokenError, tokens_for
from dispatch.bootstrap import build_fare_desk, build_markets
from dispatch.domain.fares import AMOUNTS, FareRule, price
from dispatch.domain.ride_fare import SurgeSource
from dispatch.matching.geo import haversine_m
from dispatch.pricing.desk import FareDesk, IssuedQuote
from dispatch.pricing.quotes import PLACE_TOLERANCE_M, QUOTE_AUDIENCE, QuoteError
from dispatch.pricing.reading import read_quote
from dispatch.pricing.rules import FareError
from dispatch.pricing.trip import Place, Trip
from dispatch.settings import Settings
from dispatch.tokens import AUDIENCE, LEEWAY_S, KeyRing

KEY = "q7VbN2mXe9LwR4tYc8KpJ3sHd6FgZ1uA5oI0vBnMxQe"
OTHER_KEY = "Rvws1xOlNeuv5LSUiBy5daVgsDYCEDhQ6VZcK2Jt9wLp"
RIDER = "00000000-0000-4000-8000-000000000002"
OTHER_RIDER = "00000000-0000-4000-8000-000000000003"
PICKUP, DROPOFF = (37.7749, -122.4194), (37.7599, -122.4148)
NOW = 1_800_000_000.0
TTL = 300
RING = KeyRing({"k1": KEY}, "k1")


def desk(ring: KeyRing = RING, ttl_s: int = TTL) -> FareDesk:
    return build_fare_desk(Settings(quote_ttl_s=ttl_s), ring)


def issued(product: Any = "standard") -> IssuedQuote:
    return desk().estimate(RIDER, PICKUP, DROPOFF, product, NOW)


def refused(token: str, now: float = NOW, on: FareDesk | None = None) -> str:
    with pytest.raises(QuoteError) as raised:
        (on or desk()).read(token, now)
    return raised.value.reason


def claims_of(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def test_a_quote_reads_back_as_it_was_issued_on_another_instance() -> None:
    quote = issued("xl")
    read = desk().read(quote.token, NOW + 10)  # another desk with the same ring
    assert read == quote.quote
    assert (read.rider_id, read.pickup, read.dropoff, read.product) == (
        RIDER,
        PICKUP,
        DROPOFF,
        "xl",
    )
    assert (read.market, read.currency, read.surge) == ("san-francisco", "USD", Decimal("1.00"))
    assert read.expires_at - read.issued_at == TTL
    assert read.rules_version == desk().book.version
    rule = desk().book.rule_for("san-francisco", "xl")
    assert read.total == price(rule, read.distance_m, read.duration_s)  # explained by its rule


def test_a_trip_longer_than_the_longest_priced_is_refused_with_its_length() -> None:
    """1.7 km in a straight line, 2.3 km by the straight-line estimate (x 1.35)."""
    with pytest.raises(FareError) as raised:
        build_fare_desk(Settings(max_trip_km=2), RING).estimate(
            RIDER, PICKUP, DROPOFF, "standard", NOW
        )
    assert (raised.value.code, raised.value.reason) == (
        "trip_too_long",
        "the trip is 2.3 km by its straight_line estimate, longer than the 2 km a quote may "
        "price (DISPATCH_MAX_TRIP_KM)",
    )
    fits = build_fare_desk(Settings(max_trip_km=2.4), RING)
    assert fits.estimate(RIDER, PICKUP, DROPOFF, "standard", NOW).quote.distance_m == 2_317


class NoRoutes:
    def trip(self, pickup: Place, dropoff: Place) -> Trip:
        raise AssertionError("routed")


def test_a_trip_longer_in_a_straight_line_is_refused_before_it_is_routed() -> None:
    settings = Settings()
    unrouted = FareDesk(desk().book, NoRoutes(), build_markets(settings), PyJwtQuotes(RING),
                        TTL, max_trip_m=1_500)  # fmt: skip
    with pytest.raises(FareError, match=r"is 1\.7 km in a straight line, longer than the 1\.5"):
        unrouted.estimate(RIDER, PICKUP, DROPOFF, "standard", NOW)


def test_the_longest_trip_priced_is_200_km_unless_set(monkeypatch: pytest.MonkeyPatch) -> None:
    assert desk().max_trip_m == 200_000
    monkeypatch.setenv("DISPATCH_MAX_TRIP_KM", "80.5")
    assert build_fare_desk(Settings(), RING).max_trip_m == 80_500


def test_every_quote_has_an_id_of_its_own() -> None:
    assert issued().quote.quote_id != issued().quote.quote_id


def test_the_quote_says_what_it_prices_in_its_claims() -> None:
    claims = claims_of(issued().token)
    assert (claims["aud"], claims["typ"], claims["sub"]) == (QUOTE_AUDIENCE, "quote", RIDER)
    fare = claims["fare"]
    assert fare["pickup"] == list(PICKUP) and fare["product"] == "standard"
    assert isinstance(fare["total"], str) and isinstance(fare["surge"], str)  # never floats
    assert isinstance(fare["distance_m"], int) and isinstance(fare["duration_s"], int)


def test_the_quote_carries_the_rule_that_priced_it() -> None:
    """Its total is explained by the quote alone: the rule, the trip, the surge."""
    quote = issued("xl")
    fare = claims_of(quote.token)["fare"]
    assert fare["rule"] == {"base": "4.00", "per_km": "1.80", "per_min": "0.45",
                            "minimum": "10.00"}  # fmt: skip
    rule = FareRule(fare["currency"], *(Decimal(fare["rule"][name]) for name in AMOUNTS))
    assert rule == desk().book.rule_for("san-francisco", "xl")
    assert fare["total"] == str(price(rule, fare["distance_m"], fare["duration_s"]))
    assert fare["total_minor"] == quote.quote.total_minor == int(Decimal(fare["total"]) * 100)
    assert fare["minimum_applied"] is False
    short = desk().estimate(RIDER, PICKUP, PICKUP, "xl", NOW)
    assert (short.quote.minimum_applied, short.quote.total) == (True, Decimal("10.00"))
    assert claims_of(short.token)["fare"]["minimum_applied"] is True


def _resigned(token: str, change: dict[str, Any], key: str = KEY, kid: str = "k1") -> str:
    return jwt.encode(claims_of(token) | change, key, algorithm="HS256", headers={"kid": kid})


def test_a_tampered_quote_is_refused() -> None:
    token = issued().token
    header, payload, signature = token.split(".")
    cheaper = claims_of(token)
    cheaper["fare"]["total"] = "0.01"
    forged = base64.urlsafe_b64encode(json.dumps(cheaper).encode()).rstrip(b"=").decode()
    assert "bad signature" in refused(f"{header}.{forged}.{signature}")
    assert "bad signature" in refused(token[:-4] + ("AAAA" if token[-4:] != "AAAA" else "BBBB"))
    assert "bad signature" in refused(_resigned(token, {}, key=OTHER_KEY))
    assert "malformed quote" in refused(f"{header}.{payload}")
    assert "malformed quote" in refused("not a quote")
    assert "malformed quote: not ASCII" in refused(token + "é")


def test_a_quote_of_a_key_not_in_the_ring_is_refused() -> None:
    token = _resigned(issued().token, {}, key=OTHER_KEY, kid="gone")
    assert "unknown key id 'gone'" in refused(token)


def test_a_quote_without_a_key_id_is_refused_as_a_bearer_token_is() -> None:
    unnamed = jwt.encode(claims_of(issued().token), KEY, algorithm="HS256")
    assert "kid" not in jwt.get_unverified_header(unnamed)
    assert refused(unnamed) == "quote has no key id (kid header)"


def test_a_quote_with_another_algorithm_is_refused() -> None:
    unsigned = jwt.encode(claims_of(issued().token), None, algorithm="none",
                          headers={"kid": "k1"})  # fmt: skip
    assert "algorithm 'none' is not accepted" in refused(unsigned)


def test_a_quote_is_refused_once_expired_past_the_leeway() -> None:
    token = issued().token
    assert desk().read(token, NOW + TTL + LEEWAY_S - 1).rider_id == RIDER
    assert "quote expired" in refused(token, NOW + TTL + LEEWAY_S)


def test_a_quote_issued_in_the_future_is_refused() -> None:
    token = issued().token
    assert desk().read(token, NOW - LEEWAY_S).rider_id == RIDER
    assert "issued in the future" in refused(token, NOW - LEEWAY_S - 1)


def test_a_quote_that_lives_longer_than_quotes_are_given_now_is_refused() -> None:
    long_lived = desk(ttl_s=900).estimate(RIDER, PICKUP, DROPOFF, "standard", NOW).token
    assert "lives 900 s, longer than the 300 s" in refused(long_lived)


def test_a_rotated_key_still_verifies_the_quotes_it_signed_while_in_the_ring() -> None:
    old = desk(KeyRing({"k1": KEY}, "k1")).estimate(RIDER, PICKUP, DROPOFF, "xl", NOW).token
    rotated = desk(KeyRing({"k1": KEY, "k2": OTHER_KEY}, "k2"))
    assert rotated.read(old, NOW).product == "xl"
    assert claims_of(rotated.estimate(RIDER, PICKUP, DROPOFF, "xl", NOW).token)["jti"]
    assert "unknown key id 'k1'" in refused(old, on=desk(KeyRing({"k2": OTHER_KEY}, "k2")))


# A quote is never a bearer token, and a bearer token never a quote: both ways, for
# access and refresh tokens alike, with the very same key ring.

AUTH = AuthSettings(keys={"k1": SecretStr(KEY)}, signing_key="k1")


def test_a_quote_is_not_a_bearer_token() -> None:
    tokens = tokens_for(AUTH)
    quote = issued().token
    for typ in ("access", "refresh"):
        with pytest.raises(TokenError, match="token is not for this API"):
            tokens.read(quote, typ, NOW)  # type: ignore[arg-type]


def test_a_bearer_token_is_not_a_quote() -> None:
    pair = tokens_for(AUTH).issue(RIDER, "rider", NOW)
    for token in (pair.access_token, pair.refresh_token):
        assert "not a fare quote" in refused(token)


def test_a_quote_for_another_audience_is_refused_for_its_audience() -> None:
    """A quote in every other way, signed with the ring's key, but for the API's audience:
    the adapter refuses it for that, before its type or fare are read."""
    token = _resigned(issued().token, {"aud": AUDIENCE})
    assert refused(token) == (
        "not a fare quote (its audience is not 'dispatch-quote'): a bearer token is never a quote"
    )
    for audience in (["dispatch-quote", AUDIENCE], "dispatch-quote-x"):
        assert "its audience is not 'dispatch-quote'" in refused(
            _resigned(issued().token, {"aud": audience})
        )


def test_a_quote_for_another_role_is_refused() -> None:
    for role in ("driver", "operator", ["rider"]):
        token = _resigned(issued().token, {"role": role})
        assert refused(token) == "not a rider's quote (its role is not 'rider')"


def test_a_token_of_the_quotes_audience_that_is_not_a_quote_is_refused() -> None:
    """Even one signed with the ring's key: the type and the fare are checked too."""
    token = issued().token
    assert "not a fare quote" in refused(_resigned(token, {"typ": "access"}))
    assert "malformed quote: no fare" in refused(_resigned(token, {"fare": None}))
    fare = claims_of(token)["fare"]
    for change, reason in (
        ({"total": 1.5}, "total is not total_minor in the currency's digits"),
        ({"surge": "0.5"}, "surge is out of range"),
        ({"distance_m": 1.5}, "distance_m is not a whole number"),
        ({"pickup": [91.0, 0.0]}, "a place is not [lat, lng]"),
        ({"product": "Limo!"}, "malformed quote: its product"),
        ({"currency": "XTS"}, "its market or currency"),
        ({"minimum_applied": "no"}, "minimum_applied is not true or false"),
        ({"total_minor": 1}, "total is not total_minor in the currency's digits"),
        ({"total_minor": None}, "total_minor is not a whole number"),
        ({"rule": None}, "its rule is not {base, per_km, per_min, minimum}"),
        ({"rule": fare["rule"] | {"per_mile": "1"}}, "its rule is not"),
        ({"rule": fare["rule"] | {"base": 1}}, "base is not a decimal in text"),
        ({"rule": fare["rule"] | {"base": "2.505"}}, "its rule (base 2.505 USD is not a whole"),
        ({"surge_from": {"cell": "8828308281fffff", "event": None}}, "is not {event}"),
        ({"surge_from": {"event": {"shard": 0}}}, "is not {shard, position, at}"),
        ({"surge_from": {"event": EVENT | {"position": -1}}}, "shard, position"),
        ({"surge_from": {"event": EVENT | {"position": 2**63}}}, "shard, position"),
        ({"surge_from": {"event": EVENT | {"shard": "0"}}}, "shard, position"),
        ({"surge_from": {"event": EVENT | {"at": None}}}, "or time"),
    ):
        assert reason in refused(_resigned(token, {"fare": fare | change}))
    ok = {"surge_from": {"event": EVENT}}
    assert desk().read(_resigned(token, {"fare": fare | ok}), NOW).surge_from == SurgeSource(
        0, 12, 1.5
    )


EVENT = {"shard": 0, "position": 12, "at": 1.5}


def test_a_signed_quote_says_what_quotes_write_and_no_more() -> None:
    """Signed or not, a claim is read only in the form ``Quote.claims`` writes: totals in
    whole minor units in the currency's digits, plain decimals, bounded numbers and names."""
    token = issued().token
    fare = claims_of(token)["fare"]
    minor, total = fare["total_minor"], fare["total"]
    for change, reason in (
        ({"total": total + "1"}, "total is not total_minor in the currency's digits"),
        ({"total": "7.001", "total_minor": 700}, "total is not total_minor"),  # not cents
        ({"total": "7.0", "total_minor": 700}, "total is not total_minor"),
        ({"total": "07.00", "total_minor": 700}, "total is not total_minor"),
        ({"total": "1E+2", "total_minor": 10_000}, "total is not total_minor"),
        ({"total": "0" * 5000 + total}, "total is not total_minor"),
        ({"total_minor": 10**16, "total": str(Decimal(10**16).scaleb(-2))},
         "total_minor is not a whole number from 0 to 1,000,000,000,000,000"),
        ({"total_minor": -minor}, "total_minor is not a whole number"),
        ({"total_minor": True}, "total_minor is not a whole number"),
        ({"distance_m": 10**9 + 1}, "distance_m is not a whole number from 0 to"),
        ({"surge": "1E+0"}, "surge is not a decimal in text"),
        ({"surge": "1.00000"}, "surge is not a decimal in text"),
        ({"surge": " 1.00"}, "surge is not a decimal in text"),
        ({"rule": fare["rule"] | {"per_km": "1e2"}}, "per_km is not a decimal in text"),
        ({"rule": fare["rule"] | {"per_km": "1" * 7}}, "per_km is not a decimal in text"),
        ({"rules_version": "sha256:" + "0" * 1000}, "its estimate or rules version"),
        ({"rules_version": ""}, "its estimate or rules version"),
        ({"market": "m" * 201}, "its market or currency"),
    ):  # fmt: skip
        assert reason in refused(_resigned(token, {"fare": fare | change}))
    assert desk().read(_resigned(token, {"fare": fare | {"market": "m" * 200}}), NOW)


def test_a_quote_without_a_required_claim_is_refused() -> None:
    claims = claims_of(issued().token)
    del claims["jti"]
    token = jwt.encode(claims, KEY, algorithm="HS256", headers={"kid": "k1"})
    assert "malformed quote: no jti claim" in refused(token)


def test_read_quote_takes_only_whole_seconds() -> None:
    claims = claims_of(issued().token) | {"exp": NOW + 100.5}
    with pytest.raises(QuoteError, match="exp is not a whole number of seconds"):
        read_quote(claims, NOW, TTL)


def test_a_change_of_the_rules_does_not_void_an_outstanding_quote() -> None:
    """Issued under one rule set, read and checked by a desk with other rules: the quote
    keeps its price, its rule and the version that priced it."""
    quote = issued("xl")
    dearer = {"markets": {"san-francisco": {"currency": "USD", "products": {
        "xl": {"base": "9", "per_km": "9", "per_min": "9", "minimum": "90"}}}}}  # fmt: skip
    now_desk = build_fare_desk(Settings(fares=dearer, quote_ttl_s=TTL), RING)
    assert now_desk.book.version != quote.quote.rules_version
    read = now_desk.check(quote.token, RIDER, PICKUP, DROPOFF, "xl", NOW + 60)
    assert read == quote.quote
    assert (read.rules_version, read.total) == (desk().book.version, quote.quote.total)
    assert (
        read.rule
        == desk().book.rule_for("san-francisco", "xl")
        != now_desk.book.rule_for("san-francisco", "xl")
    )


# What POST /rides will check of a quote it carries


def test_a_quote_fits_its_riders_same_trip() -> None:
    quote = issued("accessible")
    fitted = desk().check(quote.token, RIDER, PICKUP, DROPOFF, "accessible", NOW + 60)
    assert fitted == quote.quote


@pytest.mark.parametrize(
    ("rider", "pickup", "dropoff", "product", "reason"),
    [
        (OTHER_RIDER, PICKUP, DROPOFF, "standard", "this quote was issued to another rider"),
        (RIDER, (37.77536, -122.4194), DROPOFF, "standard",
         "the request's pickup (37.77536, -122.4194) is 51 m from the quote's "
         "(37.7749, -122.4194): at most 50 m"),
        (RIDER, PICKUP, (37.7599, -122.41422), "standard",
         "the request's dropoff (37.7599, -122.41422) is 51 m from the quote's "
         "(37.7599, -122.4148): at most 50 m"),
        (RIDER, PICKUP, PICKUP, "standard", "the request's dropoff (37.7749, -122.4194) is "),
        (RIDER, PICKUP, DROPOFF, "xl", "the quote is for 'standard', the request for 'xl'"),
    ],
)  # fmt: skip
def test_a_quote_for_another_rider_trip_or_product_does_not_fit(
    rider: str, pickup: Any, dropoff: Any, product: Any, reason: str
) -> None:
    with pytest.raises(QuoteError) as raised:
        desk().check(issued().token, rider, pickup, dropoff, product, NOW)
    assert reason in raised.value.reason


def test_a_request_within_50_m_of_each_quoted_place_fits() -> None:
    """A client that rounds or re-reads a position keeps its quote, and its price."""
    quote = issued()
    near_pickup, near_dropoff = (37.77534, -122.4194), (37.7599, -122.41424)  # 49 m each
    assert haversine_m(*PICKUP, *near_pickup) < PLACE_TOLERANCE_M == 50
    assert haversine_m(*DROPOFF, *near_dropoff) < PLACE_TOLERANCE_M
    fitted = desk().check(quote.token, RIDER, near_pickup, near_dropoff, "standard", NOW)
    assert fitted == quote.quote  # the quote's places and total, not the request's


def test_a_quote_fits_its_riders_requests_again_until_it_expires() -> None:
    """Not used up by a ride: the engine keeps no record of quotes (a rider has one active
    ride at a time); the rides' events will carry its id."""
    quote = issued()
    for now in (NOW, NOW + 1, NOW + TTL + LEEWAY_S - 1):
        assert desk().check(quote.token, RIDER, PICKUP, DROPOFF, "standard", now) == quote.quote
    with pytest.raises(QuoteError, match="quote expired"):
        desk().check(quote.token, RIDER, PICKUP, DROPOFF, "standard", NOW + TTL + LEEWAY_S)


def test_an_expired_quote_does_not_fit_either() -> None:
    with pytest.raises(QuoteError, match="quote expired"):
        desk().check(issued().token, RIDER, PICKUP, DROPOFF, "standard", NOW + TTL + LEEWAY_S)


def test_the_adapter_signs_with_the_rings_signing_key() -> None:
    token = PyJwtQuotes(KeyRing({"a": KEY, "b": OTHER_KEY}, "b")).sign({"x": 1})
    assert jwt.get_unverified_header(token)["kid"] == "b"


def test_a_ride_without_a_quote_takes_the_rule_of_its_pickup_or_is_refused() -> None:
    terms = desk().terms_for(PICKUP, "xl")
    assert terms is not None and (terms.market, terms.product) == ("san-francisco", "xl")
    with pytest.raises(FareError) as outside:  # defaults: no 'elsewhere' rules
        desk().terms_for((40.7128, -74.0060), "standard")
    assert outside.value.code == "no_fare_rules"
    only = {"currency": "USD", "products": {"standard": {"base": 1, "per_km": 1, "per_min": 1,
                                                         "minimum": 1}}}  # fmt: skip
    one = build_fare_desk(Settings(fares={"markets": {"san-francisco": only}}), RING)
    with pytest.raises(FareError) as unoffered:
        one.terms_for(PICKUP, "accessible")
    assert unoffered.value.code == "product_not_offered"
    assert "(offered: standard)" in unoffered.value.reason


def test_a_deployment_without_any_fare_rules_leaves_rides_unpriced() -> None:
    # no market (DISPATCH_MARKETS empty) and no 'elsewhere': nothing can be priced
    bare = build_fare_desk(Settings(markets=[]), RING)
    assert not bare.book.has_rules
    assert bare.terms_for(PICKUP, "standard") is None
    assert desk().book.has_rules  # the defaults price every configured market


def test_a_ride_without_a_quote_is_priced_at_its_pickup_cells_surge_of_the_moment() -> None:
    """As a quote would be: riding without one is no way around the surge."""
    seen: list[tuple[float, float]] = []

    source = SurgeSource(2, 1234, NOW - 60.0)

    def surge(lat: float, lng: float) -> tuple[Decimal, SurgeSource]:
        seen.append((lat, lng))
        return Decimal("1.70"), source

    surging = build_fare_desk(Settings(), RING, surge=surge)
    terms = surging.terms_for(PICKUP, "standard")
    assert terms is not None and terms.surge == Decimal("1.70") and seen == [PICKUP]
    assert terms.surge_from == source  # where the surge came from, for replay to check
    issued = surging.estimate(RIDER, PICKUP, DROPOFF, "standard", NOW)
    assert issued.quote.surge == terms.surge and issued.quote.surge_from == source
    back = surging.read(issued.token, NOW)  # signed into the quote, read back whole
    assert back.surge_from == source and surging.terms_of(back).surge_from == source
    calm = desk().terms_for(PICKUP, "standard")  # no surge view: 1.00
    assert calm is not None and calm.surge == Decimal("1.00")
