"""Plain value types for places, and the one check of a coordinate every entry point uses
(the aggregates, the matcher's index, the wire decoders and, through the bounds, the
pydantic schemas)."""

from __future__ import annotations

from dataclasses import dataclass

from dispatch.domain.errors import InvalidCommand

MIN_LAT, MAX_LAT = -90.0, 90.0
MIN_LNG, MAX_LNG = -180.0, 180.0


def straight_line_pace(road_factor: float, speed_kmh: float) -> float:
    """Seconds per straight-line metre: the road factor over an urban speed (the
    straight-line ETA's, a direct trip's and the pooled plans' pace)."""
    return road_factor / (speed_kmh / 3.6)


def latlng_problem(lat: float, lng: float) -> str | None:
    """Why ``(lat, lng)`` is not a place on Earth, or None. NaN fails every comparison and
    the infinities are out of range, so non-finite values are refused too."""
    if not MIN_LAT <= lat <= MAX_LAT:
        return f"latitude must be a finite number in [{MIN_LAT:g}, {MAX_LAT:g}], got {lat!r}"
    if not MIN_LNG <= lng <= MAX_LNG:
        return f"longitude must be a finite number in [{MIN_LNG:g}, {MAX_LNG:g}], got {lng!r}"
    return None


@dataclass(frozen=True, slots=True)
class Point:
    lat: float
    lng: float

    def __post_init__(self) -> None:
        problem = latlng_problem(self.lat, self.lng)
        if problem is not None:
            raise InvalidCommand(problem)

    def as_list(self) -> list[float]:
        return [self.lat, self.lng]

    @classmethod
    def from_list(cls, value: list[float] | tuple[float, float]) -> Point:
        return cls(float(value[0]), float(value[1]))
