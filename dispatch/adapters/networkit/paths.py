"""``ShortestPaths`` on networkit (C++): a multi-target Dijkstra on the reversed graph for
one pickup against its candidates (it stops once every candidate is settled), and a
bidirectional Dijkstra for one route. A route's search object is reused, one per thread
(a new one costs about 2 ms on a 120k-node graph, more than a short route's search), and
made again after ``ROUTE_SEARCH_REUSES`` runs: networkit 11.3's bidirectional search
reports "no path" at every 128th run of one object (its visit stamps wrap), a fault
``tests/unit/adapters/test_networkit_paths.py`` reproduces. A "no path" is confirmed by a
fresh search all the same.

networkit's searches take no bound, so ``times_to`` applies it afterwards; the graph the
engine reads is one strongly connected part, so every search ends at its farthest target.
"""

from __future__ import annotations

import threading

import networkit as nk
import numpy as np

from dispatch.roads.graph import IntArray, RoadGraph
from dispatch.roads.paths import FloatArray

# networkit's "no path" distance: the largest double.
_NO_PATH = float(np.finfo(np.float64).max)
# Runs of one route search object before a new one is made (it fails at its 128th).
ROUTE_SEARCH_REUSES = 100

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
        self._local = threading.local()

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
        search = self._route_search(source, target)
        search.run()
        if search.getDistance() >= _NO_PATH:
            search = self._fresh_route_search(source, target)  # confirm it (above)
            search.run()
            if search.getDistance() >= _NO_PATH:
                return np.empty(0, dtype=np.int32)
        return np.array([source, *search.getPath(), target], dtype=np.int32)

    def _route_search(self, source: int, target: int) -> nk.distance.BidirectionalDijkstra:
        """This thread's route search, set for ``source`` -> ``target``."""
        local = self._local
        if getattr(local, "uses", ROUTE_SEARCH_REUSES) >= ROUTE_SEARCH_REUSES:
            return self._fresh_route_search(source, target)
        local.uses += 1
        local.search.setSource(source)
        local.search.setTarget(target)
        return local.search

    def _fresh_route_search(self, source: int, target: int) -> nk.distance.BidirectionalDijkstra:
        self._local.search = nk.distance.BidirectionalDijkstra(self._forward, source, target, True)
        self._local.uses = 1
        return self._local.search
