"""Pickup ETA providers. The matcher only knows the port; a routing engine can replace it."""

from __future__ import annotations

from typing import Protocol


class EtaProvider(Protocol):
    """Estimated seconds for a driver to reach a pickup."""

    def eta_s(
        self, from_lat: float, from_lng: float, to_lat: float, to_lng: float, distance_m: float
    ) -> float: ...


class StraightLineEta:
    """Great-circle distance times a road factor, at a constant urban speed."""

    def __init__(self, road_factor: float = 1.35, speed_kmh: float = 25.0) -> None:
        if road_factor < 1.0 or speed_kmh <= 0.0:
            raise ValueError("road_factor must be >= 1 and speed_kmh > 0")
        self._seconds_per_m = road_factor / (speed_kmh / 3.6)

    def eta_s(
        self, from_lat: float, from_lng: float, to_lat: float, to_lng: float, distance_m: float
    ) -> float:
        return distance_m * self._seconds_per_m
