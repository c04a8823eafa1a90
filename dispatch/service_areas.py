"""Service areas: where each market takes rides (docs/MARKETPLACE.md, "Places: service
areas").

A market may have a service area, a GeoJSON ``Polygon`` or ``MultiPolygon`` (holes
respected) in its ``DISPATCH_MARKETS`` entry (``"service_area"``). A ride whose pickup or
drop-off lies in that market (``MarketMap.market_of``) but outside its area is refused
with ``outside_service_area``, naming the point; a point on the area's boundary is inside
(``covers``). A market with no service area takes rides anywhere in it, as before, and so
do places outside every market (the default rule and the ``elsewhere`` fares). The check
is shapely's, on a prepared geometry (``tests/unit/test_service_areas.py`` holds it to an
independent ray-casting oracle).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import h3

from dispatch.domain.errors import OutsideServiceArea

if TYPE_CHECKING:  # shapely is imported only where a market has a service area (~0.13 s)
    from shapely.geometry import MultiPolygon, Polygon

Place = tuple[float, float]  # latitude, longitude
KINDS = ("Polygon", "MultiPolygon")


class ServiceAreaError(ValueError):
    """A service area that cannot be used, and why."""


def parse_area(
    geojson: Mapping[str, Any],
    market: str,
    centre: Place,
    radius_km: float,
    what: str = "service_area",
) -> Polygon | MultiPolygon:
    """The market's area from its GeoJSON geometry (longitude first, as GeoJSON has it):
    ``ServiceAreaError`` with the reason when it is not a Polygon or MultiPolygon, a ring
    is not closed or has fewer than four positions, a coordinate is out of range, the
    shape is not valid (self-crossing, a hole outside its shell...), or a vertex lies
    outside the market's circle. ``what``: the area's name in the reasons (a place's too)."""
    import shapely
    from shapely.geometry import MultiPolygon, Polygon, shape
    from shapely.validation import explain_validity

    where = f"market {market!r}: {what}"
    kind = geojson.get("type")
    if kind not in KINDS:
        raise ServiceAreaError(f"{where}: type {kind!r}, expected Polygon or MultiPolygon")
    coordinates = geojson.get("coordinates")
    polygons = [coordinates] if kind == "Polygon" else coordinates
    if not isinstance(polygons, list) or not polygons:
        raise ServiceAreaError(f"{where}: no coordinates")
    for polygon in polygons:
        if not isinstance(polygon, list) or not polygon:
            raise ServiceAreaError(f"{where}: a polygon without rings")
        for ring in polygon:
            _check_ring(ring, where, centre, radius_km)
    try:
        area = shape({"type": kind, "coordinates": coordinates})
    except (TypeError, ValueError, shapely.errors.ShapelyError) as error:
        raise ServiceAreaError(f"{where}: {error}") from None
    if not area.is_valid:
        raise ServiceAreaError(f"{where}: not a valid shape ({explain_validity(area)})")
    if area.is_empty or area.area == 0 or not isinstance(area, Polygon | MultiPolygon):
        raise ServiceAreaError(f"{where}: the shape has no area")
    return area


def _check_ring(ring: Any, where: str, centre: Place, radius_km: float) -> None:
    if not isinstance(ring, list) or len(ring) < 4:
        raise ServiceAreaError(f"{where}: a ring needs at least 4 positions, first = last")
    for position in ring:
        if (
            not isinstance(position, list | tuple)
            or len(position) < 2
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in position)
        ):
            raise ServiceAreaError(f"{where}: a position is not [longitude, latitude]")
        lng, lat = float(position[0]), float(position[1])
        if not (-180.0 <= lng <= 180.0 and -90.0 <= lat <= 90.0):
            raise ServiceAreaError(f"{where}: position [{lng}, {lat}] is out of range")
        if h3.great_circle_distance((lat, lng), centre, unit="km") > radius_km:
            raise ServiceAreaError(
                f"{where}: position [{lng}, {lat}] is outside the market's circle "
                f"({radius_km:g} km around {centre[0]}, {centre[1]})"
            )
    if list(ring[0][:2]) != list(ring[-1][:2]):
        raise ServiceAreaError(f"{where}: a ring is not closed (its first and last differ)")
    for one, other in itertools.pairwise(ring):
        if abs(float(one[0]) - float(other[0])) > 180.0:
            raise ServiceAreaError(
                f"{where}: an edge crosses the antimeridian ({one[0]} to {other[0]}): split "
                "the area at 180 degrees into a MultiPolygon"
            )


def area_km2(area: Polygon | MultiPolygon) -> float:
    """The area's size in km2 (degrees scaled at its centroid's latitude: close enough for
    a limit on places of some kilometres)."""
    km_per_deg = 111.32
    scale = km_per_deg * km_per_deg * math.cos(math.radians(area.centroid.y))
    return float(area.area) * scale


class ServiceAreas:
    """Each market's area, prepared for fast point checks."""

    def __init__(self, areas: Mapping[str, Polygon | MultiPolygon]) -> None:
        self._areas = dict(areas)
        self._point: Any = None
        if self._areas:
            import shapely

            self._point = shapely.Point
            for area in self._areas.values():
                shapely.prepare(area)
                # GEOS builds a prepared shape's index on first use: built here, once, not
                # by two request threads at the same moment (libgeos/geos#825)
                area.covers(area.representative_point())

    def __bool__(self) -> bool:
        return bool(self._areas)

    def covers(self, market: str | None, place: Place) -> bool:
        """Whether ``place`` is served in ``market`` (a market without an area, or none:
        everywhere)."""
        area = self._areas.get(market) if market is not None else None
        return area is None or bool(area.covers(self._point(place[1], place[0])))

    def check(self, stops: Sequence[tuple[str, str | None, Place]]) -> None:
        """``OutsideServiceArea`` naming the first stop (its name, its market and place) that
        lies outside its market's area."""
        for name, market, place in stops:
            if not self.covers(market, place):
                raise OutsideServiceArea(
                    f"the {name} ({place[0]}, {place[1]}) is outside the service area of "
                    f"market {market!r}"
                )
