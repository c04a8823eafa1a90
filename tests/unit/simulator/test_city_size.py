"""`--city-km`: the synthetic city's side. The same demand in a smaller square is denser
(pickups nearer each other and to the drivers); the default is the 30 km city of every
earlier run; a size out of range, or beside a trace or a road network (which bring their
own city), is a usage error naming the option."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

import pytest
from roads_data import helsinki_extract
from typer.testing import CliRunner

from dispatch.cli import app
from dispatch.simulator.city import City
from dispatch.simulator.cityshards import city_market
from dispatch.simulator.demand import synthetic_demand
from dispatch.simulator.streams import Streams

SMALL = ["--drivers", "40", "--minutes", "4", "--demand", "8", "--warmup", "1", "--seed", "5"]


def simulate(tmp_path: Path, *args: str) -> Any:
    argv = ["simulate", *SMALL, "--json", *args, "--data-dir", str(tmp_path / "log")]
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _spread_m(city: City) -> float:
    """The mean distance of the city's synthetic pickups from their centroid."""
    requests = synthetic_demand(city, 30.0, 20.0, Streams(3), 4_000.0)
    points = [r.pickup for r in requests]
    lat = sum(p[0] for p in points) / len(points)
    lng = sum(p[1] for p in points) / len(points)
    return sum(city.distance_m((lat, lng), p) for p in points) / len(points)


def test_the_default_city_is_the_thirty_km_square_with_the_same_hot_spots() -> None:
    default, sized = City(rng=random.Random(8)), City.sized(30.0, random.Random(8))
    assert sized.size_km == default.size_km == 30.0
    assert sized.hotspots == default.hotspots  # earlier runs' cities are unchanged


def test_a_smaller_city_has_its_demand_closer_together() -> None:
    spreads = [_spread_m(City.sized(km, random.Random(8))) for km in (30.0, 10.0, 4.0)]
    assert spreads[0] > spreads[1] > spreads[2]
    small = City.sized(4.0, random.Random(8))
    for request in synthetic_demand(small, 30.0, 5.0, Streams(1), 4_000.0):
        for point in (request.pickup, request.dropoff):
            assert small.clamp(*point) == point  # every stop inside the 4 km square


def _on_edge(city: City, point: tuple[float, float]) -> bool:
    lat_edge, lng_edge = city.clamp(city.lat + 90, city.lng + 180)  # the north-east corner
    return math.isclose(abs(point[0] - city.lat), lat_edge - city.lat) or math.isclose(
        abs(point[1] - city.lng), lng_edge - city.lng
    )


def test_a_sized_city_draws_a_drop_off_beyond_it_again_instead_of_piling_it_on_the_edge() -> None:
    requests = synthetic_demand(City.sized(10.0, random.Random(2)), 50.0, 30.0, Streams(1), 4e3)
    small = City.sized(10.0, random.Random(2))
    on_edge = sum(_on_edge(small, r.dropoff) for r in requests)
    assert on_edge <= len(requests) * 0.01  # clamped only after every redraw fell outside
    # the default city keeps the clamp of every earlier run (its demand reproduces)
    wide = City.sized(30.0, random.Random(2))
    requests = synthetic_demand(wide, 50.0, 30.0, Streams(1), 4e3)
    old = synthetic_demand(City(rng=random.Random(2)), 50.0, 30.0, Streams(1), 4e3)
    assert requests == old and sum(_on_edge(wide, r.dropoff) for r in requests) > 0


@pytest.mark.parametrize("km", [1.9, 200.1, float("nan")])
def test_a_city_out_of_range_is_refused_by_its_constructor(km: float) -> None:
    with pytest.raises(ValueError, match="2 to 200 km"):
        City.sized(km)


def test_a_simulation_reports_its_city_and_a_smaller_one_brings_pickups_nearer(
    tmp_path: Path,
) -> None:
    wide = simulate(tmp_path / "wide")
    dense = simulate(tmp_path / "dense", "--city-km", "5")
    assert (wide["city_km"], dense["city_km"]) == (30.0, 5.0)
    assert dense["pickup_m_mean"] < wide["pickup_m_mean"]
    assert wide["violations"] == dense["violations"] == []


def test_a_simulated_city_split_over_shards_is_the_square_asked_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dispatch.simulator.cityshards as cityshards

    radii: list[float] = []
    original = cityshards.split_city

    def spy(settings: Any, shards: int, points: Any = None, city: Any = None) -> Any:
        split = original(settings, shards, points, city)
        radii.append(split.markets[0].radius_km)
        return split

    monkeypatch.setattr(cityshards, "split_city", spy)
    out = simulate(tmp_path, "--city-km", "6", "--city-shards", "2")
    assert radii == [pytest.approx(3.0 * 2**0.5 + 2.0)] and out["shards"] == 2


def test_a_split_city_covers_the_square_it_was_given() -> None:
    wide, small = city_market(2), city_market(2, city=City.sized(6.0))
    assert small.radius_km < wide.radius_km
    assert small.radius_km == pytest.approx(3.0 * 2**0.5 + 2.0)  # the corners and a margin


def test_an_experiment_runs_its_variants_in_the_city_asked_for(tmp_path: Path) -> None:
    argv = ["experiment", "--strategies", "greedy", "--city-shards", "1,2", "--seeds", "1",
            "--drivers", "30", "--minutes", "3", "--demand", "6", "--warmup", "1",
            "--city-km", "6", "--jobs", "1", "--json", "--report", str(tmp_path / "r")]  # fmt: skip
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 0, result.output
    runs = json.loads(result.stdout)["runs"]
    assert len(runs) == 2 and {r["city_km"] for r in runs} == {6.0}
    assert {r["shards"] for r in runs} == {1, 2}


def _refused(command: str, args: list[str], tmp_path: Path) -> str:
    log = tmp_path / "log"
    target = ["--data-dir", str(log)] if command == "simulate" else ["--report", str(log)]
    result = CliRunner().invoke(app, [command, *args, *target])
    assert result.exit_code == 2, result.output
    assert not log.exists()  # refused before anything ran
    return result.output


BAD = {
    "too_small": (["--city-km", "1"], "must be 2 to 200 km"),
    "too_large": (["--city-km", "500"], "must be 2 to 200 km"),
    "not_a_number": (["--city-km", "nan"], "must be 2 to 200 km"),
    "with_a_trace": (["--city-km", "5", "--demand-trace", "trips.csv"], "--demand-trace"),
}


@pytest.mark.parametrize("command", ["simulate", "experiment"])
@pytest.mark.parametrize("args, reason", BAD.values(), ids=BAD.keys())
def test_a_meaningless_city_size_is_a_usage_error_naming_it(
    tmp_path: Path, command: str, args: list[str], reason: str
) -> None:
    extra = ["--demand", "5"] if "--demand-trace" not in args else []
    output = _refused(command, [*args, *extra, "--minutes", "2"], tmp_path)
    assert "--city-km" in output and reason in output


@pytest.mark.parametrize("command", ["simulate", "experiment"])
def test_a_city_size_beside_a_road_network_is_refused(tmp_path: Path, command: str) -> None:
    args = ["--city-km", "5", "--road-network", str(helsinki_extract()), "--minutes", "2"]
    output = _refused(command, args, tmp_path)
    assert "--city-km" in output and "--road-network" in output
