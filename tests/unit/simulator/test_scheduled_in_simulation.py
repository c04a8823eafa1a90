"""Scheduled demand in the simulator (``--scheduled-share``): a share of the requests is
booked ahead, the engine dispatches the bookings and the report measures how punctual
their drivers were; a share of 0 leaves the run exactly as it was before."""

from __future__ import annotations

import hashlib
import math
from collections import Counter, defaultdict
from itertools import pairwise
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from dispatch.adapters.sqlite.logsource import SqliteLogSource
from dispatch.cli import app
from dispatch.cli.scenario import scheduled_options
from dispatch.domain.ride import Ride
from dispatch.replay.operations import read_all
from dispatch.settings import Settings
from dispatch.simulator.embedded import simulate_embedded
from dispatch.simulator.products import ALL_STANDARD
from dispatch.simulator.results import Request
from dispatch.simulator.runner import SimConfig, Simulation
from dispatch.simulator.scheduled import LEAD_CAP_S, lead_s, plan_bookings
from dispatch.simulator.streams import Streams

# Ample drivers for the demand, exact travel times, one product: bookings should be met.
AMPLE = {"drivers": 300, "minutes": 40.0, "demand_per_min": 2.0, "warmup_minutes": 20.0,
         "driver_pace_sd": 0.0, "leg_sd": 0.0, "congestion_peak": 0.0,
         "vehicle_mix": ALL_STANDARD, "product_mix": ALL_STANDARD}  # fmt: skip


def run(tmp_path: Path, **options: object) -> Simulation:
    config = SimConfig(**options)  # type: ignore[arg-type]
    return simulate_embedded(config, Settings(data_dir=tmp_path))


@pytest.mark.parametrize("bad", [-0.1, 1.5, math.nan, math.inf])
def test_a_share_outside_0_to_1_is_refused_naming_the_option(bad: float) -> None:
    with pytest.raises(typer.BadParameter) as refused:
        scheduled_options(bad, Settings())
    assert refused.value.param_hint == "--scheduled-share"


def test_the_options_carry_the_engines_lead_time_and_horizon() -> None:
    settings = Settings(scheduled_min_lead_s=1_200, scheduled_horizon_s=7_200)
    assert scheduled_options(0.25, settings) == {
        "scheduled_share": 0.25, "scheduled_min_lead_s": 1_200, "scheduled_horizon_s": 7_200,
    }  # fmt: skip
    tight = Settings(scheduled_min_lead_s=1_200, scheduled_horizon_s=1_230)
    with pytest.raises(typer.BadParameter, match="no lead time fits"):
        scheduled_options(0.1, tight)


@pytest.mark.parametrize("command", ["simulate", "experiment"])
def test_the_commands_refuse_a_bad_share_before_running(tmp_path: Path, command: str) -> None:
    args = [command, "--scheduled-share", "2", "--report" if command == "experiment"
            else "--data-dir", str(tmp_path / "out")]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "--scheduled-share" in result.output
    assert not (tmp_path / "out").exists()


def test_leads_lie_between_the_least_lead_and_the_cap_and_bookings_are_never_late() -> None:
    demand = [Request(float(t), (37.77, -122.42), (37.78, -122.41)) for t in range(0, 7_200, 3)]
    bookings = plan_bookings(demand, 0.5, Streams(9), min_lead_s=900.0)
    share = len(bookings) / sum(r.at_s >= 960 for r in demand)
    assert 0.45 < share < 0.55  # the share of the requests that can be booked in time
    assert all(b.booked_s >= 0 and 960 <= b.lead_s <= LEAD_CAP_S for b in bookings.values())
    assert any(b.booked_s > 0 for b in bookings.values())  # some booked during the run
    assert all(demand[i].at_s == b.pickup_s for i, b in bookings.items())  # time unchanged
    assert lead_s(0.0, 960, LEAD_CAP_S) == pytest.approx(960)
    assert lead_s(1.0, 960, LEAD_CAP_S) == pytest.approx(LEAD_CAP_S)
    assert lead_s(0.3, 960, LEAD_CAP_S) < lead_s(0.6, 960, LEAD_CAP_S)
    assert plan_bookings(demand, 0.0, Streams(9), min_lead_s=900.0) == {}


def test_bookings_are_dispatched_and_met_on_time_with_ample_drivers(tmp_path: Path) -> None:
    sim = run(tmp_path, seed=3, scheduled_share=0.3, **AMPLE)
    report = sim.finished
    topics = Counter(e.topic for e in read_all(SqliteLogSource(tmp_path)))
    assert report.bookings_total > 5
    assert topics[Ride.Booked.TOPIC] == report.bookings_total  # dispatch.Ride.Scheduled
    assert topics[Ride.DispatchStarted.TOPIC] >= report.scheduled_served > 0
    assert report.scheduled_served == report.scheduled_booked - report.scheduled_cancelled
    assert report.scheduled_on_time_pct is not None and report.scheduled_on_time_pct >= 90
    assert report.violations == []
    for ride in sim.rides.values():  # nobody left before the rider came out
        if ride.scheduled_at is not None and ride.started_at is not None:
            assert ride.started_at >= ride.scheduled_at + sim.cfg.boarding_s - sim.cfg.tick_s


def test_a_rider_with_a_booking_asks_for_no_other_ride_until_it_ends(tmp_path: Path) -> None:
    # few riders, so each rides often: one with a booking is not free to request
    sim = run(tmp_path, seed=6, scheduled_share=0.5, riders=20, **AMPLE)
    by_rider = defaultdict(list)
    for ride in sim.rides.values():
        assert ride.ended_at is not None
        by_rider[ride.rider_id].append((ride.requested_at, ride.ended_at))
    assert any(r.scheduled_at is not None for r in sim.rides.values())
    for spans in by_rider.values():
        spans.sort()
        assert all(end <= next_start for (_, end), (next_start, _) in pairwise(spans))


def test_the_same_seed_books_the_same_rides_under_either_strategy(tmp_path: Path) -> None:
    options = {**AMPLE, "minutes": 25.0, "warmup_minutes": 5.0, "scheduled_share": 0.3}
    greedy = run(tmp_path / "g", seed=8, strategy="greedy", **options)
    batch = run(tmp_path / "b", seed=8, strategy="batch", **options)
    other = run(tmp_path / "o", seed=9, strategy="greedy", **options)
    assert greedy.bookings and greedy.bookings == batch.bookings
    assert greedy.finished.bookings_hash == batch.finished.bookings_hash
    booked = {r.index: r.ride_id for r in greedy.rides.values() if r.scheduled_at is not None}
    assert booked == {r.index: r.ride_id for r in batch.rides.values() if r.scheduled_at}
    assert other.finished.bookings_hash != greedy.finished.bookings_hash


def _digest(sim: Simulation) -> str:
    h = hashlib.sha256()
    for r in sim.records():
        h.update(f"{r.index},{r.ride_id},{r.outcome},{r.accepted_s},{r.arrived_s},{r.ended_s}\n"
                 .encode())  # fmt: skip
    h.update(f"{sim.finished.events}".encode())
    return h.hexdigest()


def test_a_share_of_0_gives_the_run_it_gave_before_scheduled_demand(tmp_path: Path) -> None:
    """The pinned digest was taken with this config on the commit before scheduled demand
    (314e577): every ride's id, outcome and times, and the events written. An engine
    change that moves it needs a new pin, taken on both sides of that change."""
    options = {"drivers": 60, "minutes": 12.0, "seed": 4, "demand_per_min": 3.0,
               "warmup_minutes": 0.0,
               # the vehicle mix that was the default when the digest was pinned
               "vehicle_mix": (("standard", 0.85), ("xl", 0.10), ("accessible", 0.05))}  # fmt: skip
    sim = run(tmp_path, scheduled_share=0.0, **options)
    assert sim.bookings == {}
    assert _digest(sim) == "9b97e13d1db99df65fc21b5e9f72d6240ee58fb753d89343fd9bff659eaeea89"


def test_booking_some_rides_ahead_leaves_the_immediate_demand_as_it_was(tmp_path: Path) -> None:
    options = {**AMPLE, "minutes": 25.0, "warmup_minutes": 5.0, "seed": 2}
    now = run(tmp_path / "now", scheduled_share=0.0, **options)
    ahead = run(tmp_path / "ahead", scheduled_share=0.4, **options)
    assert ahead.bookings and now.finished.demand_hash == ahead.finished.demand_hash
    immediate = {r.index: (r.ride_id, r.requested_at, r.pickup) for r in now.rides.values()}
    kept = {r.index: (r.ride_id, r.requested_at, r.pickup) for r in ahead.rides.values()
            if r.scheduled_at is None}  # fmt: skip
    assert kept == {i: v for i, v in immediate.items() if i not in ahead.bookings}
