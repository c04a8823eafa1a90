"""Which shard serves a place: configured markets first, then a documented default rule.

Default rule for places outside every configured market: the shard is the H3 resolution-3
cell of the place (about 12,000 km2, roughly a metro region) hashed onto the shard count.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import h3

from dispatch.settings import MarketConfig

MARKET_RESOLUTION = 5
DEFAULT_RULE_RESOLUTION = 3


class MarketMap:
    def __init__(self, markets: Sequence[MarketConfig], shards: int) -> None:
        self.shards = shards
        self._by_cell: dict[str, MarketConfig] = {}
        for market in markets:
            if market.shard >= shards:
                raise ValueError(f"market {market.name} uses shard {market.shard} >= {shards}")
            centre = h3.latlng_to_cell(market.lat, market.lng, MARKET_RESOLUTION)
            edge_km = h3.average_hexagon_edge_length(MARKET_RESOLUTION, unit="km")
            rings = int(market.radius_km / (edge_km * 1.5)) + 1
            for cell in h3.grid_disk(centre, rings):
                self._by_cell.setdefault(cell, market)

    def market_of(self, lat: float, lng: float) -> MarketConfig | None:
        return self._by_cell.get(h3.latlng_to_cell(lat, lng, MARKET_RESOLUTION))

    def shard_for(self, lat: float, lng: float) -> int:
        market = self.market_of(lat, lng)
        if market is not None:
            return market.shard
        region = h3.latlng_to_cell(lat, lng, DEFAULT_RULE_RESOLUTION)
        return zlib.crc32(region.encode()) % self.shards
