"""Which shard serves a place: configured markets first, then a documented default rule.

Default rule for places outside every configured market: the shard is the H3 resolution-3
cell of the place (about 12,000 km2, roughly a metro region) hashed onto the shard count.

A market split over several shards (``"shards": N > 1``, its regions in
``dispatch.regions``) is refused: routing by region needs the cross-shard protocol (rides
in the shard of their pickup, drivers handed off between regions, offers across borders),
which is not built yet. Until then a split market would be N walled-off markets.
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Sequence

import h3

from dispatch.regions import MARKET_RESOLUTION, market_cells
from dispatch.settings import MarketConfig

__all__ = ["DEFAULT_RULE_RESOLUTION", "MARKET_RESOLUTION", "MarketMap", "SplitMarketError"]

DEFAULT_RULE_RESOLUTION = 3


class SplitMarketError(ValueError):
    """A market split over several shards, which routing does not serve yet."""


class MarketMap:
    def __init__(self, markets: Sequence[MarketConfig], shards: int) -> None:
        self.shards = shards
        self._by_cell: dict[str, MarketConfig] = {}
        for market in markets:
            if market.shards > 1:
                last = market.shard + market.shards - 1
                raise SplitMarketError(
                    f"market {market.name} is split over shards {market.shard}..{last} "
                    f'("shards": {market.shards}), and routing by region is not built yet '
                    "(issue #14): it cannot be served; 'dispatch markets regions' prints its "
                    'region map. Set "shards": 1 to serve it from one shard.'
                )
            if market.shard >= shards:
                raise ValueError(f"market {market.name} uses shard {market.shard} >= {shards}")
            for cell in market_cells(market):
                self._by_cell.setdefault(cell, market)

    def market_of(self, lat: float, lng: float) -> MarketConfig | None:
        return self._by_cell.get(h3.latlng_to_cell(lat, lng, MARKET_RESOLUTION))

    def shard_for(self, lat: float, lng: float) -> int:
        market = self.market_of(lat, lng)
        if market is not None:
            return market.shard
        region = h3.latlng_to_cell(lat, lng, DEFAULT_RULE_RESOLUTION)
        return zlib.crc32(region.encode()) % self.shards

    def nearby_shards(self, lat: float, lng: float) -> frozenset[int]:
        """The shards serving the place's resolution-5 cell and its neighbours (about 8 km
        around, more than a pickup search reaches): where a driver there may be offered a
        ride. Cached by cell."""
        return self._nearby(h3.latlng_to_cell(lat, lng, MARKET_RESOLUTION))

    @functools.cache  # noqa: B019 (one map a process, bounded by the cells drivers visit)
    def _nearby(self, cell: str) -> frozenset[int]:
        return frozenset(self.shard_for(*h3.cell_to_latlng(c)) for c in h3.grid_disk(cell, 1))
