"""Published shapes of a ride's fare: the terms a ride is requested on (in ``RequestRide``
and ``Ride.Requested``), and the final fare of a completed ride (``Ride.Completed``).

Amounts are decimal text (money is never a JSON number), in the currency's minor digits or
more; ``dispatch.domain.ride_fare`` writes and reads them (docs/MARKETPLACE.md, "The
ride's fare").
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.common import ProductName

# Any amount the core prices: a quote's total reaches ``MAX_TOTAL_MINOR`` (10**15) minor
# units, 16 digits in a currency of no minor digits (VND, JPY), and an unquoted ride's
# metered fare stays below that (rules of at most 100,000, surge at most 10, trips and
# durations of at most 10**9 m or s). A bound of 6 digits once refused an ordinary VND fare
# of 1,058,457 (a 500 on POST /rides): keep it at the core's bound.
Amount = Annotated[
    str, Field(pattern=r"^[0-9]{1,16}(\.[0-9]{1,4})?$", max_length=21, examples=["7.36"])
]
Count = Annotated[int, Field(ge=0, le=10**9)]


class _Fare(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RuleText(_Fare):
    """The fare rule that prices the ride, in its currency."""

    base: Amount
    per_km: Amount
    per_min: Amount
    minimum: Amount


class QuotedPriceData(_Fare):
    """What the quote the ride carried promised: its id (the quote's ``jti``, the
    estimate's ``quote_id``), its trip and its total."""

    quote_id: str = Field(max_length=200)
    total: Amount
    total_minor: Annotated[int, Field(ge=0)]
    distance_m: Count
    duration_s: Count
    estimated_by: Literal["road_network", "straight_line"]
    minimum_applied: bool
    expires_at: Annotated[int, Field(ge=0)] | None = Field(
        default=None, description="When the quote expires (epoch seconds)."
    )


class SurgeEventRef(_Fare):
    """A surge event in the log: its shard, position and time (epoch seconds)."""

    shard: Annotated[int, Field(ge=0, le=2**16 - 1)]
    position: Annotated[int, Field(ge=0, le=2**63 - 1)]
    at: Annotated[float, Field(allow_inf_nan=False)]


class SurgeSourceData(_Fare):
    """Where a fare's surge came from: the surge event that last set the multiplier of
    the pickup's surge cell (null: the cell had no change, 1.00). The cell is not
    recorded: it is found again from the pickup."""

    event: SurgeEventRef | None


class FareTermsData(_Fare):
    """How a ride is priced: the rule of the pickup's market (null: outside every market)
    for the product, from the rule set ``rules_version``, at ``surge``; ``quote``: what the
    quote the ride carried promised (null: none, the ride pays the metered fare)."""

    product: ProductName
    market: str | None = Field(max_length=200)
    rules_version: str = Field(max_length=200)
    currency: str = Field(min_length=3, max_length=3)
    rule: RuleText
    surge: Amount
    quote: QuotedPriceData | None
    road_factor: Amount | None = Field(
        default=None,
        description="The factor the trip's recorded distance is the great circle between "
        "the requested pickup and drop-off times (DISPATCH_ROAD_FACTOR when the ride was "
        "requested), so the distance can be checked from the log; null in terms recorded "
        "before it was.",
        examples=["1.35"],
    )
    surge_from: SurgeSourceData | None = Field(
        default=None,
        description="Where the surge came from (`dispatch replay fare` names the event; "
        "`replay verify` checks it set that multiplier); null in terms recorded before it "
        "was, and for a ride priced at no surge (a booking).",
    )


class FinalFareData(_Fare):
    """A completed ride's fare: ``total`` on ``basis`` quoted (the quote's total, upfront:
    a quoted ride pays it whatever the trip took) or metered (a ride without a quote);
    ``metered``: the terms over the recorded trip, recorded for a quoted ride too, for
    comparison; ``minimum_applied``: whether the minimum set the metered fare."""

    total: Amount
    total_minor: Annotated[int, Field(ge=0)]
    currency: str = Field(min_length=3, max_length=3)
    basis: Literal["quoted", "metered"]
    metered: Amount
    minimum_applied: bool


class TripFoundBy(_Fare):
    """How a completed trip's distance and duration were found: the straight-line
    estimate, or the road route over the graph ``road_graph`` names (where a road network
    is configured); the duration by the shard's clock, else estimated the same way."""

    distance: Literal["straight_line", "road_network"]
    duration: Literal["clock", "straight_line", "road_network"]
    road_graph: str | None = Field(
        default=None,
        description="The road graph a road_network distance was routed over: its extract's "
        "file name and digest and its speed table's version.",
    )
