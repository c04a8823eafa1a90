"""Points to road nodes: a k-d tree over the nodes in local metres (flat-earth at the
graph's mean latitude, exact enough within a city)."""

from __future__ import annotations

import math

import numpy as np
from scipy.spatial import cKDTree

from dispatch.roads.graph import IntArray, RoadGraph
from dispatch.roads.paths import FloatArray

M_PER_DEG = 111_320.0


class Snapper:
    def __init__(self, graph: RoadGraph, snap_m: float) -> None:
        if graph.nodes == 0:
            raise ValueError("a road graph with no nodes")
        if snap_m <= 0:
            raise ValueError("snap_m must be > 0")
        self.snap_m = snap_m
        self._cos = math.cos(math.radians(float(np.mean(graph.lat))))
        self._lng_m = M_PER_DEG * self._cos  # metres a degree of longitude
        self._tree = cKDTree(self.xy(graph.lat, graph.lng))

    def snap(
        self, lat: FloatArray, lng: FloatArray, within_m: float | None = None
    ) -> tuple[FloatArray, IntArray]:
        """Each point's gap in metres to its nearest node and that node; a gap of ``inf``
        (and a node of no meaning) for a point more than ``within_m`` (default ``snap_m``)
        from every node."""
        xy = np.empty((len(lat), 2))
        np.multiply(lat, M_PER_DEG, out=xy[:, 0])
        np.multiply(lng, self._lng_m, out=xy[:, 1])
        bound = self.snap_m if within_m is None else within_m
        gaps, nodes = self._tree.query(xy, distance_upper_bound=bound)
        return np.asarray(gaps, dtype=np.float64), np.asarray(nodes, dtype=np.int32)

    def xy(self, lat: FloatArray, lng: FloatArray) -> FloatArray:
        return np.column_stack((lat * M_PER_DEG, lng * M_PER_DEG * self._cos))
