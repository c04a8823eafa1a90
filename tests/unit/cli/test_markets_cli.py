"""``dispatch markets regions``: the region map as text, JSON and GeoJSON; and what is refused
(unknown market, unwritable output, overlapping shard ranges, a split market at routing)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import h3
import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from dispatch.bootstrap import build_markets
from dispatch.cli import app
from dispatch.regions import split_market
from dispatch.settings import MarketConfig, Settings

SF: dict[str, Any] = {
    "name": "sf",
    "shard": 0,
    "lat": 37.77,
    "lng": -122.42,
    "radius_km": 20,
    "shards": 4,
}
LA: dict[str, Any] = {"name": "la", "shard": 4, "lat": 34.05, "lng": -118.24, "radius_km": 10}


def run(markets: list[dict[str, Any]], *args: str) -> Any:
    env = {"DISPATCH_MARKETS": json.dumps(markets)}
    return CliRunner().invoke(app, ["markets", "regions", *args], env=env)


def test_the_text_map_lists_each_markets_regions_with_shard_cells_load_and_neighbours() -> None:
    result = run([SF, LA])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("sf: 4 regions on shards 0..3, ")
    assert "H3 res-7 cells" in lines[0]
    rows = [line.split(None, 3) for line in lines[2:6]]
    assert [row[0] for row in rows] == ["0", "1", "2", "3"]
    assert all(abs(float(row[2].rstrip("%")) - 25.0) <= 0.2 for row in rows)
    assert all(row[3] != "-" for row in rows)  # every region borders another
    assert "routed by region" in result.stdout
    assert "la: 1 region on shard 4" in result.stdout
    assert "100.0%" in result.stdout


def test_the_json_map_has_every_region_with_shares_adding_up_and_symmetric_neighbours() -> None:
    result = run([SF, LA], "--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    sf, la = document["markets"]
    assert (sf["name"], sf["shards"], sf["routed"], la["routed"]) == ("sf", 4, True, True)
    assert [r["shard"] for r in sf["regions"]] == [0, 1, 2, 3]
    assert sum(r["cells"] for r in sf["regions"]) == sf["cells"]
    assert sum(r["load_share"] for r in sf["regions"]) == pytest.approx(1.0)
    neighbours = {r["shard"]: set(r["neighbours"]) for r in sf["regions"]}
    assert all(shard in neighbours[n] for shard, ns in neighbours.items() for n in ns)
    assert la["regions"] == [
        {"shard": 4, "cells": la["cells"], "weight": la["cells"], "load_share": 1.0,
         "neighbours": []}
    ]  # fmt: skip


def test_one_market_is_chosen_by_name() -> None:
    result = run([SF, LA], "--market", "la", "--json")
    assert result.exit_code == 0, result.output
    assert [m["name"] for m in json.loads(result.stdout)["markets"]] == ["la"]


def test_geojson_is_written_with_one_feature_per_region(tmp_path: Path) -> None:
    target = tmp_path / "regions.geojson"
    result = run([SF, LA], "--geojson", str(target))
    assert result.exit_code == 0, result.output
    assert "wrote 5 regions" in result.stdout
    collection = json.loads(target.read_text())
    assert collection["type"] == "FeatureCollection"
    features = collection["features"]
    keys = [(f["properties"]["market"], f["properties"]["shard"]) for f in features]
    assert keys == [("sf", 0), ("sf", 1), ("sf", 2), ("sf", 3), ("la", 4)]
    for feature in features:
        assert feature["type"] == "Feature"
        assert feature["geometry"]["type"] in ("Polygon", "MultiPolygon")
        assert feature["geometry"]["coordinates"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["regions.geojson"]  # no leftovers


def test_an_unknown_market_is_a_usage_error_that_names_it() -> None:
    result = run([SF, LA], "--market", "nyc")
    assert result.exit_code == 2
    assert "'nyc'" in result.output
    assert "--market" in result.output


@pytest.mark.parametrize("where", ["under_a_file", "a_folder", "missing_folder"])
def test_an_unwritable_geojson_path_is_a_usage_error_before_anything_is_written(
    tmp_path: Path, where: str
) -> None:
    (tmp_path / "file").write_text("")
    target = {
        "under_a_file": tmp_path / "file" / "regions.geojson",
        "a_folder": tmp_path,
        "missing_folder": tmp_path / "nowhere" / "regions.geojson",
    }[where]
    result = run([SF], "--geojson", str(target))
    assert result.exit_code == 2
    assert "--geojson" in result.output
    assert result.stdout == ""  # refused before the map was printed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_overlapping_shard_ranges_are_refused_by_the_settings_with_the_reason() -> None:
    overlapping = {**LA, "shard": 3}
    with pytest.raises(ValidationError, match=r"'sf' \(shards 0\.\.3\) and 'la' \(shard 3\)"):
        Settings(
            markets=[MarketConfig.model_validate(SF), MarketConfig.model_validate(overlapping)]
        )
    result = run([SF, overlapping])
    assert result.exit_code == 2
    assert "markets" in result.output and "overlap" in result.output


def test_one_shard_markets_may_still_share_a_shard() -> None:
    settings = Settings(
        markets=[
            MarketConfig.model_validate(LA),
            MarketConfig.model_validate({**LA, "name": "la2"}),
        ]
    )
    assert len(settings.markets) == 2


@pytest.mark.parametrize("shards", [0, 65])
def test_a_shard_count_out_of_range_is_a_usage_error_naming_the_field(shards: int) -> None:
    result = run([{**SF, "shards": shards}])
    assert result.exit_code == 2
    assert "markets.0.shards" in result.output


def test_a_split_market_is_routed_by_region_where_rides_cross_regions() -> None:
    settings = Settings(
        shards=8, markets=[MarketConfig.model_validate(SF), MarketConfig.model_validate(LA)]
    )
    markets = build_markets(settings)  # embedded: rides are offered drivers across borders
    region_map = split_market(settings.markets[0])
    routed = set()
    for cell in region_map.cells:
        lat, lng = h3.cell_to_latlng(cell)
        region = region_map.shard_of(lat, lng)  # None: the market's res-5 cells leave it out
        if region is not None:
            assert markets.shard_for(lat, lng) == region
            routed.add(region)
    assert routed == {0, 1, 2, 3}
    assert markets.shard_for(34.05, -118.24) == 4  # a market of one shard, as before


def test_a_split_market_on_kafka_is_routed_by_region_as_embedded() -> None:
    markets = [MarketConfig.model_validate(SF), MarketConfig.model_validate(LA)]
    on_kafka = build_markets(Settings(shards=8, kafka_bootstrap="127.0.0.1:9", markets=markets))
    embedded = build_markets(Settings(shards=8, markets=markets))
    places = [(37.60 + i / 50, -122.62 + j / 50) for i in range(18) for j in range(20)]
    shards = [on_kafka.shard_for(lat, lng) for lat, lng in places]
    assert shards == [embedded.shard_for(lat, lng) for lat, lng in places]
    assert set(shards) == {0, 1, 2, 3}


def test_a_market_of_one_shard_is_still_served() -> None:
    settings = Settings(shards=8, markets=[MarketConfig.model_validate({**SF, "shards": 1})])
    assert build_markets(settings).shard_for(37.77, -122.42) == 0


def test_a_split_market_beyond_the_configured_shards_is_refused() -> None:
    beyond = {**SF, "shard": 6, "shards": 4}  # shards 6..9
    with pytest.raises(ValidationError, match=r"needs 10 shards, but DISPATCH_SHARDS is 8"):
        Settings(markets=[MarketConfig(**beyond)], shards=8)


def test_the_region_map_of_a_market_beyond_the_shards_is_a_usage_error() -> None:
    env = {"DISPATCH_MARKETS": json.dumps([{**SF, "shard": 6}]), "DISPATCH_SHARDS": "8"}
    result = CliRunner().invoke(app, ["markets", "regions"], env=env)
    assert result.exit_code == 2
    assert "DISPATCH_SHARDS is 8" in result.output
