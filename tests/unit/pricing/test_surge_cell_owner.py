"""A surge cell is priced and recorded by exactly one shard, whatever shards its points
are routed to: the shard of its parent at the region resolution (review, High 2). And the
surge view folded from several shards' changes does not depend on the order it reads them.
"""

from __future__ import annotations

import itertools

import h3
import numpy as np

from dispatch.bootstrap import build_surge
from dispatch.domain.surge import SURGE_RESOLUTION
from dispatch.log import LogEvent
from dispatch.markets import MarketMap
from dispatch.pricing.tracker import SurgeTracker
from dispatch.regions import REGION_RESOLUTION
from dispatch.settings import MarketConfig, Settings
from projections.surge import SurgeProjection

MARKET = MarketConfig(name="sf", shard=0, lat=37.77, lng=-122.42, radius_km=10, shards=4)
SETTINGS = Settings(shards=4, markets=[MARKET])


def _points() -> list[tuple[float, float]]:
    """Points of every res-8 cell around the centre, several a cell (its vertices pulled a
    little toward its centre, and the centre): most of these cells span two regions."""
    points = []
    for cell in h3.grid_disk(h3.latlng_to_cell(MARKET.lat, MARKET.lng, SURGE_RESOLUTION), 6):
        clat, clng = h3.cell_to_latlng(cell)
        points.append((clat, clng))
        for lat, lng in h3.cell_to_boundary(cell):
            points.append((clat + 0.9 * (lat - clat), clng + 0.9 * (lng - clng)))
    return points


def test_border_cells_exist_so_the_owner_rule_matters() -> None:
    markets = MarketMap(SETTINGS.markets, SETTINGS.shards)
    shards_of: dict[str, set[int]] = {}
    for lat, lng in _points():
        cell = h3.latlng_to_cell(lat, lng, SURGE_RESOLUTION)
        shards_of.setdefault(cell, set()).add(markets.shard_for(lat, lng))
    assert sum(len(s) > 1 for s in shards_of.values()) >= 5


def test_each_surge_cell_is_recorded_by_exactly_one_shard_its_parents() -> None:
    markets = MarketMap(SETTINGS.markets, SETTINGS.shards)
    trackers: list[SurgeTracker] = []
    for shard in range(4):
        tracker = build_surge(SETTINGS)
        assert tracker is not None
        tracker.owned_by(shard)
        trackers.append(tracker)
    points = _points()
    for lat, lng in points:  # each request reaches the shard of its point's region
        shard = markets.shard_for(lat, lng)
        for _ in range(5):
            trackers[shard].requested(lat, lng, 0.0)
    recorded: dict[str, list[int]] = {}
    for shard, tracker in enumerate(trackers):
        tracker.due(0.0)
        change = tracker.tick(30.0, [], np.zeros(0, dtype=np.int64), SURGE_RESOLUTION)
        for cell in change.cells if change is not None else []:
            recorded.setdefault(cell, []).append(shard)
    cells = {h3.latlng_to_cell(lat, lng, SURGE_RESOLUTION) for lat, lng in points}
    assert set(recorded) <= cells
    assert len({s for shards in recorded.values() for s in shards}) >= 2
    for cell, shards in recorded.items():
        parent = h3.cell_to_parent(cell, REGION_RESOLUTION)
        assert shards == [markets.shard_for(*h3.cell_to_latlng(parent))], cell
    # every cell with demand in its owner's regions is recorded (the centre's point is
    # inside the parent, so its owner sees it)
    owned_seen = {
        h3.latlng_to_cell(*h3.cell_to_latlng(c), SURGE_RESOLUTION)
        for c in cells
        if markets.shard_for(*h3.cell_to_latlng(c))
        == markets.shard_for(*h3.cell_to_latlng(h3.cell_to_parent(c, REGION_RESOLUTION)))
    }
    assert owned_seen <= set(recorded)


def _event(shard: int, position: int, cell: str, multiplier: str, at: float) -> LogEvent:
    data = {"cell": cell, "multiplier": multiplier}
    return LogEvent(shard, position, f"surge-{shard}", position, "dispatch.Surge.Changed", at, data)


def test_the_surge_view_is_the_same_in_every_read_order() -> None:
    cell = h3.latlng_to_cell(MARKET.lat, MARKET.lng, SURGE_RESOLUTION)
    other = h3.grid_ring(cell, 1)[0]
    # the review's case: shard 0 2.10@100; shard 1 1.50@70, 1.00@130 (and ties)
    events = [
        _event(0, 1, cell, "2.10", 100.0),
        _event(1, 1, cell, "1.50", 70.0),
        _event(1, 2, cell, "1.00", 130.0),
        _event(0, 2, other, "1.40", 50.0),
        _event(1, 3, other, "1.60", 50.0),
    ]
    projection = SurgeProjection()
    layers = set()
    for order in itertools.permutations(events):
        view = projection.initial()
        for e in order:
            view = projection.apply(view, e)
        layers.add(tuple(sorted(view.layer().items())))
        assert view.multiplier(MARKET.lat, MARKET.lng) == "1.00"
    assert layers == {((other, "1.60"),)}
