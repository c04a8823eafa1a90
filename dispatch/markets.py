"""Which shard serves a place: configured markets first, then a documented default rule.

Default rule for places outside every configured market: the shard is the H3 resolution-3
cell of the place (about 12,000 km2, roughly a metro region) hashed onto the shard count.

A market split over several shards (``"shards": N > 1``) is routed by region
(``dispatch.regions``): a place goes to the shard of its region. Rides live in their
pickup's shard and may be offered drivers of other shards (docs/ARCHITECTURE.md, "Offers
across shards"), embedded and on Kafka alike.
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Sequence
from typing import Any

import h3

from dispatch.regions import MARKET_RESOLUTION, RegionMap, market_cells, split_market
from dispatch.service_areas import ServiceAreas, parse_area
from dispatch.settings import MarketConfig, Settings

__all__ = ["DEFAULT_RULE_RESOLUTION", "MARKET_RESOLUTION", "MarketMap", "handoffs"]

DEFAULT_RULE_RESOLUTION = 3
NEARBY_RESOLUTION, NEARBY_RINGS = 7, 3  # res-7 cells are about 2.4 km across


class MarketMap:
    def __init__(self, markets: Sequence[MarketConfig], shards: int) -> None:
        self.shards = shards
        self._by_cell: dict[str, MarketConfig] = {}
        self._regions: dict[str, RegionMap] = {}
        for market in markets:
            if market.shard + market.shards > shards:
                raise ValueError(f"market {market.name} uses shard {market.shard} >= {shards}")
            if market.shards > 1:
                self._regions[market.name] = split_market(market)
            for cell in market_cells(market):
                self._by_cell.setdefault(cell, market)
        centre = {m.name: (m.lat, m.lng, m.radius_km) for m in markets}
        self.service_areas = ServiceAreas(
            {
                m.name: parse_area(m.service_area, m.name, centre[m.name][:2], m.radius_km)
                for m in markets
                if m.service_area is not None
            }
        )

    def check_stops(self, pickup: tuple[float, float], dropoff: tuple[float, float]) -> None:
        """``OutsideServiceArea`` (naming the point) when the pickup or the drop-off lies in
        a market with a service area but outside it (``dispatch.service_areas``)."""
        if not self.service_areas:
            return
        self.service_areas.check(
            [
                ("pickup", self._name_of(pickup), pickup),
                ("drop-off", self._name_of(dropoff), dropoff),
            ]
        )

    def _name_of(self, place: tuple[float, float]) -> str | None:
        market = self.market_of(*place)
        return None if market is None else market.name

    def market_of(self, lat: float, lng: float) -> MarketConfig | None:
        return self._by_cell.get(h3.latlng_to_cell(lat, lng, MARKET_RESOLUTION))

    def shard_for(self, lat: float, lng: float) -> int:
        market = self.market_of(lat, lng)
        if market is not None:
            regions = self._regions.get(market.name)
            if regions is not None:  # the shard of the place's region
                shard = regions.shard_of(lat, lng)
                return market.shard if shard is None else shard
            return market.shard
        region = h3.latlng_to_cell(lat, lng, DEFAULT_RULE_RESOLUTION)
        return zlib.crc32(region.encode()) % self.shards

    def nearby_shards(self, lat: float, lng: float) -> frozenset[int]:
        """The shards serving the places within about 4 km (the resolution-7 cells up to
        three rings around the place's, more than a pickup search reaches): where a driver
        there may be offered a ride. Cached by cell."""
        return self._nearby(h3.latlng_to_cell(lat, lng, NEARBY_RESOLUTION))

    @functools.cache  # noqa: B019 (one map a process, bounded by the cells drivers visit)
    def _nearby(self, cell: str) -> frozenset[int]:
        ring = h3.grid_disk(cell, NEARBY_RINGS)
        return frozenset(self.shard_for(*h3.cell_to_latlng(c)) for c in ring)


def handoffs(settings: Settings) -> dict[str, Any]:
    """A shard worker's hand-off options: where a place is served and how long a free
    driver must stay in another shard's region (none when hand-off is off)."""
    if not settings.handoff_after_s or settings.shards == 1:
        return {}
    region_of = MarketMap(settings.markets, settings.shards).shard_for
    return {"region_of": region_of, "handoff_after_s": settings.handoff_after_s}
