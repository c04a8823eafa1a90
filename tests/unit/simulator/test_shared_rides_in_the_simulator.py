"""Shared demand in the simulator (``--shared-share``): a share of the requests asks to
share; where the engine pools, vehicles serve plans of several riders (the simulated drivers
follow the plans the engine records) with no invariant broken; where it does not, the same
requests ride alone (the runs pair); the report measures occupancy, vehicle-km per
passenger-km, detours and the figures by kind of ride, and the engine's pooled windows."""

from __future__ import annotations

import math
from pathlib import Path
from uuid import UUID

import pytest
import typer
from typer.testing import CliRunner

from dispatch.adapters.sqlite.logsource import SqliteLogSource
from dispatch.cli import app
from dispatch.cli.experiment import parse_pooling
from dispatch.cli.scenario import shared_options
from dispatch.replay.operations import read_all
from dispatch.settings import Settings
from dispatch.simulator.embedded import simulate_embedded
from dispatch.simulator.pooled import Occupancy, detour_pct
from dispatch.simulator.report import riders_km
from dispatch.simulator.results import RideRecord
from dispatch.simulator.runner import SimConfig, Simulation

# A busy city: more requests than the fleet serves alone, so riders going the same way
# wait near vehicles already serving someone.
BUSY = {"drivers": 120, "minutes": 12.0, "demand_per_min": 16.0, "warmup_minutes": 0.0,
        "seed": 3, "shared_share": 0.5}  # fmt: skip


def run(
    tmp_path: Path, strategy: str = "batch", pooling: bool = True, **options: object
) -> Simulation:
    config = SimConfig(**{**BUSY, **options, "strategy": strategy, "pooling": pooling})  # type: ignore[arg-type]
    return simulate_embedded(config, Settings(data_dir=tmp_path, strategy=strategy, pool=pooling))


def test_occupancy_counts_riders_aboard_within_its_window() -> None:
    o = Occupancy(100.0, 200.0)
    a, b = object(), object()
    o.set(a, 1, 50.0)  # type: ignore[arg-type]  # aboard before the window: counted from 100
    o.set(a, 2, 150.0)  # type: ignore[arg-type]
    o.set(b, 1, 180.0)  # type: ignore[arg-type]
    o.finish(250.0)  # past the window: counted to 200
    # a: 1 rider 100-150, 2 riders 150-200; b: 1 rider 180-200
    assert o.rider_s == 50 + 100 + 20
    assert o.occupied_s == 100 + 20
    assert o.mean == pytest.approx(170 / 120)
    assert Occupancy(0.0, 1.0).mean is None  # nobody aboard: no figure


def test_a_detour_is_the_time_in_the_vehicle_over_the_direct_trip() -> None:
    ride = RideRecord(0, "r", 0.0, 0, 0, 0, 0, outcome="completed", started_s=100.0,
                      ended_s=400.0, direct_m=1_000.0)  # fmt: skip
    assert detour_pct(ride, 0.2) == pytest.approx(50.0)  # 300 s over 200 s
    assert detour_pct(RideRecord(1, "s", 0.0, 0, 0, 0, 0, outcome="cancelled"), 0.2) is None


@pytest.mark.parametrize("bad", [-0.1, 1.5, math.nan])
def test_a_share_outside_0_to_1_is_refused_naming_the_option(bad: float) -> None:
    with pytest.raises(typer.BadParameter) as refused:
        shared_options(bad)
    assert refused.value.param_hint == "--shared-share"
    assert shared_options(0.0) == {"shared_share": 0.0, "pooling": False}
    assert shared_options(0.5) == {"shared_share": 0.5, "pooling": True}


def test_pooling_off_and_on_needs_shared_demand_and_says_what_is_wrong() -> None:
    assert parse_pooling("off,on", 0.5) == (False, True)
    assert parse_pooling(None, 0.0) == (None,)
    for value, share, says in (("off,on", 0.0, "needs --shared-share"),
                               ("on,maybe", 0.5, "comma-separated from off, on"),
                               ("on,on", 0.5, "a choice twice")):  # fmt: skip
        with pytest.raises(typer.BadParameter, match=says):
            parse_pooling(value, share)


def test_the_simulate_command_refuses_a_bad_share_before_running(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["simulate", "--shared-share", "2", "--data-dir",
                                      str(tmp_path / "out")])  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "--shared-share" in result.output
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("strategy", ["greedy", "batch"])
def test_pooled_vehicles_carry_several_riders_and_no_invariant_breaks(
    tmp_path: Path, strategy: str
) -> None:
    sim = run(tmp_path, strategy)
    report = sim.finished
    assert report.violations == []
    assert report.pool_extensions and report.pool_extensions > 0  # riders put into plans
    assert report.mean_occupancy is not None and report.mean_occupancy > 1.0
    assert set(report.kinds) == {"single", "shared"}
    shared = report.kinds["shared"]
    assert shared["requests"] > 0 and shared["served"] > 0
    assert shared["detour_pct_p50"] is not None
    assert report.vehicle_km_per_passenger_km is not None
    if strategy == "batch":
        assert report.pool_windows and report.pool_windows > 0
        assert report.pool_window_max_ms is not None
    # the simulated vehicles drive their plans to the end: the shared rides served ended
    # (completed, or cancelled by their riders) but for a trip still under way when the
    # drain stopped (the city is 30 km wide: a few trips take most of an hour)
    served = [r for r in sim.records() if r.shared and r.accepted_s is not None]
    completed = [r for r in served if r.outcome == "completed"]
    assert len(completed) >= 0.9 * len(served) > 0
    for r in served:
        if r.outcome is None:
            assert r.started_s is not None  # aboard, on its way


def test_without_pooling_the_same_requests_ride_alone(tmp_path: Path) -> None:
    on = run(tmp_path / "on", pooling=True)
    off = run(tmp_path / "off", pooling=False)
    assert on.finished.demand_hash == off.finished.demand_hash
    asked = {r.index for r in on.rides.values() if r.shared}
    assert asked == {r.index for r in off.rides.values() if r.shared}  # the same riders
    log = [e for e in read_all(SqliteLogSource(tmp_path / "off"))
           if e.topic == "dispatch.Ride.Requested"]  # fmt: skip
    assert log and all(e.data.get("sharing") is None for e in log)  # sent as single rides
    assert off.finished.mean_occupancy in (None, 1.0)
    assert off.finished.pool_extensions == 0
    assert off.finished.kinds["shared"]["requests"] == on.finished.kinds["shared"]["requests"]


def test_a_share_of_0_leaves_the_run_as_it_was(tmp_path: Path) -> None:
    """No request asks to share: no shared fields in the report's kinds, and the run is
    the one made without the option (same rides, same outcomes)."""
    plain = simulate_embedded(SimConfig(drivers=40, minutes=6.0, demand_per_min=3.0,
                                        warmup_minutes=0.0, seed=5),
                              Settings(data_dir=tmp_path / "plain"))  # fmt: skip
    zero = simulate_embedded(SimConfig(drivers=40, minutes=6.0, demand_per_min=3.0,
                                       warmup_minutes=0.0, seed=5, shared_share=0.0),
                             Settings(data_dir=tmp_path / "zero"))  # fmt: skip
    assert set(zero.finished.kinds) == {"single"}
    outcomes = [(r.ride_id, r.outcome, r.ended_s) for r in plain.records()]
    assert outcomes == [(r.ride_id, r.outcome, r.ended_s) for r in zero.records()]


def test_passenger_km_count_the_share_of_each_trip_inside_the_window() -> None:
    rides = [
        RideRecord(
            0,
            "in",
            0.0,
            0,
            0,
            0,
            0,
            outcome="completed",
            started_s=100.0,
            ended_s=200.0,
            direct_m=1_000.0,
        ),
        RideRecord(
            1,
            "half",
            0.0,
            0,
            0,
            0,
            0,
            outcome="completed",
            started_s=250.0,
            ended_s=350.0,
            direct_m=2_000.0,
        ),
        RideRecord(
            2,
            "before",
            0.0,
            0,
            0,
            0,
            0,
            outcome="completed",
            started_s=0.0,
            ended_s=50.0,
            direct_m=9_000.0,
        ),
        RideRecord(3, "cancelled", 0.0, 0, 0, 0, 0, outcome="cancelled", direct_m=9_000.0),
    ]
    assert riders_km(rides, 60.0, 300.0) == pytest.approx(1.0 + 1.0)


def test_a_request_the_engine_refuses_ends_and_the_run_does_not_wait_for_it(
    tmp_path: Path,
) -> None:
    """Shared requests sent to a deployment that does not pool are refused: each ends as
    refused at once (the drain waits for them no more) and is counted."""
    config = SimConfig(drivers=20, minutes=4.0, demand_per_min=4.0, warmup_minutes=0.0,
                       seed=2, shared_share=0.5, pooling=True, drain_minutes=30.0)  # fmt: skip
    sim = simulate_embedded(config, Settings(data_dir=tmp_path, pool=False))
    refused = [r for r in sim.records() if r.outcome == "refused"]
    assert refused and all(r.shared for r in refused)
    assert sim.finished.outcomes.get("invalid_command") == len(refused)
    gone = {UUID(r.ride_id) for r in refused}
    assert not gone & (sim._open | sim._waiting)  # the drain does not wait for them
    assert sim.finished.violations == []


def test_a_shared_riders_home_is_its_pickups_shard_pooled_or_not(tmp_path: Path) -> None:
    """Over a city of two shards the riders who ask to share live where they are picked
    up in both arms (pooling stays within a shard): the same riders, the same paths."""
    from dispatch.domain.ids import shard_of
    from dispatch.simulator.cityshards import split_city

    for pooling in (False, True):
        config = SimConfig(drivers=30, minutes=4.0, demand_per_min=6.0, warmup_minutes=0.0,
                           seed=4, shared_share=0.5, pooling=pooling, city_shards=2)  # fmt: skip
        settings = split_city(Settings(data_dir=tmp_path / str(pooling), pool=pooling), 2)
        sim = simulate_embedded(config, settings)
        shared = [r for r in sim.rides.values() if r.shared]
        assert shared
        assert all(shard_of(r.rider_id) == shard_of(r.ride_id) for r in shared)
        assert any(shard_of(r.rider_id) != shard_of(r.ride_id)
                   for r in sim.rides.values() if not r.shared)  # fmt: skip
