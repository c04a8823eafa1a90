"""A road graph: nodes with coordinates, directed edges with length and travel time, kept
on disk as one ``.npz`` file so that a city's extract is read once.

The file holds the arrays and a metadata record: the format, the extract it was built from
(its name and sha256, so a changed extract is built again) and the speed table's version
(so a changed table is too). ``load`` refuses, with the reason, a file that is missing, is
not such a graph, is damaged or was written by another format.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

FORMAT = 1
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int32]
_ARRAYS = ("lat", "lng", "tail", "head", "length_m", "seconds")


class RoadGraphError(Exception):
    """A road graph that cannot be used, and why."""


@dataclass(frozen=True, eq=False)
class RoadGraph:
    lat: FloatArray  # per node
    lng: FloatArray
    tail: IntArray  # per directed edge: from node, to node
    head: IntArray
    length_m: FloatArray
    seconds: FloatArray  # the time to drive the edge
    source: str = ""  # the extract's file name
    source_sha256: str = ""
    speeds_version: int = 0

    def __post_init__(self) -> None:
        nodes, edges = len(self.lat), len(self.tail)
        if len(self.lng) != nodes:
            raise RoadGraphError(f"{len(self.lng)} longitudes for {nodes} nodes")
        for name in ("head", "length_m", "seconds"):
            if len(getattr(self, name)) != edges:
                raise RoadGraphError(
                    f"{len(getattr(self, name))} values of {name} for {edges} edges"
                )
        if edges and (
            min(self.tail.min(), self.head.min()) < 0
            or max(self.tail.max(), self.head.max()) >= nodes
        ):
            raise RoadGraphError("an edge names a node the graph does not have")
        if edges and not (np.all(np.isfinite(self.seconds)) and self.seconds.min() >= 0):
            raise RoadGraphError("an edge has a travel time that is negative or not finite")

    @property
    def nodes(self) -> int:
        return len(self.lat)

    @property
    def edges(self) -> int:
        return len(self.tail)

    def save(self, path: Path) -> None:
        """Write the graph to ``path`` (through a temporary file: a reader never sees half)."""
        meta = {"format": FORMAT, "source": self.source, "source_sha256": self.source_sha256,
                "speeds_version": self.speeds_version}  # fmt: skip
        # A temporary file of its own: two processes may build the same graph at once.
        handle, name = tempfile.mkstemp(prefix=path.name + ".", suffix=".partial", dir=path.parent)
        partial = Path(name)
        try:
            with os.fdopen(handle, "wb") as out:
                np.savez(out, meta=np.array(json.dumps(meta)),
                         **{name: getattr(self, name) for name in _ARRAYS})  # fmt: skip
            # mkstemp makes the file its owner's only; a kept graph is read like any other
            # file of the folder (a shared extract's graph by every user who can read it).
            os.chmod(partial, 0o666 & ~_umask())
            partial.replace(path)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: Path) -> RoadGraph:
        if not path.is_file():
            raise RoadGraphError(f"{path}: no such road graph file")
        if not zipfile.is_zipfile(path):  # numpy would read it as a pickle and say so
            raise RoadGraphError(
                f"{path}: not a readable road graph (not a whole .npz archive: damaged, cut "
                "short or another kind of file); build it again "
                "(dispatch roads build)"
            )
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                if meta.get("format") != FORMAT:
                    raise RoadGraphError(
                        f"{path}: road graph format {meta.get('format')!r}, this version reads "
                        f"{FORMAT}: build it again (dispatch roads build)"
                    )
                arrays = {name: data[name] for name in _ARRAYS}
        except RoadGraphError:
            raise
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, json.JSONDecodeError) as e:
            raise RoadGraphError(
                f"{path}: not a readable road graph ({type(e).__name__}: {e}); build it again "
                "(dispatch roads build)"
            ) from None
        return cls(
            lat=arrays["lat"].astype(np.float64),
            lng=arrays["lng"].astype(np.float64),
            tail=arrays["tail"].astype(np.int32),
            head=arrays["head"].astype(np.int32),
            length_m=arrays["length_m"].astype(np.float64),
            seconds=arrays["seconds"].astype(np.float64),
            source=str(meta.get("source", "")),
            source_sha256=str(meta.get("source_sha256", "")),
            speeds_version=int(meta.get("speeds_version", 0)),
        )


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
