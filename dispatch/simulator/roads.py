"""Simulated drivers on a road network: the city placed on the graph, points snapped to its
nodes, and every leg a route over it (docs/SIMULATION.md, "Road networks").

The city covers the graph's extent (its nodes' bounding box), with its hot spots on road
nodes; driver starts, pickups, drop-offs and cruising targets are snapped to their nearest
node, however far it is (the square is wider than a graph that is not square, and a graph
has holes: water, parks). A driver who changes plans between two points of its route first
drives on to the route's next point (it does not turn round in the middle of a street), then
takes the new route from there: so a driver is always on a road, and on its current route.
"""

from __future__ import annotations

import bisect
import dataclasses
import random
from collections.abc import Sequence
from typing import Any

import numpy as np

from dispatch.roads.graph import RoadGraph
from dispatch.roads.routes import RoadRouter, Route
from dispatch.simulator.agents import SimDriver
from dispatch.simulator.city import City
from dispatch.simulator.results import Request


class RoadLegs:
    def __init__(self, router: RoadRouter, source: str = "") -> None:
        self.router, self.source = router, source

    def city(self, rng: random.Random) -> City:
        """The synthetic city over the graph's extent, its hot spots on road nodes."""
        city = city_over(self.router.graph, rng)
        city.hotspots = [
            dataclasses.replace(h, lat=lat, lng=lng)
            for h in city.hotspots
            for lat, lng in [self.snap((h.lat, h.lng))]
        ]
        return city

    def snap(self, point: tuple[float, float]) -> tuple[float, float]:
        """The road node nearest to ``point``."""
        return self.snap_all([point])[0]

    def snap_all(self, points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
        if not points:
            return []
        lat, lng = np.array(points, dtype=np.float64).T
        nodes = self.router.nearest_nodes(lat, lng)
        g = self.router.graph
        return list(zip(g.lat[nodes].tolist(), g.lng[nodes].tolist(), strict=True))

    def snap_requests(self, requests: Sequence[Request]) -> list[Request]:
        pickups = self.snap_all([r.pickup for r in requests])
        dropoffs = self.snap_all([r.dropoff for r in requests])
        return [
            dataclasses.replace(r, pickup=p, dropoff=d)
            for r, p, d in zip(requests, pickups, dropoffs, strict=True)
        ]

    def leg(self, d: SimDriver, now: float, to: tuple[float, float]) -> Route:
        """The route from where ``d`` is at ``now`` to ``to``: on to its current route's next
        point first when it is between two."""
        ahead = self.corner(d, now)
        if ahead is None:
            return self.router.route(d.position(now), to)
        return join(ahead, self.router.route(ahead.end, to))

    def corner(self, d: SimDriver, now: float) -> Route | None:
        """The rest of the segment ``d`` is on at ``now`` (None: it is at a point of its
        route, or has no route)."""
        route = d.route
        if route is None or len(route.lat) < 2:
            return None
        f = d.fraction(now)
        if f >= 1.0:
            return None
        t = f * route.seconds
        i = max(1, bisect.bisect_left(route.at_s, t))
        if route.at_s[i] <= t:
            return None
        here = route.position(f)
        return Route(
            (here[0], route.lat[i]),
            (here[1], route.lng[i]),
            (0.0, route.at_s[i] - t),
            (0.0, max(0.0, route.at_m[i] - route.metres_at(f))),
            on_roads=route.on_roads,
        )

    def describe(self, eta: str) -> dict[str, Any]:
        g = self.router.graph
        return {"source": self.source, "nodes": g.nodes, "edges": g.edges, "eta": eta}


def city_over(graph: RoadGraph, rng: random.Random) -> City:
    """The square over the graph's extent (its nodes' bounding box)."""
    lat = (float(graph.lat.min()), float(graph.lat.max()))
    lng = (float(graph.lng.min()), float(graph.lng.max()))
    return City.spanning(lat, lng, rng)


def join(first: Route, then: Route) -> Route:
    """``first``, then ``then`` (which starts where ``first`` ends)."""
    s, m = first.seconds, first.metres
    return Route(
        first.lat + then.lat[1:],
        first.lng + then.lng[1:],
        first.at_s + tuple(s + x for x in then.at_s[1:]),
        first.at_m + tuple(m + x for x in then.at_m[1:]),
        on_roads=first.on_roads and then.on_roads,
    )
