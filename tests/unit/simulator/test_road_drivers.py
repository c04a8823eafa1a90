"""Simulated drivers drive the roads (issue #15): a driver is always on its route, its pings
lie on the graph's streets, and a run without a road network is what it was before."""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Any
from uuid import uuid4

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from roads_data import helsinki_extract

from dispatch.adapters.embedded.transport import EmbeddedTransport
from dispatch.bootstrap import build_router
from dispatch.messages import Ping
from dispatch.roads.routes import RoadRouter, Route
from dispatch.settings import Settings
from dispatch.simulator.agents import SimDriver
from dispatch.simulator.embedded import router_of, simulate_embedded
from dispatch.simulator.products import ALL_STANDARD
from dispatch.simulator.roads import RoadLegs
from dispatch.simulator.runner import SimConfig, Simulation

M_PER_DEG = 111_320.0


@functools.cache
def router() -> RoadRouter:
    found = build_router(Settings(road_network=helsinki_extract()))
    assert found is not None
    return found


def metres_off(points: list[tuple[float, float]], lat: Any, lng: Any) -> Any:
    """Each point's distance in metres to the nearest segment of the polylines given as
    segment end arrays ``lat`` = (a, b), ``lng`` = (a, b)."""
    cos = math.cos(math.radians(60.17))
    p = np.array(points)
    px, py = p[:, 1:2] * M_PER_DEG * cos, p[:, 0:1] * M_PER_DEG
    ax, ay = lng[0] * M_PER_DEG * cos, lat[0] * M_PER_DEG
    bx, by = lng[1] * M_PER_DEG * cos, lat[1] * M_PER_DEG
    dx, dy = bx - ax, by - ay
    length2 = np.maximum(dx * dx + dy * dy, 1e-12)
    t = np.clip(((px - ax) * dx + (py - ay) * dy) / length2, 0.0, 1.0)
    return np.hypot(px - (ax + t * dx), py - (ay + t * dy)).min(axis=1)


def off_route(points: list[tuple[float, float]], route: Route) -> Any:
    lat, lng = np.array(route.lat), np.array(route.lng)
    if len(lat) == 1:
        return metres_off(points, (lat, lat), (lng, lng))
    return metres_off(points, (lat[:-1], lat[1:]), (lng[:-1], lng[1:]))


nodes = st.integers(min_value=0, max_value=10**9)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    a=nodes,
    b=nodes,
    c=nodes,
    travel_s=st.floats(min_value=1.0, max_value=2_000.0),
    times=st.lists(st.floats(min_value=-10.0, max_value=1.2), min_size=1, max_size=20),
    change_at=st.floats(min_value=0.0, max_value=1.0),
)
def test_a_driver_is_always_on_its_route_even_after_a_change_of_plan(
    a: int, b: int, c: int, travel_s: float, times: list[float], change_at: float
) -> None:
    r = router()
    g = r.graph
    point = [(float(g.lat[n % g.nodes]), float(g.lng[n % g.nodes])) for n in (a, b, c)]
    legs = RoadLegs(r)
    d = SimDriver(uuid4(), 0, *point[0], ping_phase=0)
    d.drive(r.route(point[0], point[1]), 100.0, travel_s)
    assert d.route is not None
    seen = [d.position(100.0 + f * travel_s) for f in times]
    assert off_route(seen, d.route).max() < 0.01
    # Mid-route it is sent elsewhere: the new route starts where it is and it stays on it.
    now = 100.0 + change_at * travel_s
    here = d.position(now)
    new = legs.leg(d, now, point[2])
    assert (new.lat[0], new.lng[0]) == pytest.approx(here, abs=1e-9)
    assert new.end == pytest.approx(point[2], abs=1e-9)
    d.drive(new, now, travel_s)
    seen = [d.position(now + f * travel_s) for f in times]
    assert off_route(seen, new).max() < 0.01
    assert new.metres >= 0 and all(x <= y for x, y in zip(new.at_s, new.at_s[1:], strict=False))


def test_a_driver_sent_in_a_straight_line_leaves_its_route() -> None:
    r = router()
    g = r.graph
    start, end = (float(g.lat[0]), float(g.lng[0])), (float(g.lat[-1]), float(g.lng[-1]))
    d = SimDriver(uuid4(), 0, *start, ping_phase=0)
    d.drive(r.route(start, end), 0.0, 100.0)
    here = d.position(50.0)
    d.head_to(60.0, 25.0, 50.0, 100.0)  # the straight-line driver's way (and stop())
    assert d.route is None
    assert d.position(50.0) == pytest.approx(here)
    assert d.position(150.0) == (60.0, 25.0)
    d.stop(100.0)
    assert d.position(200.0) == pytest.approx(((here[0] + 60.0) / 2, (here[1] + 25.0) / 2))


def test_the_drivers_router_takes_the_runs_straight_line_pace(tmp_path: Path) -> None:
    # Two points far from every road: a straight route, timed at the straight-line pace.
    config = SimConfig(road_network=helsinki_extract())
    start, end = (60.10, 24.80), (60.11, 24.80)
    for kmh in (25.0, 50.0):
        settings = Settings(data_dir=tmp_path, speed_kmh=kmh, road_factor=1.0)
        built = router_of(config, settings)
        assert built is not None
        route = built.route(start, end)
        assert not route.on_roads
        assert route.seconds == pytest.approx(route.metres / (kmh / 3.6))
    assert router_of(SimConfig(), Settings(road_network=helsinki_extract())) is None


def road_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, eta: str) -> tuple[Any, list[Ping]]:
    pings: list[Ping] = []
    original = EmbeddedTransport.send_pings

    def recording(self: EmbeddedTransport, batch: list[Ping]) -> None:
        pings.extend(batch)
        original(self, batch)

    monkeypatch.setattr(EmbeddedTransport, "send_pings", recording)
    network = helsinki_extract()
    config = SimConfig(
        drivers=12, minutes=4, seed=3, demand_per_min=6, warmup_minutes=1, drain_minutes=5,
        road_network=network, eta=eta,
    )  # fmt: skip
    s = Settings(data_dir=tmp_path / eta, road_network=network if eta == "road" else None)
    return simulate_embedded(config, s), pings


def test_drivers_pings_during_a_road_run_lie_on_the_streets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim, pings = road_run(tmp_path, monkeypatch, "road")
    report = sim.finished
    assert report.violations == [] and report.served > 0
    assert report.road_network is not None and report.road_network["eta"] == "road"
    g = router().graph
    edges = ((g.lat[g.tail], g.lat[g.head]), (g.lng[g.tail], g.lng[g.head]))
    points = [(p.lat, p.lng) for p in pings]
    assert len(points) > 100
    assert metres_off(points, *edges).max() < 0.5
    # Pickups and drop-offs are road nodes, and the report's distances come from routes.
    node_set = set(zip(g.lat.tolist(), g.lng.tolist(), strict=True))
    assert all(r.pickup in node_set and r.dropoff in node_set for r in sim.demand)
    assert sum(sim.distance_m.values()) > 0


def test_without_a_road_network_a_run_is_what_it_was_before_roads(tmp_path: Path) -> None:
    # Figures of this run measured before drivers could drive roads (commit 1a15d74), and
    # before surge: it adds events of its own (13 here) and changes nothing else, so it is
    # off for the comparison; and before products: every vehicle and request standard.
    config = SimConfig(drivers=30, minutes=5, seed=2, demand_per_min=12, warmup_minutes=1,
                       vehicle_mix=ALL_STANDARD, product_mix=ALL_STANDARD)  # fmt: skip
    report = simulate_embedded(config, Settings(data_dir=tmp_path, surge_cadence_s=0)).finished
    assert report.road_network is None
    assert report.demand_hash.startswith("aa1becc68f7ca0f3")
    assert (report.requests, report.served, report.events) == (48, 22, 1023)
    assert report.pickup_eta_s_mean == pytest.approx(354.8636363636364, abs=1e-9)
    assert report.pickup_realised_s_mean == pytest.approx(447.14285714285717, abs=1e-9)
    assert report.empty_distance_pct == pytest.approx(97.88835450012988, abs=1e-9)
    assert report.in_vehicle_s_mean == pytest.approx(805.0952380952381, abs=1e-9)
    assert report.utilisation_pct == pytest.approx(52.77777777777778, abs=1e-9)


def test_a_rides_pickup_distance_is_its_pickup_route_and_the_deadhead_is_the_empty_driving(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    legs: list[Route] = []
    original = Simulation._leg_m

    def recording(self: Simulation, d: SimDriver) -> float:
        assert d.route is not None
        legs.append(d.route)
        return original(self, d)

    monkeypatch.setattr(Simulation, "_leg_m", recording)
    sim, _ = road_run(tmp_path, monkeypatch, "road")
    report = sim.finished
    arrived = [r for r in sim.rides.values() if r.arrived_at is not None]
    assert arrived and legs
    by_end: dict[tuple[float, float], list[float]] = {}
    for route in legs:
        by_end.setdefault(route.end, []).append(route.metres)
    for ride in arrived:  # each pickup leg is a route that ends at the ride's pickup
        assert any(ride.pickup_m == pytest.approx(m) for m in by_end[ride.pickup])
    records = [r for r in sim.records() if r.requested_s >= sim.cfg.warmup_s]
    measured = [r.pickup_m for r in records if r.pickup_m is not None]
    assert report.pickup_m_mean == pytest.approx(sum(measured) / len(measured))
    empty = sim.distance_m["pickup"] + sim.distance_m["cruise"]
    assert report.empty_km == pytest.approx(empty / 1000) and report.empty_km > 0


def test_a_rider_in_the_car_does_not_cancel(tmp_path: Path) -> None:
    # Every rider means to cancel 10-120 s after asking; on Helsinki's short pickups many
    # trips start first, and those riders ride on (the engine would refuse the cancel).
    network = helsinki_extract()
    config = SimConfig(
        drivers=12, minutes=4, seed=3, demand_per_min=6, warmup_minutes=1, drain_minutes=5,
        road_network=network, cancel_probability=1.0,
    )  # fmt: skip
    sim = simulate_embedded(config, Settings(data_dir=tmp_path, road_network=network))
    report = sim.finished
    assert report.outcomes.get("illegal_transition", 0) == 0, report.outcomes
    assert any(r.started_at is not None for r in sim.rides.values())
    assert report.cancelled > 0
