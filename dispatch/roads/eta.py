"""Pickup ETAs routed over a road graph: one search per pickup for all its candidates.

A query snaps the pickup and each driver to their nearest road node (``Snapper``) and runs
one search from the pickup's node over the *reversed* graph (``ShortestPaths.times_to``):
the time from every driver's node to the pickup comes out of that one search, and a time
above the largest ETA the matcher keeps is ``inf``.

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

from dispatch.matching.eta import Source, StraightLineEta
from dispatch.roads.graph import RoadGraph
from dispatch.roads.paths import ScipyPaths, ShortestPaths
from dispatch.roads.snap import Snapper


class RoadNetworkEta:
    def __init__(
        self,
        graph: RoadGraph,
        max_eta_s: float,
        fallback: StraightLineEta,
        snap_m: float = 500.0,
        paths: ShortestPaths | None = None,
    ) -> None:
        """``paths``: the search (the engine passes networkit's; the default is the scipy
        reference, several times slower)."""
        if max_eta_s <= 0:
            raise ValueError("max_eta_s must be > 0")
        self.graph, self.max_eta_s, self.snap_m = graph, max_eta_s, snap_m
        self._snapper = Snapper(graph, snap_m)
        self._fallback = fallback
        self._access_s_per_m = fallback.seconds_per_m
        self._paths = paths if paths is not None else ScipyPaths(graph)

    def etas_s(self, to_lat: float, to_lng: float, sources: Sequence[Source]) -> list[float]:
        if not sources:
            return []
        straight = self._fallback.etas_s(to_lat, to_lng, sources)
        # One k-d tree query for the pickup (first) and every driver.
        gaps, nodes = self._snapper.snap(
            np.array([to_lat, *(s[0] for s in sources)]),
            np.array([to_lng, *(s[1] for s in sources)]),
        )
        gap, node = gaps[0], nodes[0]
        if not math.isfinite(gap):
            return straight  # the pickup is off the network
        gaps, nodes = gaps[1:], nodes[1:]
        on_road = np.isfinite(gaps) & (nodes != node)
        times = np.full(len(sources), np.inf)
        times[on_road] = self._paths.times_to(
            int(node), nodes[on_road], self.max_eta_s, max(straight, default=0.0)
        )
        # Off the network, or at the pickup's own node (the two access legs would go to
        # the node and back): the straight line. A driver beyond the bound stays inf.
        with np.errstate(invalid="ignore"):  # inf + inf off the network, not selected
            driven = times + (gaps + gap) * self._access_s_per_m
        etas: list[float] = np.where(on_road, driven, np.asarray(straight)).tolist()
        return etas
