"""One simulated city over several shards (``--city-shards N``): the settings that split it.

The city (the synthetic square, or the square around a trace's pickups) becomes one market
covering it, cut into N regions of its own shards 0..N-1 (``dispatch.regions``), in place of
the configured markets. Rides then live in their pickup's region, drivers are registered in
the region they start in, and rides are offered drivers across region borders through the
shards' messages (docs/ARCHITECTURE.md, "Offers across shards"). With N = 1 the same market
is one shard: the baseline a split city is compared with.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from dispatch.settings import MAX_MARKET_SHARDS, MarketConfig, Settings
from dispatch.simulator.city import City

CITY_MARKET = "simulated-city"
MARGIN_KM = 2.0  # beyond the square's corners: drivers idle a little past its edge


def city_market(
    shards: int, points: Sequence[tuple[float, float]] | None = None, city: City | None = None
) -> MarketConfig:
    """The market covering the simulated city (``city``, or the square around ``points``,
    or the default square), split over shards 0..``shards``-1."""
    if not 1 <= shards <= MAX_MARKET_SHARDS:
        raise ValueError(f"a city is split over 1 to {MAX_MARKET_SHARDS} shards, not {shards}")
    if city is None:
        city = City.covering(list(points)) if points else City()  # the default square
    radius_km = city.half_m * math.sqrt(2) / 1000 + MARGIN_KM
    return MarketConfig(
        name=CITY_MARKET, shard=0, lat=city.lat, lng=city.lng, radius_km=radius_km, shards=shards
    )


def split_city(
    settings: Settings,
    shards: int,
    points: Sequence[tuple[float, float]] | None = None,
    city: City | None = None,
) -> Settings:
    """``settings`` serving the simulated city from ``shards`` shards (and no other market)."""
    market = city_market(shards, points, city)
    return settings.model_copy(update={"markets": [market], "shards": max(settings.shards, shards)})
