"""Service areas (``dispatch.service_areas``): the point check agrees with an independent
ray-casting oracle on random polygons with holes, a point on the boundary is inside, and a
service area that cannot be used stops the settings with the reason."""

from __future__ import annotations

import itertools
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from dispatch.domain.errors import OutsideServiceArea
from dispatch.markets import MarketMap
from dispatch.service_areas import ServiceAreas, parse_area
from dispatch.settings import MarketConfig

CENTRE = (37.77, -122.42)


def star(centre: tuple[float, float], radii: list[float], turn: float = 0.0) -> list[list[float]]:
    """A closed ring of a star-shaped polygon around ``centre`` (degrees), [lng, lat]."""
    ring = []
    for i, r in enumerate(radii):
        angle = turn + 2 * math.pi * i / len(radii)
        ring.append([centre[1] + r * math.cos(angle), centre[0] + r * math.sin(angle)])
    return [*ring, ring[0]]


def inside_ring(lng: float, lat: float, ring: list[list[float]]) -> bool:
    """Even-odd ray casting, written here as the oracle (no geometry library)."""
    inside = False
    for (x1, y1), (x2, y2) in itertools.pairwise(ring):
        if (y1 > lat) != (y2 > lat):
            cross = x1 + (lat - y1) * (x2 - x1) / (y2 - y1)
            if lng < cross:
                inside = not inside
    return inside


def distance_to_ring(lng: float, lat: float, ring: list[list[float]]) -> float:
    best = math.inf
    for (x1, y1), (x2, y2) in itertools.pairwise(ring):
        dx, dy = x2 - x1, y2 - y1
        t = max(0.0, min(1.0, ((lng - x1) * dx + (lat - y1) * dy) / (dx * dx + dy * dy)))
        best = min(best, math.hypot(lng - (x1 + t * dx), lat - (y1 + t * dy)))
    return best


radii = st.lists(st.floats(0.05, 0.2), min_size=5, max_size=12)


@settings(max_examples=150, deadline=None)
@given(
    shell=radii,
    hole_scale=st.floats(0.1, 0.4),
    points=st.lists(
        st.tuples(st.floats(-0.25, 0.25), st.floats(-0.25, 0.25)), min_size=20, max_size=20
    ),
)
def test_the_check_agrees_with_ray_casting_on_polygons_with_holes(
    shell: list[float], hole_scale: float, points: list[tuple[float, float]]
) -> None:
    outer = star(CENTRE, shell)
    hole = star(CENTRE, [hole_scale * min(shell)] * 6, turn=0.3)[::-1]
    area = parse_area({"type": "Polygon", "coordinates": [outer, hole]}, "m", CENTRE, 60)
    areas = ServiceAreas({"m": area})
    for dlat, dlng in [(0.0, 0.0), (0.0, 0.04), *points]:  # the hole's centre, the shell's
        lat, lng = CENTRE[0] + dlat, CENTRE[1] + dlng
        if min(distance_to_ring(lng, lat, outer), distance_to_ring(lng, lat, hole)) < 1e-9:
            continue  # on an edge: the boundary rule, tested below
        expected = inside_ring(lng, lat, outer) and not inside_ring(lng, lat, hole)
        assert areas.covers("m", (lat, lng)) == expected


def test_a_point_on_the_boundary_is_inside_and_other_markets_are_unaffected() -> None:
    ring = [[-122.5, 37.7], [-122.3, 37.7], [-122.3, 37.85], [-122.5, 37.85], [-122.5, 37.7]]
    areas = ServiceAreas({"m": parse_area({"type": "Polygon", "coordinates": [ring]}, "m",
                                          CENTRE, 60)})  # fmt: skip
    assert areas.covers("m", (37.7, -122.4))  # on the southern edge
    assert areas.covers("m", (37.7, -122.5))  # a vertex
    assert not areas.covers("m", (37.69, -122.4))
    assert areas.covers("other", (0.0, 0.0)) and areas.covers(None, (0.0, 0.0))


SQUARE = [[-122.5, 37.7], [-122.3, 37.7], [-122.3, 37.85], [-122.5, 37.85], [-122.5, 37.7]]


@pytest.mark.parametrize(
    ("area", "reason"),
    [
        ({"type": "Point", "coordinates": [-122.4, 37.7]}, "expected Polygon or MultiPolygon"),
        ({"type": "Polygon", "coordinates": [SQUARE[:-1]]}, "not closed"),
        ({"type": "Polygon", "coordinates": [SQUARE[:3]]}, "at least 4 positions"),
        ({"type": "Polygon", "coordinates": [[[-122.5, 97.0], *SQUARE[1:-1], [-122.5, 97.0]]]},
         "out of range"),
        ({"type": "Polygon", "coordinates": [[[-122.5, 37.7], [-122.3, 37.85], [-122.3, 37.7],
                                              [-122.5, 37.85], [-122.5, 37.7]]]},
         "not a valid shape"),
        ({"type": "Polygon", "coordinates": [[[-121.0, 37.7], *SQUARE[1:-1], [-121.0, 37.7]]]},
         "outside the market's circle"),
        ({"type": "Polygon", "coordinates": [[["a", "b"], *SQUARE[1:]]]}, "[longitude, latitude]"),
        ({"type": "MultiPolygon", "coordinates": []}, "no coordinates"),
    ],
)  # fmt: skip
def test_an_unusable_service_area_stops_the_settings_with_the_reason(
    area: dict[str, Any], reason: str
) -> None:
    with pytest.raises(ValidationError, match=reason.replace("[", r"\[").replace("]", r"\]")):
        MarketConfig(name="sf", shard=0, lat=37.77, lng=-122.42, radius_km=40, service_area=area)


def test_the_market_map_names_the_stop_outside_its_market_s_area() -> None:
    market = MarketConfig(name="sf", shard=0, lat=37.77, lng=-122.42, radius_km=40,
                          service_area={"type": "Polygon", "coordinates": [SQUARE]})  # fmt: skip
    markets = MarketMap([market], 1)
    markets.check_stops((37.75, -122.4), (37.8, -122.35))  # both inside: nothing raised
    with pytest.raises(OutsideServiceArea, match=r"the drop-off \(37\.6, -122\.4\) is outside"):
        markets.check_stops((37.75, -122.4), (37.6, -122.4))
    with pytest.raises(OutsideServiceArea, match="the pickup"):
        markets.check_stops((37.6, -122.4), (37.6, -122.4))
    markets.check_stops((51.5, -0.12), (48.85, 2.35))  # outside every market: as before


def test_an_area_across_the_antimeridian_is_refused_with_how_to_write_it() -> None:
    ring = [[179.8, -17.1], [-179.8, -17.1], [-179.8, -16.9], [179.8, -16.9], [179.8, -17.1]]
    with pytest.raises(ValidationError, match="split the area at 180 degrees"):
        MarketConfig(name="fiji", shard=0, lat=-17.0, lng=179.95, radius_km=60,
                     service_area={"type": "Polygon", "coordinates": [ring]})  # fmt: skip
