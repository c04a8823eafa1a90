"""Routes over a road graph (``dispatch.roads.routes``): a route goes from its start to its
end; its time is what the road ETA says for the same two points (the same rules); a
driver's position always lies on the route and moves forward along it; points off the
network, two points at one node and two nodes with no path give a straight route."""

from __future__ import annotations

import functools
import math
import random
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from roads_data import helsinki_graph

from dispatch.adapters.networkit.paths import NetworkitPaths
from dispatch.matching.eta import StraightLineEta
from dispatch.matching.geo import haversine_m
from dispatch.roads.eta import RoadNetworkEta
from dispatch.roads.graph import RoadGraph
from dispatch.roads.paths import ScipyPaths, ShortestPaths
from dispatch.roads.routes import RoadRouter, Route, still

STRAIGHT = StraightLineEta()
PACE = STRAIGHT.seconds_per_m
SNAP_M = 150.0
ADAPTERS: dict[str, Callable[[RoadGraph], ShortestPaths]] = {
    "scipy": ScipyPaths,
    "networkit": NetworkitPaths,
}
# Around the Helsinki extract (60.164-60.179 N, 24.935-24.953 E) and a little beyond it,
# so that some points are farther than SNAP_M from every road.
LATS = st.floats(60.1600, 60.1830)
LNGS = st.floats(24.9300, 24.9590)
POINTS = st.tuples(LATS, LNGS)
FRACTIONS = st.lists(st.floats(0.0, 1.0), min_size=1, max_size=25)


@functools.cache
def helsinki(adapter: str) -> tuple[RoadRouter, RoadNetworkEta]:
    """A router and the road ETA over the same graph, search and straight-line pace."""
    graph = helsinki_graph()
    paths = ADAPTERS[adapter](graph)
    router = RoadRouter(graph, paths, STRAIGHT, snap_m=SNAP_M)
    eta = RoadNetworkEta(graph, max_eta_s=1e9, fallback=STRAIGHT, snap_m=SNAP_M, paths=paths)
    return router, eta


@pytest.fixture(params=list(ADAPTERS))
def adapter(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _node(graph: RoadGraph, i: int) -> tuple[float, float]:
    return float(graph.lat[i]), float(graph.lng[i])


# Geometry in local metres (flat at the route's latitude: exact enough over a few km)

M_PER_DEG = 111_320.0


def _xy(lat: float, lng: float, lat0: float) -> tuple[float, float]:
    return lng * M_PER_DEG * math.cos(math.radians(lat0)), lat * M_PER_DEG


def _places_on(route: Route, point: tuple[float, float], tol_m: float = 1e-3) -> list[float]:
    """Where on the polyline ``point`` lies, as segment index + fraction along it (one value
    per segment within ``tol_m`` of it: a polyline may pass one place twice)."""
    lat0 = route.lat[0]
    px, py = _xy(*point, lat0)
    places = []
    for k in range(len(route.lat) - 1):
        ax, ay = _xy(route.lat[k], route.lng[k], lat0)
        bx, by = _xy(route.lat[k + 1], route.lng[k + 1], lat0)
        dx, dy = bx - ax, by - ay
        span = dx * dx + dy * dy
        u = 0.0 if span == 0 else min(1.0, max(0.0, ((px - ax) * dx + (py - ay) * dy) / span))
        if math.hypot(px - (ax + u * dx), py - (ay + u * dy)) <= tol_m:
            places.append(k + u)
    if len(route.lat) == 1:  # a route that stays put: its one point
        x, y = _xy(route.lat[0], route.lng[0], lat0)
        places = [0.0] if math.hypot(px - x, py - y) <= tol_m else []
    return places


def _assert_on_and_forward(route: Route, fractions: list[float]) -> None:
    """Each position lies on the polyline, and there is a way of reading them along it
    that never goes back (taking, each time, the earliest place not behind the last)."""
    reached = 0.0
    for f in sorted(fractions):
        places = _places_on(route, route.position(f))
        assert places, f"position({f}) = {route.position(f)} is off the route"
        ahead = [p for p in places if p >= reached - 1e-9]
        assert ahead, f"position({f}) is behind position at an earlier fraction"
        reached = min(ahead)


# On the Helsinki graph


@settings(max_examples=60, deadline=None, derandomize=True)
@given(start=POINTS, end=POINTS)
def test_a_route_starts_at_its_start_and_ends_at_its_end(
    start: tuple[float, float], end: tuple[float, float]
) -> None:
    for name in ADAPTERS:
        route = helsinki(name)[0].route(start, end)
        assert (route.lat[0], route.lng[0]) == start
        assert route.end == end
        assert route.position(0.0) == start
        assert route.position(1.0) == end
        assert len(route.lat) == len(route.lng) == len(route.at_s) == len(route.at_m)


@settings(max_examples=80, deadline=None, derandomize=True)
@given(start=POINTS, end=POINTS)
def test_a_routes_time_is_what_the_road_eta_says_for_the_same_two_points(
    start: tuple[float, float], end: tuple[float, float]
) -> None:
    for name in ADAPTERS:
        router, eta = helsinki(name)
        route = router.route(start, end)
        (expected,) = eta.etas_s(*end, [(*start, haversine_m(*start, *end))])
        assert route.seconds == pytest.approx(expected, rel=1e-9, abs=1e-6), name


def test_routes_between_road_nodes_are_on_roads_and_timed_as_the_road_eta(adapter: str) -> None:
    router, eta = helsinki(adapter)
    graph = router.graph
    rng = random.Random(4)
    for _ in range(25):
        a, b = rng.sample(range(graph.nodes), 2)
        start, end = _node(graph, a), _node(graph, b)

        route = router.route(start, end)

        assert route.on_roads
        assert len(route.lat) >= 4  # the start, at least two nodes, the end
        (expected,) = eta.etas_s(*end, [(*start, haversine_m(*start, *end))])
        assert route.seconds == pytest.approx(expected, rel=1e-9, abs=1e-6)
        assert route.metres >= haversine_m(*start, *end) - 1.0


@settings(max_examples=60, deadline=None, derandomize=True)
@given(start=POINTS, end=POINTS, fractions=FRACTIONS)
def test_a_drivers_position_lies_on_the_route_and_moves_forward_along_it(
    start: tuple[float, float], end: tuple[float, float], fractions: list[float]
) -> None:
    route = helsinki("networkit")[0].route(start, end)
    _assert_on_and_forward(route, [0.0, *fractions, 1.0])


def test_the_position_at_each_points_time_is_that_point(adapter: str) -> None:
    router, _ = helsinki(adapter)
    graph = router.graph
    route = router.route(_node(graph, 10), _node(graph, graph.nodes - 10))
    assert route.on_roads and route.seconds > 0
    for i, t in enumerate(route.at_s):
        if i + 1 < len(route.at_s) and route.at_s[i + 1] == t:
            continue  # a zero-second step: the position at that time is the step's end
        lat, lng = route.position(t / route.seconds)
        assert haversine_m(lat, lng, route.lat[i], route.lng[i]) < 1e-3


@settings(max_examples=60, deadline=None, derandomize=True)
@given(start=POINTS, end=POINTS, fractions=FRACTIONS)
def test_metres_driven_start_at_zero_grow_and_end_at_the_routes_metres(
    start: tuple[float, float], end: tuple[float, float], fractions: list[float]
) -> None:
    route = helsinki("scipy")[0].route(start, end)
    metres = [route.metres_at(f) for f in sorted(fractions)]
    assert metres == sorted(metres)
    assert route.metres_at(0.0) == 0.0
    assert route.metres_at(1.0) == route.metres
    assert all(0.0 <= m <= route.metres for m in metres)


def test_a_point_far_from_every_road_gives_a_straight_route_at_the_straight_line_pace(
    adapter: str,
) -> None:
    router, eta = helsinki(adapter)
    at_sea = (60.150, 24.960)  # south of the extract, in the harbour
    on_road = _node(router.graph, 0)
    for start, end in ((at_sea, on_road), (on_road, at_sea)):
        route = router.route(start, end)

        metres = haversine_m(*start, *end)
        assert not route.on_roads
        assert (route.lat, route.lng) == ((start[0], end[0]), (start[1], end[1]))
        assert route.metres == pytest.approx(metres)
        assert route.seconds == pytest.approx(metres * PACE)
        assert route.seconds == pytest.approx(eta.etas_s(*end, [(*start, metres)])[0])
        _assert_on_and_forward(route, [0.0, 0.1, 0.5, 0.9, 1.0])


def test_two_points_at_one_node_give_a_straight_route(adapter: str) -> None:
    router, _ = helsinki(adapter)
    node = _node(router.graph, 100)
    start, end = (node[0] + 0.00002, node[1]), (node[0] - 0.00002, node[1])  # 2 m either side
    assert router.snap(*start) == router.snap(*end) == node

    route = router.route(start, end)

    assert not route.on_roads
    assert len(route.lat) == 2
    assert route.seconds == pytest.approx(haversine_m(*start, *end) * PACE)


def test_snap_gives_the_nearest_nodes_coordinates_or_the_point_itself_off_the_network(
    adapter: str,
) -> None:
    router, _ = helsinki(adapter)
    graph = router.graph
    for i in (0, 7, 500, graph.nodes - 1):
        lat, lng = _node(graph, i)
        assert router.snap(lat, lng) == (lat, lng)
    near = (60.1699, 24.9384)
    snapped = router.snap(*near)
    distances = [haversine_m(*near, float(a), float(b)) for a, b in zip(graph.lat, graph.lng,
                                                                          strict=True)]  # fmt: skip
    assert snapped == _node(graph, int(np.argmin(distances)))
    assert router.snap(60.150, 24.960) == (60.150, 24.960)


# On graphs made by hand

LAT0, LNG0 = 60.17, 24.94


def _one_way() -> RoadGraph:
    """Two nodes about 1 km apart and one road, from 0 to 1 (100 s)."""
    return RoadGraph(
        lat=np.array([LAT0, LAT0 + 0.009]), lng=np.array([LNG0, LNG0]),
        tail=np.array([0], dtype=np.int32), head=np.array([1], dtype=np.int32),
        length_m=np.array([1_200.0]), seconds=np.array([100.0]),
    )  # fmt: skip


def test_a_route_is_its_access_legs_and_the_roads_fastest_edges(adapter: str) -> None:
    graph = _one_way()
    router = RoadRouter(graph, ADAPTERS[adapter](graph), STRAIGHT, snap_m=200)
    start, end = (LAT0 - 0.0005, LNG0), (LAT0 + 0.0095, LNG0)  # 56 m before 0, 56 m past 1

    route = router.route(start, end)

    legs = haversine_m(*start, LAT0, LNG0) + haversine_m(*end, LAT0 + 0.009, LNG0)
    assert route.on_roads
    assert route.lat == (start[0], LAT0, LAT0 + 0.009, end[0])
    assert route.seconds == pytest.approx(100.0 + legs * PACE, rel=1e-3)
    assert route.metres == pytest.approx(1_200.0 + legs, rel=1e-3)


def test_two_nodes_with_no_path_between_them_give_a_straight_route(adapter: str) -> None:
    graph = _one_way()
    router = RoadRouter(graph, ADAPTERS[adapter](graph), STRAIGHT, snap_m=200)
    start, end = (LAT0 + 0.009, LNG0), (LAT0, LNG0)  # against the one-way road

    route = router.route(start, end)

    assert not route.on_roads
    assert len(route.lat) == 2
    assert route.seconds == pytest.approx(haversine_m(*start, *end) * PACE)


def test_of_parallel_roads_a_route_takes_the_faster(adapter: str) -> None:
    graph = RoadGraph(
        lat=np.array([LAT0, LAT0 + 0.009]), lng=np.array([LNG0, LNG0]),
        tail=np.array([0, 0], dtype=np.int32), head=np.array([1, 1], dtype=np.int32),
        length_m=np.array([1_500.0, 1_000.0]), seconds=np.array([60.0, 90.0]),
    )  # fmt: skip
    router = RoadRouter(graph, ADAPTERS[adapter](graph), STRAIGHT, snap_m=200)

    route = router.route((LAT0, LNG0), (LAT0 + 0.009, LNG0))

    assert route.seconds == pytest.approx(60.0)
    assert route.metres == pytest.approx(1_500.0)


def test_still_stays_put() -> None:
    here = still(60.17, 24.94)
    assert here.seconds == 0.0 and here.metres == 0.0
    assert not here.on_roads
    assert here.end == (60.17, 24.94)
    for f in (0.0, 0.3, 1.0, 2.0, -1.0):
        assert here.position(f) == (60.17, 24.94)
        assert here.metres_at(f) == 0.0
