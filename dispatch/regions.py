"""Regions: a market cut into ``shards`` contiguous sets of H3 cells of balanced expected load.

A market (``MarketConfig``: a centre and a radius) is the disk of H3 resolution-5 cells
``market_cells`` returns (the cells ``MarketMap`` routes to it). ``split_market`` cuts it,
at a coarser resolution than the matcher's, into ``market.shards`` regions; region ``i``
goes to shard ``market.shard + i``. ``MarketMap`` routes a place of a split market to its
region's shard (docs/ARCHITECTURE.md, Cells and routing).

Resolution (``REGION_RESOLUTION`` = 7). Measured with h3 (``average_hexagon_area``,
``average_hexagon_edge_length``; ``cell_area`` over the default San Francisco market):

======  =============  ===========  ========================  =========================
res     mean area      mean edge    cells, 40-km SF market    crossing a cell at 25 km/h
======  =============  ===========  ========================  =========================
6       36 km2         3.7 km       259                       about 15 min
7       5.2 km2        1.4 km       1,813                     about 6 min
8       0.74 km2       0.53 km      12,691                    about 2 min
======  =============  ===========  ========================  =========================

- Balance needs cells that are small against a region: the bound below is about one cell's
  weight, and a busy downtown must spread over several cells, or one cell alone could carry
  more than a region's share. At res 6 a 64-shard split of the default market leaves 4 cells
  a region and a downtown sits in one or two cells; at res 7 there are 28 cells a region
  even at 64 shards (113 at 16), and a downtown spans tens of cells.
- Stability needs cells that are large against a driver's minute: a border is a chain of cell
  edges, so a free driver running along it crosses it at most about once a cell (each
  crossing is a hand-off in the protocol). A res-7 cell is about 2.4 km across (6 minutes at
  the default 25 km/h, 3 at 50), a res-8 one under a kilometre: a crossing every one or
  two minutes. A res-7 cell is also about the default pickup search radius (3 km), so a
  search near a border reaches into one neighbouring region, not several.

The region cells are the res-7 children of the market's res-5 cells, so they partition the
market exactly; a place belongs to the market as ``MarketMap`` says (its res-5 cell), and to
the region of its res-7 cell (a place whose res-7 cell's parent is a neighbouring res-5
cell, along the market's edge, takes the region of the nearest market cell).

Algorithm: recursive bisection. A piece of cells that must become ``n`` regions is cut into
a low side of ``n // 2`` regions and a high side of ``n - n // 2``: cells are ordered along
the piece's longer axis (cell centres projected onto a local plane around the market
centre, ties broken by the other coordinate, then the cell id), and the cut is the position
whose low side's weight is nearest ``W * (n // 2) / n`` among the positions that leave both
sides connected (checked for every position at once with a union-find, forwards and
backwards). When no position near the target keeps both sides connected along that order,
the other axis is tried, then orders grown cell by cell from either end (whose low sides are
always connected); a piece no order can cut connected takes the nearest cut and keeps the
high side's heaviest connected piece, the rest joining the low side. Regions are numbered
in the order the recursion leaves them (low before high). Everything is sorted by value
(coordinates, cell ids), never by hash or set order, so the same market, weights and
resolution give the same map on every run and every ``PYTHONHASHSEED``.

Guarantees:

- Contiguous: every region is one connected set of cells (H3 neighbours), always.
- Every cell is in exactly one region, and every region has at least one cell.
- Balanced: when each cut is made at the position nearest its target (the normal case for a
  market's disk of cells), each cut misses its target by at most half the heaviest cell's
  weight ``w``, and a region's weight is within ``balance_factor(shards) * w`` of the even
  share ``W / shards``: a cut's miss is shared by the regions on its side, so the misses
  along a region's path of cuts add up to ``w/2 * (1/c1 + 1/c2 + ...)`` with ``c`` the
  numbers of regions of the pieces on the path, at least 1, 2, 3, 5, 9, 17 from the bottom
  (``balance_factor`` <= 1.11 for up to 64 shards). With uniform weights: a region's cell
  count is within about one cell of ``cells / shards``. ``RegionMap.within_bound`` says
  whether a map holds the bound. The property test holds it for every market of at least
  20 cells a region (the default market has 28 at 64 shards); with fewer, keeping both
  sides connected can push a cut off its nearest position (found: 343 cells in 46 regions,
  one region 1.5 cells over the even share where the bound is 1.08), and ``within_bound``
  then says False.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from types import MappingProxyType

import h3

from dispatch.settings import MarketConfig

MARKET_RESOLUTION = 5
REGION_RESOLUTION = 7
# Finer than this is more cells than a balance needs and borders a driver keeps crossing.
MAX_REGION_RESOLUTION = 8
KM_PER_DEGREE_LAT = 110.574
KM_PER_DEGREE_LNG_AT_EQUATOR = 111.320

Weights = Callable[[str], float]


def market_cells(market: MarketConfig) -> list[str]:
    """The market's H3 resolution-5 cells, sorted: the disk around its centre cell that covers
    its radius (the cells ``MarketMap`` maps to the market)."""
    centre = h3.latlng_to_cell(market.lat, market.lng, MARKET_RESOLUTION)
    edge_km = h3.average_hexagon_edge_length(MARKET_RESOLUTION, unit="km")
    rings = int(market.radius_km / (edge_km * 1.5)) + 1
    return sorted(h3.grid_disk(centre, rings))


@cache
def balance_factor(shards: int) -> float:
    """How far from the even share a region's weight may be, in heaviest-cell weights, for a
    split into ``shards`` regions whose cuts all fall nearest their targets."""
    if shards < 1:
        raise ValueError(f"shards must be at least 1, not {shards}")
    if shards == 1:
        return 0.0
    low = shards // 2
    high = shards - low
    return max(0.5 / low + balance_factor(low), 0.5 / high + balance_factor(high))


@dataclass(frozen=True)
class Region:
    """One region of a market: its shard, its cells (sorted), their total expected load and
    the shards of the regions it shares a border with (ascending)."""

    index: int
    shard: int
    cells: tuple[str, ...]
    weight: float
    neighbours: tuple[int, ...]

    @property
    def cell_count(self) -> int:
        return len(self.cells)


class RegionMap:
    """Which shard serves each cell of one market: cell -> shard, the regions, their
    borders."""

    def __init__(
        self,
        market: MarketConfig,
        resolution: int,
        regions: Sequence[Region],
        max_cell_weight: float,
    ) -> None:
        self.market = market
        self.resolution = resolution
        self.regions: tuple[Region, ...] = tuple(regions)
        self.max_cell_weight = max_cell_weight
        by_cell = {cell: region.shard for region in self.regions for cell in region.cells}
        self.cells: Mapping[str, int] = MappingProxyType(by_cell)
        self.total_weight = math.fsum(region.weight for region in self.regions)
        self._market_cells = frozenset(market_cells(market))
        self._by_shard = {region.shard: region for region in self.regions}

    @property
    def shards(self) -> tuple[int, ...]:
        return tuple(region.shard for region in self.regions)

    def region(self, shard: int) -> Region:
        """The region served by ``shard`` (KeyError if none of this market's)."""
        return self._by_shard[shard]

    def load_share(self, shard: int) -> float:
        """The region's share of the market's expected load (0..1)."""
        return self._by_shard[shard].weight / self.total_weight

    def neighbours(self, shard: int) -> tuple[int, ...]:
        return self._by_shard[shard].neighbours

    def shard_of_cell(self, cell: str) -> int | None:
        """The shard of a cell at this map's resolution (None if not in the market)."""
        return self.cells.get(cell)

    def shard_of(self, lat: float, lng: float) -> int | None:
        """The shard of the region a place is in; None outside the market (the market's
        res-5 cells decide, as in ``MarketMap``)."""
        if h3.latlng_to_cell(lat, lng, MARKET_RESOLUTION) not in self._market_cells:
            return None
        cell = h3.latlng_to_cell(lat, lng, self.resolution)
        shard = self.cells.get(cell)
        if shard is not None:
            return shard
        # Along the market's edge a place of a market cell can lie in a finer cell whose
        # parent is the neighbouring (outside) cell: the nearest market cell decides.
        near = [c for c in h3.grid_disk(cell, 2) if c in self.cells] or list(self.cells)
        nearest = min(near, key=lambda c: (h3.great_circle_distance((lat, lng), _centre(c)), c))
        return self.cells[nearest]

    @property
    def balance_bound(self) -> float:
        """How far from the even share a region's weight may be (module docstring)."""
        return balance_factor(len(self.regions)) * self.max_cell_weight

    @property
    def within_bound(self) -> bool:
        """Every region's weight is within ``balance_bound`` of the even share."""
        even = self.total_weight / len(self.regions)
        slack = 1e-9 * max(self.total_weight, 1.0)
        return all(abs(r.weight - even) <= self.balance_bound + slack for r in self.regions)


@dataclass(frozen=True)
class _Cell:
    id: str
    x: float
    y: float
    weight: float


def split_market(
    market: MarketConfig,
    weights: Weights | None = None,
    resolution: int = REGION_RESOLUTION,
) -> RegionMap:
    """Cut ``market`` into ``market.shards`` contiguous regions of balanced expected load.

    ``weights`` gives a cell's expected load (finite, >= 0, not all zero); by default every
    cell weighs 1. ``resolution``: the H3 resolution of the region cells, from the market's
    (5) to ``MAX_REGION_RESOLUTION``. Raises ValueError on a bad resolution or weight, or a
    market with fewer cells than shards.
    """
    if not MARKET_RESOLUTION <= resolution <= MAX_REGION_RESOLUTION:
        raise ValueError(
            f"resolution must be {MARKET_RESOLUTION}..{MAX_REGION_RESOLUTION}, not {resolution}"
        )
    ids = sorted(
        child
        for parent in market_cells(market)
        for child in h3.cell_to_children(parent, resolution)
    )
    if len(ids) < market.shards:
        raise ValueError(
            f"market {market.name} has {len(ids)} cells at resolution {resolution}, "
            f"fewer than its {market.shards} shards"
        )
    weigh = weights if weights is not None else _uniform
    cells = [_cell(market, cell, _weight(weigh, cell)) for cell in ids]
    if math.fsum(cell.weight for cell in cells) <= 0:
        raise ValueError(f"market {market.name}: every cell weighs 0")
    members = set(ids)
    adjacency = {cell: _neighbours(cell, members) for cell in ids}
    pieces: list[list[_Cell]] = []
    _bisect(cells, market.shards, adjacency, pieces, market.name)
    shard_of = {c.id: market.shard + i for i, piece in enumerate(pieces) for c in piece}
    regions = [
        Region(
            index=i,
            shard=market.shard + i,
            cells=tuple(sorted(c.id for c in piece)),
            weight=math.fsum(c.weight for c in piece),
            neighbours=tuple(
                sorted(
                    {
                        shard_of[other]
                        for c in piece
                        for other in adjacency[c.id]
                        if shard_of[other] != market.shard + i
                    }
                )
            ),
        )
        for i, piece in enumerate(pieces)
    ]
    return RegionMap(market, resolution, regions, max(c.weight for c in cells))


def _uniform(_cell_id: str) -> float:
    return 1.0


def _weight(weigh: Weights, cell: str) -> float:
    value = float(weigh(cell))
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"cell {cell}: a weight must be finite and >= 0, not {value!r}")
    return value


def _centre(cell: str) -> tuple[float, float]:
    lat, lng = h3.cell_to_latlng(cell)
    return lat, lng


def _cell(market: MarketConfig, cell: str, weight: float) -> _Cell:
    """The cell with its centre on a local plane (km) around the market's centre."""
    lat, lng = _centre(cell)
    d_lng = (lng - market.lng + 180.0) % 360.0 - 180.0  # across the antimeridian too
    x = d_lng * KM_PER_DEGREE_LNG_AT_EQUATOR * math.cos(math.radians(market.lat))
    y = (lat - market.lat) * KM_PER_DEGREE_LAT
    return _Cell(cell, x, y, weight)


def _neighbours(cell: str, members: set[str]) -> tuple[str, ...]:
    return tuple(sorted(c for c in h3.grid_disk(cell, 1) if c != cell and c in members))


def _bisect(
    piece: list[_Cell],
    regions: int,
    adjacency: Mapping[str, tuple[str, ...]],
    out: list[list[_Cell]],
    market: str,
) -> None:
    if regions == 1:
        out.append(piece)
        return
    low_regions = regions // 2
    low, high = _cut(piece, low_regions, regions - low_regions, adjacency, market)
    _bisect(low, low_regions, adjacency, out, market)
    _bisect(high, regions - low_regions, adjacency, out, market)


def _cut(
    piece: list[_Cell],
    low_regions: int,
    high_regions: int,
    adjacency: Mapping[str, tuple[str, ...]],
    market: str,
) -> tuple[list[_Cell], list[_Cell]]:
    """Cut a connected piece (or one of as many cells as regions, each to be a region of its
    own: connected or not) into two connected sides of at least ``low_regions`` and
    ``high_regions`` cells, the low side's weight as near its share of the piece's
    (``low_regions`` of ``low_regions + high_regions``) as the orders allow: the first order
    whose nearest connected cut misses by at most half the piece's heaviest cell, else the
    best of all orders, else (a piece of as many cells as regions) any cut, else a repaired
    cut. Where no fallback was needed before, the cut is the same: region maps do not move."""
    total = math.fsum(c.weight for c in piece)
    target = total * low_regions / (low_regions + high_regions)
    tolerance = max(c.weight for c in piece) / 2 * (1 + 1e-9) + 1e-12
    best: tuple[float, int, list[_Cell]] | None = None  # (miss, order rank, order), and k
    best_k = 0
    for rank, order in enumerate(_orders(piece, adjacency)):
        found = _nearest_connected_cut(order, low_regions, high_regions, target, adjacency)
        if found is None:
            continue
        k, miss = found
        if best is None or miss < best[0]:
            best, best_k = (miss, rank, order), k
        if miss <= tolerance:
            break
    if best is not None:
        order = best[2]
        return order[:best_k], order[best_k:]
    if len(piece) == low_regions + high_regions:  # one cell a region: any cut will do
        return piece[:low_regions], piece[low_regions:]
    return _repaired_cut(piece, low_regions, high_regions, target, adjacency, market)


def _orders(piece: list[_Cell], adjacency: Mapping[str, tuple[str, ...]]) -> Iterable[list[_Cell]]:
    """The orders a cut is sought along, best first (lazily): sweeps along the longer axis
    and the shorter one, then grown orders from either end of each."""
    width = max(c.x for c in piece) - min(c.x for c in piece)
    height = max(c.y for c in piece) - min(c.y for c in piece)
    along_x: Callable[[_Cell], tuple[float, float, str]] = lambda c: (c.x, c.y, c.id)  # noqa: E731
    along_y: Callable[[_Cell], tuple[float, float, str]] = lambda c: (c.y, c.x, c.id)  # noqa: E731
    keys = (along_x, along_y) if width >= height else (along_y, along_x)
    for key in keys:
        yield sorted(piece, key=key)
    for key in keys:
        yield _grown(piece, key, adjacency, reverse=False)
        yield _grown(piece, key, adjacency, reverse=True)[::-1]


def _grown(
    piece: list[_Cell],
    key: Callable[[_Cell], tuple[float, float, str]],
    adjacency: Mapping[str, tuple[str, ...]],
    *,
    reverse: bool,
) -> list[_Cell]:
    """The piece grown cell by cell from its first cell along ``key`` (its last if
    ``reverse``), always taking the next neighbour along ``key``: every prefix is
    connected."""
    by_id = {c.id: c for c in piece}
    sign = -1.0 if reverse else 1.0

    def priority(c: _Cell) -> tuple[float, float, str]:
        a, b, ident = key(c)
        return sign * a, sign * b, ident

    start = min(piece, key=priority)
    heap = [(priority(start), start.id)]
    seen = {start.id}
    order: list[_Cell] = []
    while heap:
        _, ident = heapq.heappop(heap)
        order.append(by_id[ident])
        for other in adjacency[ident]:
            if other in by_id and other not in seen:
                seen.add(other)
                heapq.heappush(heap, (priority(by_id[other]), other))
    return order


def _connected_prefixes(
    order: Sequence[_Cell], adjacency: Mapping[str, tuple[str, ...]]
) -> list[bool]:
    """``result[k]``: the first ``k`` cells of ``order`` are one connected set (k >= 1)."""
    parent: dict[str, str] = {}

    def root(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    components = 0
    result = [False]
    for cell in order:
        parent[cell.id] = cell.id
        components += 1
        for other in adjacency[cell.id]:
            if other in parent:
                a, b = root(cell.id), root(other)
                if a != b:
                    parent[a] = b
                    components -= 1
        result.append(components == 1)
    return result


def _nearest_connected_cut(
    order: list[_Cell],
    low_regions: int,
    high_regions: int,
    target: float,
    adjacency: Mapping[str, tuple[str, ...]],
) -> tuple[int, float] | None:
    """The position ``k`` (low side ``order[:k]``) nearest ``target`` among those leaving
    enough cells and both sides connected, and its miss; None if there is none."""
    size = len(order)
    prefixes = _connected_prefixes(order, adjacency)
    suffixes = _connected_prefixes(order[::-1], adjacency)
    best: tuple[float, int] | None = None
    weight = 0.0
    for k in range(1, size):
        weight += order[k - 1].weight
        if k < low_regions or size - k < high_regions:
            continue
        if not (prefixes[k] and suffixes[size - k]):
            continue
        miss = abs(weight - target)
        if best is None or miss < best[0]:
            best = (miss, k)
    return None if best is None else (best[1], best[0])


def _repaired_cut(
    piece: list[_Cell],
    low_regions: int,
    high_regions: int,
    target: float,
    adjacency: Mapping[str, tuple[str, ...]],
    market: str,
) -> tuple[list[_Cell], list[_Cell]]:
    """The last resort: along a grown order (connected low sides), the cut nearest the
    target whose high side, cut down to its heaviest connected piece, still has enough
    cells; the rest of the high side joins the low side (each such piece touches it)."""
    order = _grown(piece, lambda c: (c.x, c.y, c.id), adjacency, reverse=False)
    size = len(order)
    candidates: list[tuple[float, int]] = []
    weight = 0.0
    for k in range(1, size):
        weight += order[k - 1].weight
        if low_regions <= k <= size - high_regions:
            candidates.append((abs(weight - target), k))
    for _, k in sorted(candidates):
        high = _heaviest_component(order[k:], adjacency)
        if len(high) >= high_regions and size - len(high) >= low_regions:
            kept = {c.id for c in high}
            return [c for c in order if c.id not in kept], high
    if size >= low_regions + high_regions:
        # Always possible: a prefix of the grown order is connected, and its last
        # ``high_regions`` cells become a region each (a piece of as many cells as regions).
        return order[: size - high_regions], order[size - high_regions :]
    raise ValueError(
        f"market {market}: cannot cut {size} cells into {low_regions + high_regions} "
        "contiguous regions"
    )


def _heaviest_component(
    cells: list[_Cell], adjacency: Mapping[str, tuple[str, ...]]
) -> list[_Cell]:
    by_id = {c.id: c for c in cells}
    seen: set[str] = set()
    best: tuple[float, int, list[_Cell]] | None = None
    for cell in cells:
        if cell.id in seen:
            continue
        component = [cell]
        seen.add(cell.id)
        i = 0
        while i < len(component):
            for other in adjacency[component[i].id]:
                if other in by_id and other not in seen:
                    seen.add(other)
                    component.append(by_id[other])
            i += 1
        weight = math.fsum(c.weight for c in component)
        if best is None or (weight, len(component)) > (best[0], best[1]):
            best = (weight, len(component), component)
    assert best is not None
    return best[2]
