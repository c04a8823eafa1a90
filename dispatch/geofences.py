"""Geofenced places as the matcher sees them (``dispatch.matching.places.PlaceLocator``):
where a driver's ping lies among the markets' places (docs/MARKETPLACE.md, "Places:
geofences and queues").

A place is its polygon (entered when a ping is in it, its boundary included) and an exit
polygon: the polygon grown by the place's ``exit_margin_m`` (left only when a ping is
outside that), so a driver waiting on the boundary, whose pings scatter by some metres,
does not enter and leave over and over. The margin is measured in a local flat projection
around the place (metres east and north of its centre), exact enough for places of some
kilometres.

A ping costs one H3 cell (resolution 9, about 0.1 km2) and a dict lookup when it is near
no place, which is most pings. Each cell that meets a place's exit polygon is classified
when the places are built: inside the polygon for sure, inside the exit polygon for sure,
or undecided (it straddles a boundary); only an undecided cell costs a point test, on
shapely's prepared geometry. ``scripts/bench_geofences.py`` measures the cost per ping.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import h3

from dispatch.service_areas import parse_area

if TYPE_CHECKING:
    from shapely.geometry.base import BaseGeometry

    from dispatch.settings import MarketConfig

RESOLUTION = 9
SURE_MARGIN_DEG = 1e-7  # a cell counts as surely inside only with about 1 cm to spare
M_PER_DEG_LAT = 111_320.0

# a cell's verdict on one place: inside the polygon, inside the exit polygon (True: surely,
# None: test the point)
Verdict = tuple[int, bool | None, bool | None]


@dataclass(frozen=True, slots=True)
class Place:
    id: str
    name: str
    market: str
    queue: bool
    exit_margin_m: float
    area: BaseGeometry
    exit_area: BaseGeometry


def places_of(markets: Sequence[MarketConfig]) -> list[Place]:
    """Every market's places, in the order configured (a market's after the one before)."""
    out = []
    for m in markets:
        for p in m.places:
            area = parse_area(p.area, m.name, (m.lat, m.lng), m.radius_km, f"place {p.id!r}")
            out.append(Place(p.id, p.name or p.id, m.name, p.queue, p.exit_margin_m, area,
                             grown(area, p.exit_margin_m)))  # fmt: skip
    return out


def grown(area: BaseGeometry, margin_m: float) -> BaseGeometry:
    """``area`` grown by ``margin_m`` metres all round (in a flat projection around it)."""
    if margin_m <= 0:
        return area
    import shapely

    centre = area.centroid
    lat0, lng0 = centre.y, centre.x
    per_deg_lng = M_PER_DEG_LAT * math.cos(math.radians(lat0))

    def to_m(xy: Any) -> Any:
        out = xy.copy()
        out[:, 0] = (xy[:, 0] - lng0) * per_deg_lng
        out[:, 1] = (xy[:, 1] - lat0) * M_PER_DEG_LAT
        return out

    def to_deg(xy: Any) -> Any:
        out = xy.copy()
        out[:, 0] = xy[:, 0] / per_deg_lng + lng0
        out[:, 1] = xy[:, 1] / M_PER_DEG_LAT + lat0
        return out

    flat = shapely.transform(area, to_m)
    return shapely.transform(flat.buffer(margin_m), to_deg)


class Geofences:
    """The places, prepared: ``locate`` and ``queue_place`` per ping and per pickup."""

    def __init__(self, places: Sequence[Place]) -> None:
        import shapely
        from shapely.geometry import Polygon

        self.places = list(places)
        ids = [p.id for p in self.places]
        if len(set(ids)) != len(ids):
            raise ValueError("place ids are unique in the city")
        # a point in a polygon or on its boundary: ``covers``, without making a Point
        self._test = shapely.intersects_xy
        self._cells: dict[str, list[Verdict]] = {}
        for n, place in enumerate(self.places):
            for area in (place.area, place.exit_area):
                shapely.prepare(area)
                # built on first use: here, once, not by two shards' threads at once
                area.covers(area.representative_point())
            for cell in _cells_meeting(place.exit_area):
                hexagon = Polygon([(lng, lat) for lat, lng in h3.cell_to_boundary(cell)])
                if not place.exit_area.intersects(hexagon):
                    continue
                margin = hexagon.buffer(SURE_MARGIN_DEG)
                sure_in = place.area.contains(margin) or None
                sure_kept = sure_in or place.exit_area.contains(margin) or None
                self._cells.setdefault(cell, []).append((n, sure_in, sure_kept))

    def __len__(self) -> int:
        return len(self.places)

    @property
    def cells(self) -> int:
        """Cells that meet some place (the lookup table's size)."""
        return len(self._cells)

    def locate(self, lat: float, lng: float, inside: frozenset[str]) -> frozenset[str]:
        verdicts = self._cells.get(h3.latlng_to_cell(lat, lng, RESOLUTION))
        if verdicts is None:
            return frozenset()
        now: list[str] = []
        for n, sure_in, sure_kept in verdicts:
            place = self.places[n]
            was_in = place.id in inside
            if (sure_kept if was_in else sure_in) is True or self._test(
                place.exit_area if was_in else place.area, lng, lat
            ):
                now.append(place.id)
        return frozenset(now)

    def queue_place(self, lat: float, lng: float) -> str | None:
        verdicts = self._cells.get(h3.latlng_to_cell(lat, lng, RESOLUTION))
        if verdicts is None:
            return None
        for n, sure_in, _ in verdicts:
            place = self.places[n]
            if place.queue and (sure_in is True or self._test(place.area, lng, lat)):
                return place.id
        return None

    def queued(self) -> frozenset[str]:
        return frozenset(p.id for p in self.places if p.queue)

    def with_queue(self) -> list[Place]:
        return [p for p in self.places if p.queue]

    def point_in(self, place: Place, rng: random.Random) -> tuple[float, float]:
        """A point drawn uniformly inside ``place``'s polygon (by rejection in its bounding
        box; the centre of the polygon's representative point if none is found)."""
        west, south, east, north = place.area.bounds
        for _ in range(1_000):
            lat, lng = rng.uniform(south, north), rng.uniform(west, east)
            if self._test(place.area, lng, lat):
                return lat, lng
        inner = place.area.representative_point()
        return inner.y, inner.x


def _cells_meeting(area: BaseGeometry) -> set[str]:
    """The resolution-9 cells that overlap ``area`` (H3's overlap containment), and those of
    its vertices (so that no sliver is missed)."""
    shape = h3.geo_to_h3shape(area.__geo_interface__)
    cells = set(h3.h3shape_to_cells_experimental(shape, RESOLUTION, contain="overlap"))
    geoms = getattr(area, "geoms", [area])
    for polygon in geoms:
        for ring in [polygon.exterior, *polygon.interiors]:
            cells.update(h3.latlng_to_cell(y, x, RESOLUTION) for x, y in ring.coords)
    return cells
