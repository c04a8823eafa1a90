"""Read an OpenStreetMap extract (``.osm.pbf``) into a ``RoadGraph`` of its drivable roads.

pyrosm parses the file: its ``driving`` network (OSMnx's ``drive`` filter, with OSM access
rules), each way cut into segments between consecutive nodes, ``length`` in metres.

Direction, from the way's ``oneway`` tag:
- ``yes``, ``true``, ``1``: forward only (along the way's node order);
- ``-1``, ``reverse``: backward only;
- untagged: one-way forward on ``junction=roundabout`` or ``circular`` and on
  ``highway=motorway`` (OSM implies it there), two-way elsewhere;
- ``no`` and any other value (``alternating``, ``reversible``): two-way.

Travel time is length / speed. The speed, in km/h, is the first number of ``maxspeed``
(times 1.609 when it says ``mph``); without a number, ``*:urban`` is 50, ``*:rural`` 80,
``*:motorway`` 120, ``walk`` and ``*:living_street`` 10; ``none`` or anything else gives
the ``highway`` default (``HIGHWAY_KMH``, 30 for a type it lacks). Speeds are clamped to
[5, 130]. ``SPEEDS_VERSION`` is recorded in the graph: bump it when these rules change, so
graphs built with the old ones are built again.

Self-loops are dropped, and of parallel edges joining the same two nodes the same way only
the fastest is kept. Only the largest strongly connected part is kept, its nodes numbered
0..n-1 in OSM id order: every node reaches every other, so a driver snapped to any node can
always reach a pickup snapped to any node (an extract's edge cuts roads off, and one-way
streets leave dead ends and unreachable pockets that would otherwise give no route).

Bad input is a ``RoadGraphError`` naming the file and the reason: missing, not an OSM PBF,
truncated or damaged, or without drivable roads.
"""

from __future__ import annotations

import struct
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import pyrosm  # type: ignore[import-untyped]
from google.protobuf.message import DecodeError  # type: ignore[import-untyped]
from pyrosm.exceptions import PBFException  # type: ignore[import-untyped]
from pyrosm.proto.fileformat_pb2 import BlobHeader  # type: ignore[import-untyped]
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

from dispatch.roads.graph import FloatArray, RoadGraph, RoadGraphError, sha256_of

SPEEDS_VERSION = 1
HIGHWAY_KMH = {
    "motorway": 100.0, "motorway_link": 60.0, "trunk": 80.0, "trunk_link": 50.0,
    "primary": 60.0, "primary_link": 40.0, "secondary": 50.0, "secondary_link": 40.0,
    "tertiary": 40.0, "tertiary_link": 30.0, "unclassified": 30.0, "residential": 30.0,
    "living_street": 10.0, "service": 15.0, "road": 30.0,
}  # fmt: skip
OTHER_HIGHWAY_KMH = 30.0
MIN_KMH, MAX_KMH = 5.0, 130.0
MPH_KMH = 1.609
_FORWARD = ("yes", "true", "1")
_BACKWARD = ("-1", "reverse")
_ROUNDABOUT = ("roundabout", "circular")
_MAX_HEADER = 64 * 1024  # the PBF format's limits on a block's header and data
_MAX_BLOB = 32 * 1024 * 1024

Progress = Callable[[str], None]
OsmIds = npt.NDArray[np.int64]
Mask = npt.NDArray[np.bool_]


class RoadGraphWithIds(NamedTuple):
    graph: RoadGraph
    osm_ids: OsmIds  # the OpenStreetMap id of each node of the graph


def read_road_graph(
    pbf: Path, progress: Progress | None = None, sha256: str | None = None
) -> RoadGraph:
    """The drivable roads of the extract ``pbf``; ``progress`` is told each stage;
    ``sha256``: the file's, when the caller has it (else it is hashed here)."""
    return read_road_graph_with_ids(pbf, progress, sha256).graph


def read_road_graph_with_ids(
    pbf: Path, progress: Progress | None = None, sha256: str | None = None
) -> RoadGraphWithIds:
    """``read_road_graph``, with the OpenStreetMap id of every node of the graph."""
    say = progress or (lambda _stage: None)
    say("checking the file")
    _check_blocks(pbf)
    if sha256 is None:
        say("hashing the file")
        sha256 = sha256_of(pbf)
    say("reading ways")
    nodes, edges = _read_network(pbf, say)
    say("setting speeds")
    kmh = _speeds_kmh(edges)
    say("directing edges")
    ids, lat, lng = _node_table(nodes)
    tail, head, length_m, seconds = _directed_edges(edges, kmh, ids)
    if len(tail) == 0:
        raise RoadGraphError(f"{pbf}: no drivable roads in the extract")
    say("keeping the largest strongly connected part")
    keep, inside = _largest_strong_part(len(ids), tail, head)
    if not inside.any():
        raise RoadGraphError(f"{pbf}: no two road junctions in the extract reach each other")
    new_index = (np.cumsum(keep) - 1).astype(np.int32)
    graph = RoadGraph(
        lat=lat[keep], lng=lng[keep], tail=new_index[tail[inside]],
        head=new_index[head[inside]], length_m=length_m[inside], seconds=seconds[inside],
        source=pbf.name, source_sha256=sha256, speeds_version=SPEEDS_VERSION,
    )  # fmt: skip
    return RoadGraphWithIds(graph, ids[keep])


def _check_blocks(pbf: Path) -> None:
    """Walk the file's blocks (a length, a header naming the data's size, the data) without
    decoding them: a file that is not an OSM PBF or was cut short fails here, with the
    reason, instead of deep in the parser or (cut inside a length) not at all."""
    if not pbf.is_file():
        raise RoadGraphError(f"{pbf}: no such OpenStreetMap extract")
    if not pbf.name.endswith(".pbf"):
        raise RoadGraphError(f"{pbf}: an OSM PBF extract's name ends in .pbf (pyrosm needs it)")
    size = pbf.stat().st_size
    if size == 0:
        raise RoadGraphError(f"{pbf}: the file is empty, not an OSM PBF extract")
    with pbf.open("rb") as f:
        offset = 0
        while offset < size:
            prefix = f.read(4)
            if len(prefix) < 4:
                raise RoadGraphError(f"{pbf}: truncated: the file ends at byte {size}, in a block")
            header_size = struct.unpack(">I", prefix)[0]
            header = BlobHeader()
            try:
                if not 0 < header_size <= _MAX_HEADER:
                    raise ValueError(f"header size {header_size}")
                header.ParseFromString(f.read(header_size))
            except (DecodeError, ValueError):  # ValueError: a size no PBF has
                if offset == 0:
                    raise RoadGraphError(f"{pbf}: not an OSM PBF extract") from None
                raise RoadGraphError(f"{pbf}: damaged or truncated at byte {offset}") from None
            if offset == 0 and header.type != "OSMHeader":
                raise RoadGraphError(f"{pbf}: not an OSM PBF extract (no OSMHeader block)")
            if not 0 <= header.datasize <= _MAX_BLOB:
                raise RoadGraphError(f"{pbf}: damaged at byte {offset} (a block's size)")
            offset += 4 + header_size + header.datasize
            if offset > size:
                raise RoadGraphError(
                    f"{pbf}: truncated: a block ends at byte {offset}, the file at {size}"
                )
            f.seek(offset)


def _read_network(pbf: Path, say: Progress) -> tuple[Any, Any]:
    """pyrosm's driving network of ``pbf``: its nodes and its edges (one a way segment)."""
    told_percent = [-1]

    def told(done: float, total: float) -> None:  # pyrosm's progress(done, 100)
        percent = int(100 * done / total) if total else 0
        if percent > told_percent[0]:
            told_percent[0] = percent
            say(f"reading ways {percent}%")

    try:
        with warnings.catch_warnings():  # pyrosm warns of an empty result: an error here
            warnings.simplefilter("ignore", UserWarning)
            osm = pyrosm.OSM(str(pbf), keep_metadata=False, progress=told)
            nodes, edges = osm.get_network(
                network_type="driving", nodes=True, extra_attributes=["junction"],
                tags_to_keep=["highway", "oneway", "maxspeed", "junction"],
            )  # fmt: skip
    except (PBFException, DecodeError, ValueError, OSError, EOFError) as e:
        raise RoadGraphError(f"{pbf}: damaged ({type(e).__name__}: {e})") from None
    if edges is None or nodes is None or len(edges) == 0:
        raise RoadGraphError(f"{pbf}: no drivable roads in the extract")
    return nodes, edges


def _tag(edges: Any, name: str) -> Any:
    """The tag ``name`` of every edge, lower case, "" where untagged (pyrosm leaves out the
    column of a tag no way has)."""
    if name not in edges.columns:
        return edges.assign(_untagged="")["_untagged"]
    return edges[name].fillna("").astype(str).str.strip().str.lower()


def _speeds_kmh(edges: Any) -> FloatArray:
    highway, maxspeed = _tag(edges, "highway"), _tag(edges, "maxspeed")
    number = maxspeed.str.extract(r"(\d+(?:\.\d+)?)", expand=False).astype("float64")
    mph = maxspeed.str.contains("mph", regex=False).to_numpy(bool)
    given = np.where(mph, number.to_numpy(np.float64) * MPH_KMH, number.to_numpy(np.float64))
    named = np.select(
        [
            maxspeed.str.endswith("urban").to_numpy(bool),
            maxspeed.str.endswith("rural").to_numpy(bool),
            maxspeed.str.endswith("motorway").to_numpy(bool),
            maxspeed.str.endswith(("walk", "living_street")).to_numpy(bool),
        ],
        [50.0, 80.0, 120.0, 10.0],
        default=np.nan,
    )
    default = highway.map(HIGHWAY_KMH).fillna(OTHER_HIGHWAY_KMH).to_numpy(np.float64)
    kmh = np.where(np.isnan(given), np.where(np.isnan(named), default, named), given)
    return np.clip(kmh, MIN_KMH, MAX_KMH)


def _node_table(nodes: Any) -> tuple[OsmIds, FloatArray, FloatArray]:
    """The nodes' OSM ids (sorted, once each) with their latitudes and longitudes."""
    ids, first = np.unique(nodes["id"].to_numpy(np.int64), return_index=True)
    return ids, nodes["lat"].to_numpy(np.float64)[first], nodes["lon"].to_numpy(np.float64)[first]


def _directed_edges(
    edges: Any, kmh: FloatArray, ids: OsmIds
) -> tuple[OsmIds, OsmIds, FloatArray, FloatArray]:
    """Each segment as the directed edges its way's direction allows (tail and head as
    indexes into ``ids``), without self-loops, the fastest of parallel edges only."""
    oneway, highway = _tag(edges, "oneway"), _tag(edges, "highway")
    implied = (oneway == "") & (_tag(edges, "junction").isin(_ROUNDABOUT) | (highway == "motorway"))
    forward_only = (oneway.isin(_FORWARD) | implied).to_numpy(bool)
    backward_only = oneway.isin(_BACKWARD).to_numpy(bool)
    u, v = _index_of(ids, edges["u"]), _index_of(ids, edges["v"])
    length = edges["length"].to_numpy(np.float64)  # metres (not .length, in degrees)
    seconds = length / (kmh / 3.6)
    fwd = ~backward_only
    bwd = ~forward_only
    tail = np.concatenate([u[fwd], v[bwd]])
    head = np.concatenate([v[fwd], u[bwd]])
    length = np.concatenate([length[fwd], length[bwd]])
    seconds = np.concatenate([seconds[fwd], seconds[bwd]])
    ok = (tail >= 0) & (head >= 0) & (tail != head) & np.isfinite(seconds) & (length >= 0)
    tail, head, length, seconds = tail[ok], head[ok], length[ok], seconds[ok]
    order = np.lexsort((length, seconds, head, tail))  # by tail, head, then fastest first
    tail, head, length, seconds = tail[order], head[order], length[order], seconds[order]
    first = np.ones(len(tail), dtype=bool)
    first[1:] = (tail[1:] != tail[:-1]) | (head[1:] != head[:-1])
    return tail[first], head[first], length[first], seconds[first]


def _index_of(ids: OsmIds, osm_ids: Any) -> OsmIds:
    """The index in ``ids`` of each of ``osm_ids``, -1 for an id not there."""
    wanted = osm_ids.to_numpy(np.int64)
    at = np.minimum(np.searchsorted(ids, wanted), max(len(ids) - 1, 0))
    found = (ids[at] == wanted) if len(ids) else np.zeros(len(wanted), dtype=bool)
    return np.where(found, at, -1).astype(np.int64)


def _largest_strong_part(nodes: int, tail: OsmIds, head: OsmIds) -> tuple[Mask, Mask]:
    """Which nodes are in the largest strongly connected part, and which edges."""
    adjacency = csr_matrix((np.ones(len(tail)), (tail, head)), shape=(nodes, nodes))
    _count, labels = connected_components(adjacency, directed=True, connection="strong")
    keep = labels == np.bincount(labels).argmax()
    return keep, keep[tail] & keep[head]
