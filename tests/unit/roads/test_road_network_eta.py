"""Pickup ETAs routed over a road graph (``dispatch.roads.eta``): equal to a plain Dijkstra
from each driver to the pickup written here, with the documented access legs, fallback for
points off the network, and ``inf`` for drivers that cannot reach the pickup in time."""

from __future__ import annotations

import heapq
import math
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dispatch.matching.eta import StraightLineEta
from dispatch.matching.geo import haversine_m
from dispatch.roads.eta import RoadNetworkEta
from dispatch.roads.graph import RoadGraph

LAT0, LNG0 = 60.17, 24.94
STEP = 0.001  # about 111 m north-south, 55 m east-west
SIDE = 12
FALLBACK = StraightLineEta()
ACCESS_S_PER_M = FALLBACK.etas_s(0, 0, [(0, 0, 1.0)])[0]


def grid(seed: int = 3) -> RoadGraph:
    """A SIDE x SIDE grid of streets; every third row one-way eastwards, random speeds."""
    rng = random.Random(seed)
    lat = [LAT0 + (i // SIDE) * STEP for i in range(SIDE * SIDE)]
    lng = [LNG0 + (i % SIDE) * STEP for i in range(SIDE * SIDE)]
    tail: list[int] = []
    head: list[int] = []
    length: list[float] = []
    seconds: list[float] = []

    def street(a: int, b: int, both: bool) -> None:
        metres = haversine_m(lat[a], lng[a], lat[b], lng[b])
        kmh = rng.choice([20.0, 30.0, 50.0])
        for u, v in ((a, b), (b, a)) if both else ((a, b),):
            tail.append(u), head.append(v), length.append(metres)
            seconds.append(metres / (kmh / 3.6))

    for r in range(SIDE):
        for c in range(SIDE):
            i = r * SIDE + c
            if c + 1 < SIDE:
                street(i, i + 1, both=r % 3 != 1)
            if r + 1 < SIDE:
                street(i, i + SIDE, both=True)
    return RoadGraph(np.array(lat), np.array(lng), np.array(tail, dtype=np.int32),
                     np.array(head, dtype=np.int32), np.array(length),
                     np.array(seconds))  # fmt: skip


def plain_dijkstra(graph: RoadGraph, source: int, target: int) -> float:
    """Shortest driving time from ``source`` to ``target`` (the forward graph, heapq)."""
    out: dict[int, list[tuple[int, float]]] = {}
    for u, v, s in zip(graph.tail, graph.head, graph.seconds, strict=True):
        out.setdefault(int(u), []).append((int(v), float(s)))
    best = {source: 0.0}
    queue = [(0.0, source)]
    while queue:
        t, u = heapq.heappop(queue)
        if u == target:
            return t
        if t > best.get(u, math.inf):
            continue
        for v, s in out.get(u, []):
            if t + s < best.get(v, math.inf):
                best[v] = t + s
                heapq.heappush(queue, (t + s, v))
    return math.inf


def _source(graph: RoadGraph, node: int, pickup: tuple[float, float]) -> tuple[float, float, float]:
    lat, lng = float(graph.lat[node]), float(graph.lng[node])
    return (lat, lng, haversine_m(lat, lng, *pickup))


def test_etas_equal_a_plain_dijkstra_from_each_driver_to_the_pickup() -> None:
    graph = grid()
    eta = RoadNetworkEta(graph, max_eta_s=10_000, fallback=FALLBACK)
    rng = random.Random(7)
    for _ in range(20):
        pickup_node = rng.randrange(graph.nodes)
        pickup = (float(graph.lat[pickup_node]), float(graph.lng[pickup_node]))
        drivers = rng.sample(range(graph.nodes), 8)

        got = eta.etas_s(*pickup, [_source(graph, d, pickup) for d in drivers])

        expected = [plain_dijkstra(graph, d, pickup_node) for d in drivers]
        assert got == pytest.approx(expected, abs=1e-6)


def test_one_way_streets_are_driven_one_way_only() -> None:
    graph = grid()
    eta = RoadNetworkEta(graph, max_eta_s=10_000, fallback=FALLBACK)
    west, east = SIDE, SIDE + 5  # on row 1, one-way eastwards
    to_east = eta.etas_s(float(graph.lat[east]), float(graph.lng[east]),
                         [_source(graph, west, (graph.lat[east], graph.lng[east]))])[0]  # fmt: skip
    to_west = eta.etas_s(float(graph.lat[west]), float(graph.lng[west]),
                         [_source(graph, east, (graph.lat[west], graph.lng[west]))])[0]  # fmt: skip
    assert to_west > to_east, "westwards the driver goes round by another row"


def test_a_point_off_a_node_adds_its_access_legs_at_the_straight_line_pace() -> None:
    graph = grid()
    eta = RoadNetworkEta(graph, max_eta_s=10_000, fallback=FALLBACK)
    pickup_node, driver_node = 0, 5
    pickup = (float(graph.lat[pickup_node]) - 0.0002, float(graph.lng[pickup_node]))  # 22 m
    driver_lat, driver_lng = float(graph.lat[driver_node]) + 0.0003, float(graph.lng[driver_node])

    (got,) = eta.etas_s(*pickup, [(driver_lat, driver_lng, 600.0)])

    legs = haversine_m(*pickup, graph.lat[pickup_node], graph.lng[pickup_node]) + haversine_m(
        driver_lat, driver_lng, graph.lat[driver_node], graph.lng[driver_node]
    )
    driven = plain_dijkstra(graph, driver_node, pickup_node)
    assert got == pytest.approx(driven + legs * ACCESS_S_PER_M, rel=0.01)


def test_points_off_the_network_are_estimated_in_a_straight_line() -> None:
    graph = grid()
    eta = RoadNetworkEta(graph, max_eta_s=10_000, fallback=FALLBACK, snap_m=200)
    far = (LAT0 + 0.05, LNG0)  # 5.5 km north of the grid
    on_road = (float(graph.lat[3]), float(graph.lng[3]))
    pickup = (float(graph.lat[0]), float(graph.lng[0]))

    from_far, _ = eta.etas_s(*pickup, [(*far, 5_500.0), (*on_road, 150.0)])
    all_straight = eta.etas_s(*far, [(*on_road, 5_400.0)])

    assert from_far == pytest.approx(FALLBACK.etas_s(*pickup, [(*far, 5_500.0)])[0])
    assert all_straight == pytest.approx(FALLBACK.etas_s(*far, [(*on_road, 5_400.0)]))


def test_a_driver_that_cannot_reach_the_pickup_in_time_or_at_all_is_unreachable() -> None:
    graph = grid()
    island = RoadGraph(  # node 1 only has a way out: nothing reaches it, it reaches node 0
        lat=np.array([LAT0, LAT0 + STEP]), lng=np.array([LNG0, LNG0]),
        tail=np.array([1], dtype=np.int32), head=np.array([0], dtype=np.int32),
        length_m=np.array([111.0]), seconds=np.array([10.0]),
    )  # fmt: skip
    cut_off = RoadNetworkEta(island, max_eta_s=100, fallback=FALLBACK)
    driver = (float(island.lat[0]), float(island.lng[0]), 111.0)
    (unreachable,) = cut_off.etas_s(float(island.lat[1]), float(island.lng[1]), [driver])
    assert unreachable == math.inf
    too_far = RoadNetworkEta(graph, max_eta_s=5, fallback=FALLBACK)
    far_node = graph.nodes - 1
    pickup = (float(graph.lat[0]), float(graph.lng[0]))
    assert too_far.etas_s(*pickup, [_source(graph, far_node, pickup)]) == [math.inf]


def test_of_parallel_edges_the_fastest_is_driven() -> None:
    parallel = RoadGraph(
        lat=np.array([LAT0, LAT0 + STEP]), lng=np.array([LNG0, LNG0]),
        tail=np.array([0, 0, 1], dtype=np.int32), head=np.array([1, 1, 0], dtype=np.int32),
        length_m=np.array([111.0, 111.0, 111.0]), seconds=np.array([30.0, 12.0, 12.0]),
    )  # fmt: skip
    eta = RoadNetworkEta(parallel, max_eta_s=100, fallback=FALLBACK)
    (t,) = eta.etas_s(float(parallel.lat[1]), float(parallel.lng[1]),
                      [(float(parallel.lat[0]), float(parallel.lng[0]), 111.0)])  # fmt: skip
    assert t == pytest.approx(12.0)


def _two_nodes_1km() -> RoadGraph:
    return RoadGraph(
        lat=np.array([LAT0, LAT0 + 0.009]), lng=np.array([LNG0, LNG0]),
        tail=np.array([0, 1], dtype=np.int32), head=np.array([1, 0], dtype=np.int32),
        length_m=np.array([1000.0, 1000.0]), seconds=np.array([100.0, 100.0]),
    )  # fmt: skip


def test_a_driver_at_the_pickup_never_ranks_behind_one_away_from_it() -> None:
    """Both snap to the pickup's node: no road between them, the straight line."""
    eta = RoadNetworkEta(_two_nodes_1km(), max_eta_s=900, fallback=FALLBACK)
    pickup = (LAT0 + 0.003, LNG0)  # 334 m from node 0 along the road
    at_pickup, at_node = eta.etas_s(*pickup, [(*pickup, 0.0), (LAT0, LNG0, 334.0)])
    assert at_pickup == 0.0 and at_node > 0.0


def test_a_driver_exactly_at_the_bound_is_kept() -> None:
    eta = RoadNetworkEta(_two_nodes_1km(), max_eta_s=100.0, fallback=FALLBACK)
    assert eta.etas_s(LAT0 + 0.009, LNG0, [(LAT0, LNG0, 1000.0)]) == [pytest.approx(100.0)]


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    slow=st.floats(1.0, 50.0),  # how much slower than the straight-line pace streets are
    bound=st.sampled_from([120.0, 900.0, 5_000.0]),
)
def test_the_first_bounded_search_never_changes_an_answer(
    seed: int, slow: float, bound: float
) -> None:
    """Streets slower than the straight-line pace put candidates beyond the first search's
    bound: the second search must give each its exact time, or inf beyond the full bound."""
    base = grid(seed)
    graph = RoadGraph(base.lat, base.lng, base.tail, base.head, base.length_m,
                      base.length_m * ACCESS_S_PER_M * slow)  # fmt: skip
    eta = RoadNetworkEta(graph, max_eta_s=bound, fallback=FALLBACK)
    rng = random.Random(seed)
    pickup_node = rng.randrange(graph.nodes)
    pickup = (float(graph.lat[pickup_node]), float(graph.lng[pickup_node]))
    drivers = [d for d in rng.sample(range(graph.nodes), 6) if d != pickup_node]

    got = eta.etas_s(*pickup, [_source(graph, d, pickup) for d in drivers])

    exact = [plain_dijkstra(graph, d, pickup_node) for d in drivers]
    expected = [t if t <= bound else math.inf for t in exact]
    assert got == pytest.approx(expected, abs=1e-6)
