"""The trip a quote prices: its distance and duration from pickup to drop-off.

Over the road network when one is configured (``RoadTrip``: the fastest route's metres
and free-flow seconds, access legs included, as a simulated driver would drive it), else
(and when either end is off the network, or no road joins them) the straight-line
estimate (``StraightLineTrip``): the great-circle distance times the road factor, driven
at the configured speed: the pickup ETAs' own estimate (``dispatch.matching.eta``).
Both are whole metres and whole seconds, rounded to the nearest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from dispatch.matching.eta import StraightLineEta
from dispatch.matching.geo import haversine_m
from dispatch.roads.routes import RoadRouter

Estimate = Literal["road_network", "straight_line"]
Place = tuple[float, float]  # latitude, longitude


@dataclass(frozen=True, slots=True)
class Trip:
    distance_m: int
    duration_s: int
    estimated_by: Estimate


class TripEstimator(Protocol):
    def trip(self, pickup: Place, dropoff: Place) -> Trip:
        """How far and how long from ``pickup`` to ``dropoff``."""
        ...


class StraightLineTrip:
    """Great-circle distance times the road factor, at the straight-line ETA's pace."""

    def __init__(self, road_factor: float = 1.35, speed_kmh: float = 25.0) -> None:
        self._seconds_per_m = StraightLineEta(road_factor, speed_kmh).seconds_per_m
        self._road_factor = road_factor

    def trip(self, pickup: Place, dropoff: Place) -> Trip:
        metres = haversine_m(*pickup, *dropoff)
        return Trip(
            round(metres * self._road_factor),
            round(metres * self._seconds_per_m),
            "straight_line",
        )


class RoadTrip:
    """The fastest route over the road network; the straight-line trip where there is none."""

    def __init__(self, router: RoadRouter, fallback: StraightLineTrip) -> None:
        self._router, self._fallback = router, fallback

    def trip(self, pickup: Place, dropoff: Place) -> Trip:
        route = self._router.route(pickup, dropoff)
        if not route.on_roads:
            return self._fallback.trip(pickup, dropoff)
        return Trip(round(route.metres), round(route.seconds), "road_network")
