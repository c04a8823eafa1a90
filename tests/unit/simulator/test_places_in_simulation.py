"""With a place that keeps a queue, the simulator picks up its share of requests inside
it and sends idle drivers there, where they wait: the shards record the drivers' entries,
the report gives the place's pickups their own served share and waits; with no share the
place gets only what falls there by chance, and the rest of the demand is the same."""

from __future__ import annotations

from pathlib import Path

from dispatch.geofences import Geofences, places_of
from dispatch.settings import MarketConfig, PlaceConfig, Settings
from dispatch.simulator.embedded import simulate_embedded
from dispatch.simulator.runner import SimConfig

AIRPORT = {"type": "Polygon", "coordinates": [[[-122.40, 37.70], [-122.375, 37.70],
           [-122.375, 37.715], [-122.40, 37.715], [-122.40, 37.70]]]}  # fmt: skip
MARKET = MarketConfig(name="san-francisco", shard=0, lat=37.77, lng=-122.42, radius_km=40,
                      places=[PlaceConfig(id="airport", area=AIRPORT, queue=True)])  # fmt: skip


def run(tmp_path: Path, share: float):  # type: ignore[no-untyped-def]
    config = SimConfig(drivers=60, minutes=12, seed=3, demand_per_min=6, warmup_minutes=0,
                       place_demand=share)  # fmt: skip
    return simulate_embedded(config, Settings(data_dir=tmp_path, markets=[MARKET]))


def test_the_airport_draws_its_share_of_pickups_and_of_waiting_drivers(tmp_path: Path) -> None:
    sim = run(tmp_path / "with", 0.3)
    report = sim.finished
    inside = Geofences(places_of([MARKET]))
    at_airport = [r for r in sim.demand if inside.queue_place(*r.pickup) == "airport"]
    assert 0.15 * len(sim.demand) < len(at_airport) < 0.45 * len(sim.demand)
    assert report.place_entries > 0
    place = report.places["airport"]
    assert place["requests"] == len(at_airport) and place["served"] > 0
    assert report.violations == []
    without = run(tmp_path / "without", 0.0)  # only what falls there by chance
    by_chance = [r for r in without.demand if inside.queue_place(*r.pickup) == "airport"]
    assert len(by_chance) < len(at_airport) / 3
    assert without.finished.place_entries < report.place_entries
    moved = [a for a, b in zip(sim.demand, without.demand, strict=True) if a != b]
    assert moved and all(inside.queue_place(*r.pickup) == "airport" for r in moved)
    assert all(a.at_s == b.at_s for a, b in zip(sim.demand, without.demand, strict=True))
