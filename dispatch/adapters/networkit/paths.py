"""``ShortestPaths`` on networkit (C++): a multi-target Dijkstra on the reversed graph for
one pickup against its candidates (it stops once every candidate is settled), and a
bidirectional Dijkstra for one route.

networkit's searches take no bound, so ``times_to`` applies it afterwards; the graph the
engine reads is one strongly connected part, so every search ends at its farthest target.
"""

from __future__ import annotations

import networkit as nk
import numpy as np

from dispatch.roads.graph import IntArray, RoadGraph
from dispatch.roads.paths import FloatArray

# networkit's "no path" distance: the largest double.
_NO_PATH = float(np.finfo(np.float64).max)

# The searches run on one thread; a parallel graph build would only compete with the
# engine for the cores.
nk.engineering.setNumberOfThreads(1)


class NetworkitPaths:
    def __init__(self, graph: RoadGraph) -> None:
        tail = graph.tail.astype(np.uint64)
        head = graph.head.astype(np.uint64)
        self._forward = nk.Graph(graph.nodes, weighted=True, directed=True)
        self._forward.addEdges((graph.seconds, (tail, head)))
        self._reversed = nk.Graph(graph.nodes, weighted=True, directed=True)
        self._reversed.addEdges((graph.seconds, (head, tail)))

    def times_to(self, target: int, sources: IntArray, bound_s: float, hint_s: float) -> FloatArray:
        if len(sources) == 0:
            return np.empty(0)
        search = nk.distance.MultiTargetDijkstra(self._reversed, target, sources.tolist())
        search.run()
        times = np.asarray(search.getDistances(), dtype=np.float64)
        times[(times >= _NO_PATH) | (times > bound_s)] = np.inf
        return times

    def path(self, source: int, target: int) -> IntArray:
        if source == target:
            return np.array([source], dtype=np.int32)
        search = nk.distance.BidirectionalDijkstra(self._forward, source, target, True)
        search.run()
        if search.getDistance() >= _NO_PATH:
            return np.empty(0, dtype=np.int32)
        return np.array([source, *search.getPath(), target], dtype=np.int32)
