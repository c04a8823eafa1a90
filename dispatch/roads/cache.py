"""Where a city's road graph is kept, and whether a kept one still fits its extract."""

from __future__ import annotations

from pathlib import Path

from dispatch.roads.graph import RoadGraph


def graph_path(extract: Path) -> Path:
    """The road graph kept beside an extract: ``city.osm.pbf`` -> ``city.roads.npz``."""
    name = extract.name
    for suffix in (".osm.pbf", ".pbf"):
        if name.endswith(suffix):
            return extract.with_name(name[: -len(suffix)] + ".roads.npz")
    return extract.with_name(name + ".roads.npz")


def fits(graph: RoadGraph, extract_sha256: str, speeds_version: int) -> bool:
    """Whether ``graph`` was built from this extract with this speed table."""
    return graph.source_sha256 == extract_sha256 and graph.speeds_version == speeds_version
