"""The trip a quote prices (``dispatch.pricing.trip``): over the road network when one is
configured, else (and off it) the straight-line estimate: great-circle distance times the
road factor at the configured speed, in whole metres and seconds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from roads_data import helsinki_extract

from dispatch.bootstrap import build_application, build_road_trips, build_trips
from dispatch.matching.eta import StraightLineEta
from dispatch.matching.geo import haversine_m
from dispatch.pricing.trip import RoadTrip, StraightLineTrip, Trip
from dispatch.roads.graph import RoadGraph
from dispatch.roads.paths import ScipyPaths
from dispatch.roads.routes import RoadRouter
from dispatch.settings import Settings

LAT0, LNG0 = 60.17, 24.94
A, B = (37.7749, -122.4194), (37.62, -122.38)


def test_the_straight_line_trip_is_the_great_circle_times_the_road_factor() -> None:
    trip = StraightLineTrip(road_factor=1.4, speed_kmh=30.0).trip(A, B)
    metres = haversine_m(*A, *B)
    assert trip == Trip(round(metres * 1.4), round(metres * 1.4 / (30 / 3.6)), "straight_line")
    # the pickup ETAs' own pace
    assert trip.duration_s == round(metres * StraightLineEta(1.4, 30.0).seconds_per_m)


def test_a_trip_to_where_it_starts_is_nothing() -> None:
    assert StraightLineTrip().trip(A, A) == Trip(0, 0, "straight_line")


def _two_nodes_1km() -> RoadGraph:
    return RoadGraph(
        lat=np.array([LAT0, LAT0 + 0.009]), lng=np.array([LNG0, LNG0]),
        tail=np.array([0, 1], dtype=np.int32), head=np.array([1, 0], dtype=np.int32),
        length_m=np.array([1000.0, 1000.0]), seconds=np.array([100.0, 100.0]),
    )  # fmt: skip


def _road_trip() -> RoadTrip:
    graph = _two_nodes_1km()
    router = RoadRouter(graph, ScipyPaths(graph), StraightLineEta(), snap_m=200.0)
    return RoadTrip(router, StraightLineTrip())


def test_with_a_road_network_the_trip_is_the_fastest_route() -> None:
    trip = _road_trip().trip((LAT0, LNG0), (LAT0 + 0.009, LNG0))
    assert trip == Trip(1000, 100, "road_network")


def test_a_place_off_the_network_gets_the_straight_line_trip() -> None:
    far = (LAT0 + 0.05, LNG0)  # 5 km from every road
    assert _road_trip().trip((LAT0, LNG0), far) == StraightLineTrip().trip((LAT0, LNG0), far)
    assert _road_trip().trip((LAT0, LNG0), far).estimated_by == "straight_line"


def test_the_engine_routes_quotes_over_the_configured_road_network() -> None:
    trips = build_trips(Settings(road_network=helsinki_extract()))
    start, end = (60.1660, 24.9410), (60.1750, 24.9500)
    trip = trips.trip(start, end)
    assert trip.estimated_by == "road_network"
    assert trip.distance_m >= haversine_m(*start, *end)
    assert build_trips(Settings()).trip(start, end).estimated_by == "straight_line"


@pytest.mark.parametrize("factor", [1.0, 1.35, 2.0])
def test_the_straight_line_trip_follows_the_settings(factor: float) -> None:
    trips = build_trips(Settings(road_factor=factor, speed_kmh=36.0))
    metres = haversine_m(*A, *B)
    assert trips.trip(A, B) == Trip(
        round(metres * factor), round(metres * factor / 10), "straight_line"
    )


def test_the_shards_meter_trips_with_the_quotes_own_road_estimator(tmp_path: Path) -> None:
    """An unquoted ride in a road-network market is metered on the distance its quote
    would have given: the shard's policy routes with the very estimator quotes use, and
    names the graph (file, digest, speed table) for the log."""
    settings = Settings(data_dir=tmp_path, road_network=helsinki_extract())
    road = build_road_trips(settings)
    assert road is not None and build_trips(settings) is road.estimator
    assert road.graph.startswith("Helsinki.osm.pbf") and " sha256:" in road.graph
    assert " speeds v" in road.graph
    app = build_application(settings, 0)
    try:
        assert app.policy.road_trips is road
    finally:
        app.close()
    assert build_road_trips(Settings(data_dir=tmp_path)) is None  # no network: straight line
