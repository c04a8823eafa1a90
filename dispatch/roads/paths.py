"""Fastest paths over a road graph: the search the router and the pickup ETAs stand on.

``ShortestPaths`` is the port: one search from a pickup's node to many drivers' nodes, and
one fastest path between two nodes. The engine wires the networkit adapter
(``dispatch.adapters.networkit``), chosen by ``scripts/bench_road_eta.py``; ``ScipyPaths``
here is the reference it was measured against (scipy's Dijkstra over a sparse matrix),
also what a test checks the adapter with.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import numpy.typing as npt
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra

from dispatch.roads.graph import IntArray, RoadGraph

FloatArray = npt.NDArray[np.float64]
# ScipyPaths' first search is bounded at this many times the hint, plus this many seconds
# (a source it does not reach costs a second search with the full bound).
FIRST_BOUND_FACTOR = 1.5
FIRST_BOUND_SLACK_S = 60.0


class ShortestPaths(Protocol):
    def times_to(self, target: int, sources: IntArray, bound_s: float, hint_s: float) -> FloatArray:
        """Each source node's fastest time to ``target`` (one search for all of them), or
        ``inf`` where it is more than ``bound_s`` or there is no path. ``hint_s`` says
        about how far the farthest source is (a search may use it to stop early)."""
        ...

    def path(self, source: int, target: int) -> IntArray:
        """The nodes of a fastest path from ``source`` to ``target``, both included
        (one node when they are the same); empty when there is none."""
        ...


def fastest_edges(graph: RoadGraph) -> IntArray:
    """The index of the fastest edge of every (tail, head) pair, in (tail, head) order."""
    order = np.lexsort((graph.seconds, graph.head, graph.tail))
    tail, head = graph.tail[order], graph.head[order]
    first = np.ones(len(order), dtype=bool)
    first[1:] = (tail[1:] != tail[:-1]) | (head[1:] != head[:-1])
    return order[first].astype(np.int32)


class ScipyPaths:
    """scipy's Dijkstra on the graph as a sparse matrix (and on it reversed, for the
    one-to-many search). Each search allocates arrays of the whole graph's size, so a
    search costs a few milliseconds on a city (docs/BENCHMARKS.md)."""

    def __init__(self, graph: RoadGraph) -> None:
        edges = fastest_edges(graph)
        # A zero weight would read as "no edge": the least positive float instead.
        weights = np.maximum(graph.seconds[edges], np.finfo(np.float64).tiny)
        tail, head, n = graph.tail[edges], graph.head[edges], graph.nodes
        # The most those stand-ins add to a path: a search's bound is raised by it, or a
        # path of zero-second edges would be beyond a bound of 0.
        self._stand_ins_s = n * float(np.finfo(np.float64).tiny)
        self._forward = csr_matrix((weights, (tail, head)), shape=(n, n))
        self._reversed = csr_matrix((weights, (head, tail)), shape=(n, n))

    def times_to(self, target: int, sources: IntArray, bound_s: float, hint_s: float) -> FloatArray:
        first = min(bound_s, FIRST_BOUND_FACTOR * hint_s + FIRST_BOUND_SLACK_S)
        times: FloatArray = dijkstra(
            self._reversed, directed=True, indices=target, limit=first + self._stand_ins_s
        )
        if first < bound_s and not np.all(np.isfinite(times[sources])):
            times = dijkstra(
                self._reversed, directed=True, indices=target, limit=bound_s + self._stand_ins_s
            )
        return times[sources]

    def path(self, source: int, target: int) -> IntArray:
        _, before = dijkstra(self._forward, directed=True, indices=source, return_predecessors=True)
        if source != target and before[target] < 0:
            return np.empty(0, dtype=np.int32)
        nodes = [target]
        while nodes[-1] != source:
            nodes.append(int(before[nodes[-1]]))
        return np.array(nodes[::-1], dtype=np.int32)
