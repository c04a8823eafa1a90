"""A ride's fare: the terms it was requested on, and its final fare from the trip driven.

A ride records its ``FareTerms`` when it is requested (``Ride.Requested``'s ``fare``): the
rule that prices it (the pickup's market's, for its product), the rules version it came
from and the surge; with a quote, the quote's id and what it promised. When the ride
completes, ``final_fare`` prices the trip driven (its distance and duration, in
``Ride.Completed``) by those terms, so every fare is explained by the ride's own events
(docs/MARKETPLACE.md, "The ride's fare"):

- a quoted ride pays the quoted total, whatever the trip took (upfront pricing); the
  metered fare of the trip (the quote's rule and surge over its recorded distance and
  duration) is recorded beside it, for comparison, and decides nothing;
- a ride without a quote pays the metered fare.

There is no tolerance that switches a quoted ride to the metered fare: the trip's distance
is the straight-line estimate between the requested pickup and drop-off, fixed when the ride
is requested, so a detour or an early drop-off cannot change it, and only the duration
could move the metered fare, the part the driver controls (by when they press start and
complete). A switch on it would let a slow trip raise the rider's fare above the quote
(docs/MARKETPLACE.md, "The ride's fare").
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from dispatch.domain.fares import (
    AMOUNTS,
    Fare,
    FareRule,
    Product,
    amount_text,
    fare,
    minor_units,
)
from dispatch.domain.products import is_product_name

Basis = Literal["quoted", "metered"]


@dataclass(frozen=True, slots=True)
class QuotedPrice:
    """What a quote promised: its id (the quote's ``jti``), its trip and its total, until
    ``expires_at`` (epoch seconds)."""

    quote_id: str
    total: Decimal
    distance_m: int
    duration_s: int
    estimated_by: str
    minimum_applied: bool
    expires_at: int | None = None


MAX_LOG_POSITION = 2**63 - 1  # a log position (a Kafka offset is a signed 64-bit integer)
MAX_SHARD = 2**16 - 1  # a shard number (ids carry it in 16 bits)


@dataclass(frozen=True, slots=True)
class SurgeSource:
    """Where a fare's surge came from: the surge event that last set the multiplier of
    the pickup's surge cell when it was priced, by its ``shard``, ``position`` in the log
    and time ``at``; the three None when the cell had no change (1.00). The cell itself is
    not recorded: it says where the rider was, and is found again from the pickup, which
    is sealed (docs/PRIVACY.md)."""

    shard: int | None = None
    position: int | None = None
    at: float | None = None

    def to_data(self) -> dict[str, Any]:
        if self.shard is None:
            return {"event": None}
        return {"event": {"shard": self.shard, "position": self.position, "at": self.at}}

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> SurgeSource:
        """``ValueError`` for a source that is not what ``to_data`` writes (a shard or
        position out of range, a time that is not a finite number)."""
        event = data.get("event")
        if event is None:
            return cls()
        shard, position, at = event["shard"], event["position"], event["at"]
        whole = (type(shard) is int and 0 <= shard <= MAX_SHARD
                 and type(position) is int and 0 <= position <= MAX_LOG_POSITION)  # fmt: skip
        if not whole or type(at) not in (int, float) or not math.isfinite(at):
            raise ValueError("a surge source's shard, position or time is out of range")
        return cls(shard, position, float(at))


@dataclass(frozen=True, slots=True)
class FareTerms:
    """How a ride is priced: ``rule`` (of ``market``, None outside every market, for
    ``product``) from the rule set ``rules_version``, at ``surge``; ``quote`` when the
    ride carried one; ``road_factor``: the factor the trip's recorded distance is the
    great circle between the requested ends times (None: terms recorded before it was);
    ``surge_from``: where ``surge`` came from (None: terms recorded before it was, or a
    ride priced at no surge, as a booking is)."""

    product: Product
    market: str | None
    rules_version: str
    rule: FareRule
    surge: Decimal
    quote: QuotedPrice | None = None
    road_factor: Decimal | None = None
    surge_from: SurgeSource | None = None

    @property
    def currency(self) -> str:
        return self.rule.currency

    def to_data(self) -> dict[str, Any]:
        """The terms as event data (amounts as decimal text: no float holds money)."""
        quote = self.quote
        rule = {name: amount_text(getattr(self.rule, name), self.currency) for name in AMOUNTS}
        priced = None
        if quote is not None:
            priced = {
                "quote_id": quote.quote_id,
                "total": amount_text(quote.total, self.currency),
                "total_minor": minor_units(quote.total, self.currency),
                "distance_m": quote.distance_m,
                "duration_s": quote.duration_s,
                "estimated_by": quote.estimated_by,
                "minimum_applied": quote.minimum_applied,
                "expires_at": quote.expires_at,
            }
        return {
            "product": self.product,
            "market": self.market,
            "rules_version": self.rules_version,
            "currency": self.currency,
            "rule": rule,
            "surge": str(self.surge),
            "quote": priced,
            "road_factor": None if self.road_factor is None else str(self.road_factor),
            "surge_from": None if self.surge_from is None else self.surge_from.to_data(),
        }

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> FareTerms:
        product = data["product"]
        if not is_product_name(product):
            raise ValueError(f"unknown product {product!r}")
        amounts = {name: Decimal(data["rule"][name]) for name in AMOUNTS}
        q = data.get("quote")
        quote = None if q is None else QuotedPrice(
            q["quote_id"], Decimal(q["total"]), int(q["distance_m"]), int(q["duration_s"]),
            q["estimated_by"], bool(q["minimum_applied"]), q.get("expires_at"),
        )  # fmt: skip
        return cls(
            product,
            data["market"],
            data["rules_version"],
            FareRule(data["currency"], **amounts),
            Decimal(data["surge"]),
            quote,
            None if data.get("road_factor") is None else Decimal(data["road_factor"]),
            None if data.get("surge_from") is None else SurgeSource.from_data(data["surge_from"]),
        )


@dataclass(frozen=True, slots=True)
class FinalFare:
    """What the rider pays for a trip of ``distance_m`` and ``duration_s``: ``total``, on
    ``basis`` quoted (the quote's total) or metered; ``metered``: the terms over the trip,
    recorded for either."""

    distance_m: int
    duration_s: int
    metered: Fare
    total: Decimal
    basis: Basis
    currency: str

    def to_data(self) -> dict[str, Any]:
        return {
            "total": amount_text(self.total, self.currency),
            "total_minor": minor_units(self.total, self.currency),
            "currency": self.currency,
            "basis": self.basis,
            "metered": amount_text(self.metered.total, self.currency),
            "minimum_applied": self.metered.minimum_applied,
        }


def final_fare(terms: FareTerms, distance_m: int, duration_s: int) -> FinalFare:
    """The fare of a trip of ``distance_m`` and ``duration_s`` on ``terms``: the quoted
    total when the ride carried a quote, else the metered fare."""
    metered = fare(terms.rule, distance_m, duration_s, terms.surge)
    quote = terms.quote
    basis: Basis
    if quote is not None:
        total, basis = quote.total, "quoted"
    else:
        total, basis = metered.total, "metered"
    return FinalFare(distance_m, duration_s, metered, total, basis, terms.currency)
