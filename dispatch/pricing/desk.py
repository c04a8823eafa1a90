"""The fare desk: prices a trip, issues its quote and checks a quote it is shown.

A quote reads nothing of the log and writes nothing: it is not an event until a ride
carries it (docs/MARKETPLACE.md). Its trip is priced by the pickup's market's rule for the
product, at the surge of the moment of the pickup's cell (``surge``: the surge view). A
trip longer than the longest a quote prices (``DISPATCH_MAX_TRIP_KM``) gets none: refused
before it is routed when even the great circle is longer, else once its estimate is.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from dispatch.domain.fares import NO_SURGE, Product, fare
from dispatch.domain.ride_fare import FareTerms, QuotedPrice, SurgeSource
from dispatch.markets import MarketMap
from dispatch.matching.geo import haversine_m
from dispatch.pricing.quotes import Quote, QuoteCodec, QuoteError, check_quote
from dispatch.pricing.reading import read_quote
from dispatch.pricing.rules import FareBook, FareError
from dispatch.pricing.trip import Place, Trip, TripEstimator

# The surge of a place now and where it came from (the runtime's surge view).
SurgeReading = tuple[Decimal, SurgeSource | None]


@dataclass(frozen=True, slots=True)
class IssuedQuote:
    quote: Quote
    token: str  # the signed quote


class FareDesk:
    """Quotes of ``book``'s rules over ``trips``' estimates of at most ``max_trip_m``
    metres, signed by ``codec`` and valid ``ttl_s`` seconds; ``markets`` says which market
    a pickup is in; ``surge`` the multiplier of a place now and where it came from (None:
    1.00 everywhere, from nowhere)."""

    def __init__(
        self,
        book: FareBook,
        trips: TripEstimator,
        markets: MarketMap,
        codec: QuoteCodec,
        ttl_s: int,
        max_trip_m: int,
        road_factor: float = 1.35,
        surge: Callable[[float, float], SurgeReading] | None = None,
    ) -> None:
        self.book, self.ttl_s, self.max_trip_m = book, ttl_s, max_trip_m
        self.road_factor = road_factor  # the trip's recorded distance: recorded in the terms
        self._surge = surge
        self._trips, self._markets, self._codec = trips, markets, codec

    def estimate(
        self, rider_id: str, pickup: Place, dropoff: Place, product: Product, now: float
    ) -> IssuedQuote:
        """A quote for ``rider_id``'s trip; ``FareError`` when there is no rule for it or
        it is too long."""
        found = self._markets.market_of(*pickup)
        market = found.name if found is not None else None
        rule = self.book.rule_for(market, product)
        trip = self._trip(pickup, dropoff)
        surge, source = self.surge_at(pickup)
        priced = fare(rule, trip.distance_m, trip.duration_s, surge)
        issued = int(now)
        quote = Quote(
            quote_id=str(uuid.uuid4()),
            rider_id=rider_id,
            pickup=pickup,
            dropoff=dropoff,
            product=product,
            market=market,
            rules_version=self.book.version,
            distance_m=trip.distance_m,
            duration_s=trip.duration_s,
            estimated_by=trip.estimated_by,
            rule=rule,
            surge=surge,
            total=priced.total,
            minimum_applied=priced.minimum_applied,
            issued_at=issued,
            expires_at=issued + self.ttl_s,
            surge_from=source,
        )
        return IssuedQuote(quote, self._codec.sign(quote.claims()))

    def surge_at(self, pickup: Place) -> SurgeReading:
        """The surge of ``pickup``'s cell now and where it came from (1.00 from nowhere
        without a surge view)."""
        return self._surge(*pickup) if self._surge is not None else (NO_SURGE, None)

    def _trip(self, pickup: Place, dropoff: Place) -> Trip:
        """The trip's estimate, if it is at most ``max_trip_m`` long; the great circle is
        checked first, so a trip across an ocean is never routed."""
        crow_flies = haversine_m(*pickup, *dropoff)
        if crow_flies > self.max_trip_m:
            raise self._too_long(crow_flies, "in a straight line")
        trip = self._trips.trip(pickup, dropoff)
        if trip.distance_m > self.max_trip_m:
            raise self._too_long(trip.distance_m, f"by its {trip.estimated_by} estimate")
        return trip

    def _too_long(self, metres: float, how: str) -> FareError:
        return FareError(
            "trip_too_long",
            f"the trip is {metres / 1000:,.1f} km {how}, longer than the "
            f"{self.max_trip_m / 1000:g} km a quote may price (DISPATCH_MAX_TRIP_KM)",
        )

    def read(self, token: str, now: float, expired_ok: bool = False) -> Quote:
        """The quote ``token`` is, if this engine signed it and it is still valid at
        ``now`` (``expired_ok``: or expired); else ``QuoteError`` with the reason."""
        if not token.isascii():
            raise QuoteError("malformed quote: not ASCII")
        return read_quote(self._codec.verify(token), now, self.ttl_s, expired_ok)

    def check(
        self,
        token: str,
        rider_id: str,
        pickup: Place,
        dropoff: Place,
        product: Product,
        now: float,
        expired_ok: bool = False,
    ) -> Quote:
        """The quote ``token`` is, if it is valid at ``now`` and was issued to ``rider_id``
        for this trip (each end within ``PLACE_TOLERANCE_M``) and product (what
        ``POST /rides`` checks of a quote it carries); else ``QuoteError``. With
        ``expired_ok`` an expired quote passes (the shard checks the expiry then)."""
        quote = self.read(token, now, expired_ok)
        check_quote(quote, rider_id, pickup, dropoff, product)
        return quote

    def terms_of(self, quote: Quote) -> FareTerms:
        """The terms a ride carrying ``quote`` is priced on: the quote's rule, rules
        version and surge, and what it promised."""
        promised = QuotedPrice(quote.quote_id, quote.total, quote.distance_m,
                               quote.duration_s, quote.estimated_by,
                               quote.minimum_applied, quote.expires_at)  # fmt: skip
        return FareTerms(quote.product, quote.market, quote.rules_version, quote.rule,
                         quote.surge, promised, factor_text(self.road_factor),
                         quote.surge_from)  # fmt: skip

    def terms_for(self, pickup: Place, product: Product, surged: bool = True) -> FareTerms | None:
        """The terms a ride without a quote is priced on: the rules in force now for the
        pickup's market and ``product``, at the surge of the pickup's cell now (``surged``
        False: at none, as a scheduled ride is, whose time is not now). ``FareError``
        (``product_not_offered`` naming the products offered, ``no_fare_rules``) when they
        cannot price it: the ride is refused. None only when the deployment has no fare
        rules at all (no market's and no ``elsewhere``): its rides are not priced."""
        if not self.book.has_rules:
            return None
        surge, source = self.surge_at(pickup) if surged else (NO_SURGE, None)
        return terms_for(self.book, self._markets, pickup, product, self.road_factor, surge,
                         source)  # fmt: skip


def terms_for(
    book: FareBook,
    markets: MarketMap,
    pickup: Place,
    product: Product,
    road_factor: float,
    surge: Decimal = NO_SURGE,
    surge_from: SurgeSource | None = None,
) -> FareTerms:
    """The terms a ride without a quote is priced on: ``book``'s rule for the pickup's
    market and ``product``, at ``surge`` (which came from ``surge_from``), its trip's
    distance by ``road_factor``; ``FareError`` when it has none."""
    found = markets.market_of(*pickup)
    market = found.name if found is not None else None
    rule = book.rule_for(market, product)
    return FareTerms(product, market, book.version, rule, surge, None,
                     factor_text(road_factor), surge_from)  # fmt: skip


def factor_text(road_factor: float) -> Decimal:
    """The road factor as recorded: its shortest decimal text (``1.35``), which reads back
    as the same float (``float(Decimal(repr(x))) == x``), so the distance recomputes
    exactly."""
    return Decimal(repr(road_factor))
