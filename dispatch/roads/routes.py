"""Routes over a road graph: the way a simulated driver drives from one point to another.

A route is a polyline with the free-flow time and distance reached at each of its points:
the access leg from the start to its nearest road node, the fastest path's nodes, and
the access leg from the last node to the end. Its rules are the pickup ETAs' (same
snapping, access legs at the straight-line pace), so a route's time is what the road ETA
of the same two points says: a point farther than ``snap_m`` from every road, a route
whose two ends snap to one node, and two nodes with no path between them give a straight
route (two points, timed by the straight-line estimate).
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field

import numpy as np

from dispatch.matching.eta import StraightLineEta
from dispatch.matching.geo import haversine_m
from dispatch.roads.graph import IntArray, RoadGraph
from dispatch.roads.paths import FloatArray, ShortestPaths, fastest_edges
from dispatch.roads.snap import Snapper


@dataclass(frozen=True, eq=False, slots=True)
class Route:
    lat: tuple[float, ...]  # its points, first the start, last the end
    lng: tuple[float, ...]
    at_s: tuple[float, ...]  # free-flow seconds from the start to each point
    at_m: tuple[float, ...]  # metres driven from the start to each point
    on_roads: bool  # False: a straight route (off the network, or no path)
    # The totals and the end, kept apart (a driver's position is asked at every ping).
    seconds: float = field(init=False)
    metres: float = field(init=False)
    end: tuple[float, float] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "seconds", self.at_s[-1])
        object.__setattr__(self, "metres", self.at_m[-1])
        object.__setattr__(self, "end", (self.lat[-1], self.lng[-1]))

    def position(self, fraction: float) -> tuple[float, float]:
        """Where a driver is after ``fraction`` (0 to 1) of the route's time: on the
        segment being driven, as far along it as its time says."""
        if fraction >= 1 or self.seconds <= 0:
            return self.end
        if fraction <= 0:
            return self.lat[0], self.lng[0]
        # _segment, inlined: this runs at every ping of every driver.
        at_s, t = self.at_s, fraction * self.seconds
        i = bisect.bisect_left(at_s, t) or 1
        span = at_s[i] - at_s[i - 1]
        f = (t - at_s[i - 1]) / span if span > 0 else 1.0
        lat, lng = self.lat, self.lng
        return lat[i - 1] + (lat[i] - lat[i - 1]) * f, lng[i - 1] + (lng[i] - lng[i - 1]) * f

    def metres_at(self, fraction: float) -> float:
        """The metres driven after ``fraction`` of the route's time."""
        if fraction >= 1 or self.seconds <= 0:
            return self.metres
        if fraction <= 0:
            return 0.0
        i, f = self._segment(fraction)
        return self.at_m[i - 1] + (self.at_m[i] - self.at_m[i - 1]) * f

    def _segment(self, fraction: float) -> tuple[int, float]:
        """The segment (its end point's index) being driven after ``fraction`` of the
        time, and how far along it (0 to 1)."""
        t = fraction * self.seconds
        i = max(1, bisect.bisect_left(self.at_s, t))
        span = self.at_s[i] - self.at_s[i - 1]
        return i, (t - self.at_s[i - 1]) / span if span > 0 else 1.0


def still(lat: float, lng: float) -> Route:
    """A route that stays where it is."""
    return Route((lat,), (lng,), (0.0,), (0.0,), on_roads=False)


class RoadRouter:
    def __init__(
        self,
        graph: RoadGraph,
        paths: ShortestPaths,
        straight: StraightLineEta,
        snap_m: float = 500.0,
    ) -> None:
        self.graph, self._paths, self._straight = graph, paths, straight
        self._snapper = Snapper(graph, snap_m)
        edges = fastest_edges(graph)
        # The fastest edge of each (tail, head), found by its key tail * nodes + head.
        self._keys = graph.tail[edges].astype(np.int64) * graph.nodes + graph.head[edges]
        self._edges = edges  # in key order (fastest_edges sorts by tail, then head)

    def route(self, start: tuple[float, float], end: tuple[float, float]) -> Route:
        gaps, nodes = self._snapper.snap(np.array([start[0], end[0]]), np.array([start[1], end[1]]))
        if np.all(np.isfinite(gaps)) and nodes[0] != nodes[1]:
            path = self._paths.path(int(nodes[0]), int(nodes[1]))
            if len(path) >= 2:
                return self._along(start, end, path, gaps)
        return self._straight_route(start, end)

    def snap(self, lat: float, lng: float) -> tuple[float, float]:
        """The road node nearest to a point (the point itself when it is off the network)."""
        gap, node = self._snapper.snap(np.array([lat]), np.array([lng]))
        if not math.isfinite(gap[0]):
            return lat, lng
        return float(self.graph.lat[node[0]]), float(self.graph.lng[node[0]])

    def nearest_nodes(self, lat: FloatArray, lng: FloatArray) -> IntArray:
        """Each point's nearest road node, however far (the simulator places its city's
        points on the graph so)."""
        return self._snapper.snap(lat, lng, within_m=math.inf)[1]

    def _along(
        self,
        start: tuple[float, float],
        end: tuple[float, float],
        path: np.ndarray,
        gaps: FloatArray,
    ) -> Route:
        g = self.graph
        hops = path[:-1].astype(np.int64) * g.nodes + path[1:]
        ids = self._edges[np.searchsorted(self._keys, hops)]
        s_per_m = self._straight.seconds_per_m
        seconds = np.concatenate(([gaps[0] * s_per_m], g.seconds[ids], [gaps[1] * s_per_m]))
        metres = np.concatenate(([gaps[0]], g.length_m[ids], [gaps[1]]))
        lat = (start[0], *g.lat[path].tolist(), end[0])
        lng = (start[1], *g.lng[path].tolist(), end[1])
        at_s = tuple(np.concatenate(([0.0], np.cumsum(seconds))).tolist())
        at_m = tuple(np.concatenate(([0.0], np.cumsum(metres))).tolist())
        return Route(lat, lng, at_s, at_m, on_roads=True)

    def _straight_route(self, start: tuple[float, float], end: tuple[float, float]) -> Route:
        metres = haversine_m(*start, *end)
        seconds = metres * self._straight.seconds_per_m
        return Route((start[0], end[0]), (start[1], end[1]), (0.0, seconds), (0.0, metres),
                     on_roads=False)  # fmt: skip
