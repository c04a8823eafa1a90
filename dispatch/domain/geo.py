"""Plain value types for places. Validation lives here so every entry point shares it."""

from __future__ import annotations

import math
from dataclasses import dataclass

from dispatch.domain.errors import InvalidCommand


@dataclass(frozen=True, slots=True)
class Point:
    lat: float
    lng: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.lat) and -90.0 <= self.lat <= 90.0):
            raise InvalidCommand(f"latitude must be a number in [-90, 90], got {self.lat!r}")
        if not (math.isfinite(self.lng) and -180.0 <= self.lng <= 180.0):
            raise InvalidCommand(f"longitude must be a number in [-180, 180], got {self.lng!r}")

    def as_list(self) -> list[float]:
        return [self.lat, self.lng]

    @classmethod
    def from_list(cls, value: list[float] | tuple[float, float]) -> Point:
        return cls(float(value[0]), float(value[1]))
