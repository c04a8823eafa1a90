"""The road ETA over networkit's search (the engine's) gives the answers it gives over the
scipy reference (the default) on the Helsinki graph: drivers on the roads, off them, at the
pickup's node, beyond the bound."""

from __future__ import annotations

import functools
import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from roads_data import helsinki_graph

from dispatch.adapters.networkit.paths import NetworkitPaths
from dispatch.matching.eta import Source, StraightLineEta
from dispatch.matching.geo import haversine_m
from dispatch.roads.eta import RoadNetworkEta

FALLBACK = StraightLineEta()
# Around the extract (60.164-60.179 N, 24.935-24.953 E) and a little beyond: some points
# are farther than the snapping distance from every road.
POINTS = st.tuples(st.floats(60.1600, 60.1830), st.floats(24.9300, 24.9590))


@functools.cache
def _both(max_eta_s: float, snap_m: float = 150.0) -> tuple[RoadNetworkEta, RoadNetworkEta]:
    graph = helsinki_graph()
    default = RoadNetworkEta(graph, max_eta_s=max_eta_s, fallback=FALLBACK, snap_m=snap_m)
    engine = RoadNetworkEta(graph, max_eta_s=max_eta_s, fallback=FALLBACK, snap_m=snap_m,
                            paths=NetworkitPaths(graph))  # fmt: skip
    return default, engine


def _sources(pickup: tuple[float, float], points: list[tuple[float, float]]) -> list[Source]:
    return [(lat, lng, haversine_m(lat, lng, *pickup)) for lat, lng in points]


@pytest.mark.parametrize("max_eta_s", [30.0, 60.0, 120.0, 1e9])
def test_networkit_and_scipy_give_the_same_etas_from_road_nodes(max_eta_s: float) -> None:
    default, engine = _both(max_eta_s)
    graph = helsinki_graph()
    rng = random.Random(int(max_eta_s) % 1000)
    infinite = finite = 0
    for _ in range(20):
        pickup_node = rng.randrange(graph.nodes)
        pickup = (float(graph.lat[pickup_node]), float(graph.lng[pickup_node]))
        nodes = [pickup_node, *rng.sample(range(graph.nodes), 30)]
        sources = _sources(pickup, [(float(graph.lat[n]), float(graph.lng[n])) for n in nodes])

        expected = default.etas_s(*pickup, sources)
        got = engine.etas_s(*pickup, sources)

        assert got == pytest.approx(expected, rel=1e-9, abs=1e-6)
        infinite += sum(math.isinf(t) for t in expected)
        finite += sum(math.isfinite(t) for t in expected)
    assert finite > 0
    if max_eta_s < 1e9:
        assert infinite > 0, "the bound cut some drivers off"


@settings(max_examples=60, deadline=None, derandomize=True)
@given(pickup=POINTS, drivers=st.lists(POINTS, max_size=12), bound=st.sampled_from([120.0, 1e9]))
def test_networkit_and_scipy_give_the_same_etas_from_any_points(
    pickup: tuple[float, float], drivers: list[tuple[float, float]], bound: float
) -> None:
    default, engine = _both(bound)
    sources = _sources(pickup, [*drivers, pickup])  # and one driver at the pickup
    assert engine.etas_s(*pickup, sources) == pytest.approx(
        default.etas_s(*pickup, sources), rel=1e-9, abs=1e-6
    )
