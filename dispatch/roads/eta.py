"""Pickup ETAs routed over a road graph: one search per pickup for all its candidates.

A query snaps the pickup and each driver to their nearest road node (a k-d tree over the
nodes in local metres) and runs one Dijkstra search from the pickup's node over the
*reversed* graph (scipy's ``csgraph.dijkstra``), bounded by the largest ETA the matcher
keeps: the time from every driver's node to the pickup comes out of that one search. The
search is first bounded near the candidates' straight-line estimates, and runs again with
the full bound only when a candidate lies beyond that (``_search``): the same answer.

Rules (docs/ARCHITECTURE.md, "Road networks"):
- Access legs: the straight gap between a point and its road node is covered at the
  straight-line estimate's pace (road factor and speed), at both ends.
- Off the network: a pickup or driver farther than ``snap_m`` from every road node is
  estimated by the straight-line provider for that pair (the fallback), never dropped;
  so is a driver whose nearest node is the pickup's (no road between them to route).
- Unreachable: a driver whose node cannot reach the pickup's node within the bound gets
  ``math.inf`` (the matcher drops it).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra
from scipy.spatial import cKDTree

from dispatch.matching.eta import Source, StraightLineEta
from dispatch.roads.graph import RoadGraph

_M_PER_DEG = 111_320.0
# The first search's bound: this many times the farthest candidate's straight-line estimate,
# plus this many seconds (a candidate it does not reach costs a second, full search).
FIRST_BOUND_FACTOR = 1.5
FIRST_BOUND_SLACK_S = 60.0


class RoadNetworkEta:
    def __init__(
        self,
        graph: RoadGraph,
        max_eta_s: float,
        fallback: StraightLineEta,
        snap_m: float = 500.0,
    ) -> None:
        if graph.nodes == 0:
            raise ValueError("a road graph with no nodes")
        if max_eta_s <= 0 or snap_m <= 0:
            raise ValueError("max_eta_s and snap_m must be > 0")
        self.graph, self.max_eta_s, self.snap_m = graph, max_eta_s, snap_m
        self._fallback = fallback
        self._access_s_per_m = fallback.seconds_per_m
        self._cos = math.cos(math.radians(float(np.mean(graph.lat))))
        self._tree = cKDTree(self._xy(graph.lat, graph.lng))
        self._reversed = _reversed_fastest(graph)

    def etas_s(self, to_lat: float, to_lng: float, sources: Sequence[Source]) -> list[float]:
        if not sources:
            return []
        straight = self._fallback.etas_s(to_lat, to_lng, sources)
        gap, node = self._tree.query(self._xy(np.array([to_lat]), np.array([to_lng])),
                                     distance_upper_bound=self.snap_m)  # fmt: skip
        if not math.isfinite(gap[0]):
            return straight  # the pickup is off the network
        lats = np.array([s[0] for s in sources])
        lngs = np.array([s[1] for s in sources])
        gaps, nodes = self._tree.query(self._xy(lats, lngs), distance_upper_bound=self.snap_m)
        on_road = np.isfinite(gaps)
        times = self._search(int(node[0]), nodes[on_road], max(straight, default=0.0))
        out = []
        access_to = gap[0] * self._access_s_per_m
        for i, straight_s in enumerate(straight):
            if not on_road[i] or nodes[i] == node[0]:
                # Off the network, or at the pickup's own node (the two access legs would
                # go to the node and back): the straight line.
                out.append(straight_s)
                continue
            driven = float(times[nodes[i]])
            out.append(driven + (gaps[i] * self._access_s_per_m + access_to)
                       if math.isfinite(driven) else math.inf)  # fmt: skip
        return out

    def _search(self, pickup: int, targets: np.ndarray, straight_max_s: float) -> np.ndarray:
        """Every node's time to ``pickup`` within the bound (``inf`` beyond), exact for the
        ``targets``: first a search bounded near the farthest candidate's straight-line
        estimate (most of a city lies beyond it), then, only if a target was not reached,
        the full bound. Nodes a bounded search reaches have their exact times, so the
        answer is the full-bound search's."""
        first = min(self.max_eta_s, FIRST_BOUND_FACTOR * straight_max_s + FIRST_BOUND_SLACK_S)
        times: np.ndarray = dijkstra(self._reversed, directed=True, indices=pickup, limit=first)
        if first < self.max_eta_s and not np.all(np.isfinite(times[targets])):
            times = dijkstra(self._reversed, directed=True, indices=pickup, limit=self.max_eta_s)
        return times

    def _xy(self, lat: np.ndarray, lng: np.ndarray) -> np.ndarray:
        return np.column_stack((lat * _M_PER_DEG, lng * _M_PER_DEG * self._cos))


def _reversed_fastest(graph: RoadGraph) -> csr_matrix:
    """The graph with every edge turned round (head -> tail), the fastest of parallel edges
    kept (a sparse matrix would add them up)."""
    order = np.lexsort((graph.seconds, graph.head, graph.tail))
    tail, head, seconds = graph.tail[order], graph.head[order], graph.seconds[order]
    first = np.ones(len(order), dtype=bool)
    first[1:] = (tail[1:] != tail[:-1]) | (head[1:] != head[:-1])
    # A zero weight would read as "no edge": the least positive float instead.
    weights = np.maximum(seconds[first], np.finfo(np.float64).tiny)
    n = graph.nodes
    return csr_matrix((weights, (head[first], tail[first])), shape=(n, n))
