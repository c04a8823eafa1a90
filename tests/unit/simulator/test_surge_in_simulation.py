"""The simulator runs with surge on (the default settings): a market short of drivers
surges, each request carries the multiplier of its pickup's cell as the engine recorded it
then, and the report gives the mean and the most a rider saw, and the changes."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from dispatch.adapters.sqlite.logsource import SqliteLogSource
from dispatch.domain.ride import Ride
from dispatch.replay import operations as op
from dispatch.settings import Settings
from dispatch.simulator.embedded import simulate_embedded
from dispatch.simulator.runner import SimConfig


def test_a_market_short_of_drivers_surges_and_the_report_says_how_much(tmp_path: Path) -> None:
    config = SimConfig(drivers=5, minutes=6, seed=3, demand_per_min=40, warmup_minutes=1)
    sim = simulate_embedded(config, Settings(data_dir=tmp_path))
    report = sim.finished
    assert report.surge_changes > 0
    assert report.surge_mean is not None and report.surge_max is not None
    assert 1.0 < report.surge_max <= 3.0  # the default cap
    assert 1.0 <= report.surge_mean <= report.surge_max
    assert any(r.surge > 1.0 for r in sim.records())
    rows = dict(report.rows())
    assert rows["surge at request mean / max, changes"].endswith(f", {report.surge_changes}")


def test_with_surge_off_every_request_is_at_1(tmp_path: Path) -> None:
    config = SimConfig(drivers=5, minutes=4, seed=3, demand_per_min=40, warmup_minutes=1)
    report = simulate_embedded(config, Settings(data_dir=tmp_path, surge_cadence_s=0)).finished
    assert (report.surge_changes, report.surge_mean, report.surge_max) == (0, 1.0, 1.0)


def test_a_surged_ride_is_priced_at_its_pickups_surge_so_revenue_includes_it(
    tmp_path: Path,
) -> None:
    """As the API prices a ride without a quote: the terms recorded with the request carry
    the multiplier of the pickup's cell then (the final fare is metered on those terms,
    tests/unit/domain), so the report's revenue includes surge."""
    config = SimConfig(drivers=5, minutes=6, seed=3, demand_per_min=40, warmup_minutes=1)
    sim = simulate_embedded(config, Settings(data_dir=tmp_path))
    surge_of = {r.ride_id: r.surge for r in sim.records()}
    requested = {
        e.aggregate_id: e.data["fare"]
        for e in op.read_all(SqliteLogSource(tmp_path))
        if e.topic == Ride.Created.TOPIC
    }
    assert requested and all(fare is not None for fare in requested.values())
    surged = [ride for ride, surge in surge_of.items() if surge > 1.0]
    assert surged  # the market is short of drivers
    for ride in surge_of:
        assert Decimal(requested[str(ride)]["surge"]) == Decimal(str(surge_of[ride]))
