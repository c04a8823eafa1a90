"""A road graph kept on disk (``dispatch.roads.graph``): read back as written; a file that
is missing, damaged, of another kind or of another format is refused with the reason."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_road_network_eta import grid

from dispatch.roads.graph import RoadGraph, RoadGraphError


def test_a_saved_graph_reads_back_the_same(tmp_path: Path) -> None:
    graph = grid()
    graph = RoadGraph(graph.lat, graph.lng, graph.tail, graph.head, graph.length_m,
                      graph.seconds, "city.osm.pbf", "ab" * 32, 3)  # fmt: skip
    path = tmp_path / "city.roads.npz"

    graph.save(path)
    again = RoadGraph.load(path)

    for name in ("lat", "lng", "tail", "head", "length_m", "seconds"):
        assert np.array_equal(getattr(again, name), getattr(graph, name)), name
    assert (again.source, again.source_sha256, again.speeds_version) == (
        "city.osm.pbf",
        "ab" * 32,
        3,
    )
    assert [p.name for p in tmp_path.iterdir()] == ["city.roads.npz"], "no temporary file left"


@pytest.mark.parametrize(
    ("what", "content", "reason"),
    [
        ("a text file", b"not a graph", "not a readable road graph"),
        ("a truncated graph", None, "not a readable road graph"),
    ],
)
def test_a_damaged_file_is_refused_with_the_reason(
    tmp_path: Path, what: str, content: bytes | None, reason: str
) -> None:
    path = tmp_path / "city.roads.npz"
    grid().save(path)
    path.write_bytes(content if content is not None else path.read_bytes()[:500])
    with pytest.raises(RoadGraphError, match=reason):
        RoadGraph.load(path)


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RoadGraphError, match="no such road graph file"):
        RoadGraph.load(tmp_path / "nowhere.roads.npz")


def test_a_graph_of_another_format_is_refused_and_told_to_be_built_again(tmp_path: Path) -> None:
    path = tmp_path / "city.roads.npz"
    graph = grid()
    with path.open("wb") as out:
        np.savez(out, meta=np.array(json.dumps({"format": 99})), lat=graph.lat)
    with pytest.raises(RoadGraphError, match=r"format 99.*dispatch roads build"):
        RoadGraph.load(path)


def test_arrays_that_do_not_make_a_graph_are_refused() -> None:
    graph = grid()
    with pytest.raises(RoadGraphError, match="names a node the graph does not have"):
        RoadGraph(graph.lat, graph.lng, graph.tail, graph.head + 10_000, graph.length_m,
                  graph.seconds)  # fmt: skip
    with pytest.raises(RoadGraphError, match="negative or not finite"):
        RoadGraph(graph.lat, graph.lng, graph.tail, graph.head, graph.length_m,
                  -graph.seconds)  # fmt: skip
    with pytest.raises(RoadGraphError, match="values of head"):
        RoadGraph(graph.lat, graph.lng, graph.tail, graph.head[:-1], graph.length_m,
                  graph.seconds)  # fmt: skip


def test_two_processes_saving_one_graph_at_once_both_succeed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dispatch.roads.graph as graph_module

    target, real_savez, nested = tmp_path / "city.roads.npz", np.savez, []

    def savez(out: Any, **arrays: Any) -> None:  # the other one saves while this one writes
        real_savez(out, **arrays)
        if not nested:
            nested.append(1)
            grid().save(target)

    monkeypatch.setattr(graph_module.np, "savez", savez)
    grid().save(target)

    assert RoadGraph.load(target).nodes == grid().nodes
    assert [p.name for p in tmp_path.iterdir()] == ["city.roads.npz"]


def test_a_kept_graph_is_readable_by_others_as_the_umask_allows(tmp_path: Path) -> None:
    graph = RoadGraph(
        lat=np.array([60.17, 60.18]), lng=np.array([24.94, 24.94]),
        tail=np.array([0], dtype=np.int32), head=np.array([1], dtype=np.int32),
        length_m=np.array([1_000.0]), seconds=np.array([100.0]),
    )  # fmt: skip
    old = os.umask(0o022)
    try:
        graph.save(tmp_path / "city.roads.npz")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "city.roads.npz").stat().st_mode) == 0o644


def test_a_file_that_is_no_archive_is_refused_as_not_a_road_graph(tmp_path: Path) -> None:
    fake = tmp_path / "city.roads.npz"
    fake.write_bytes(b"\x80\x04K\x01.")  # a pickle, which numpy would name as one
    with pytest.raises(
        RoadGraphError, match=r"not a readable road graph \(not a whole \.npz archive"
    ):
        RoadGraph.load(fake)
