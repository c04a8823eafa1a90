"""Pickup ETA providers. The matcher only knows the port; a routing engine can replace it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from dispatch.domain.geo import straight_line_pace

# A driver as a pickup's ETA query sees it: latitude, longitude, and its straight-line
# distance to the pickup in metres (the index has it already).
Source = tuple[float, float, float]


class EtaProvider(Protocol):
    """Estimated seconds for drivers to reach a pickup: one query for one pickup and all
    of its candidates (a road router answers it with one search from the pickup on the
    reversed graph, not one route per driver)."""

    def etas_s(self, to_lat: float, to_lng: float, sources: Sequence[Source]) -> list[float]:
        """Seconds from each source to the pickup, in the sources' order; ``math.inf`` for
        a source that cannot reach it."""
        ...


class StraightLineEta:
    """Great-circle distance times a road factor, at a constant urban speed."""

    def __init__(self, road_factor: float = 1.35, speed_kmh: float = 25.0) -> None:
        if road_factor < 1.0 or speed_kmh <= 0.0:
            raise ValueError("road_factor must be >= 1 and speed_kmh > 0")
        self._seconds_per_m = straight_line_pace(road_factor, speed_kmh)

    @property
    def seconds_per_m(self) -> float:
        """The pace of the estimate: seconds per metre of straight line."""
        return self._seconds_per_m

    def etas_s(self, to_lat: float, to_lng: float, sources: Sequence[Source]) -> list[float]:
        per_m = self._seconds_per_m
        return [distance_m * per_m for _, _, distance_m in sources]
