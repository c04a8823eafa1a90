"""Geometry of the simulated city: a square around a centre, with demand hot spots."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

M_PER_DEG_LAT = 111_320.0
DEFAULT_CITY_KM = 30.0
MIN_CITY_KM, MAX_CITY_KM = 2.0, 200.0
INSIDE_DRAWS = 20  # a sized city's tries at a drop-off inside the square before clamping


@dataclass(frozen=True, slots=True)
class HotSpot:
    lat: float
    lng: float
    sigma_m: float
    weight: float


class City:
    """A ``size_km`` square centred on (lat, lng), flat-earth maths inside it."""

    def __init__(
        self,
        lat: float = 37.77,
        lng: float = -122.42,
        size_km: float = DEFAULT_CITY_KM,
        hotspots: int = 5,
        rng: random.Random | None = None,
        hotspot_scale: float = 1.0,
        redraw_outside: bool = False,
    ) -> None:
        """``hotspot_scale``: hot spots' spread (1.5-3.5 km) times this (a small city's)."""
        self.lat, self.lng, self.half_m = lat, lng, size_km * 500.0
        self.m_per_deg_lng = M_PER_DEG_LAT * math.cos(math.radians(lat))
        rng = rng or random.Random(0)
        self.hotspots = [
            HotSpot(
                *self.offset(
                    rng.uniform(-0.6, 0.6) * self.half_m, rng.uniform(-0.6, 0.6) * self.half_m
                ),
                sigma_m=rng.uniform(1_500, 3_500) * hotspot_scale,
                weight=rng.uniform(1, 3),
            )
            for _ in range(hotspots)
        ]
        self._weights = [h.weight for h in self.hotspots]
        self.anchors: list[tuple[float, float]] = []
        # A drop-off beyond the square: drawn again (a city of another size than the
        # default), or moved onto the edge (the default city, as in every earlier run).
        self.redraw_outside = redraw_outside

    @classmethod
    def covering(cls, points: list[tuple[float, float]]) -> City:
        """The square around recorded pickups (their 1st to 99th percentile, so a stray
        point does not blow it up), whose drivers start where the pickups are."""
        lats, lngs = sorted(p[0] for p in points), sorted(p[1] for p in points)

        def pct(values: list[float], q: float) -> float:
            return values[min(len(values) - 1, int(q * len(values)))]

        lat = (pct(lats, 0.01) + pct(lats, 0.99)) / 2
        lng = (pct(lngs, 0.01) + pct(lngs, 0.99)) / 2
        height_m = (pct(lats, 0.99) - pct(lats, 0.01)) * M_PER_DEG_LAT
        width_m = (pct(lngs, 0.99) - pct(lngs, 0.01)) * M_PER_DEG_LAT * math.cos(math.radians(lat))
        city = cls(lat, lng, size_km=max(2.0, max(height_m, width_m) / 1000 * 1.1), hotspots=0)
        city.anchors = points
        return city

    @classmethod
    def spanning(
        cls, lat: tuple[float, float], lng: tuple[float, float], rng: random.Random
    ) -> City:
        """The square over a box (a road network's extent, lowest and highest latitude and
        longitude): centred on it, as wide as its longer side, hot spots inside it (spread
        less in a city smaller than the default 30 km)."""
        mid_lat, mid_lng = (lat[0] + lat[1]) / 2, (lng[0] + lng[1]) / 2
        height_m = (lat[1] - lat[0]) * M_PER_DEG_LAT
        width_m = (lng[1] - lng[0]) * M_PER_DEG_LAT * math.cos(math.radians(mid_lat))
        size_km = max(height_m, width_m, 100.0) / 1000
        scale = min(1.0, size_km / DEFAULT_CITY_KM)
        return cls(mid_lat, mid_lng, size_km, rng=rng, hotspot_scale=scale)

    @classmethod
    def sized(
        cls,
        size_km: float,
        rng: random.Random | None = None,
        centre: tuple[float, float] = (37.77, -122.42),
    ) -> City:
        """The synthetic city: a ``size_km`` square around ``centre`` (San Francisco by
        default) whose hot spots spread less when it is smaller than the default 30 km."""
        if not MIN_CITY_KM <= size_km <= MAX_CITY_KM:  # NaN too
            raise ValueError(f"a city of {MIN_CITY_KM:g} to {MAX_CITY_KM:g} km, not {size_km:g}")
        scale = min(1.0, size_km / DEFAULT_CITY_KM)
        return cls(*centre, size_km=size_km, rng=rng, hotspot_scale=scale,
                   redraw_outside=size_km != DEFAULT_CITY_KM)  # fmt: skip

    @property
    def size_km(self) -> float:
        return self.half_m / 500.0

    def offset(self, east_m: float, north_m: float) -> tuple[float, float]:
        return self.lat + north_m / M_PER_DEG_LAT, self.lng + east_m / self.m_per_deg_lng

    def clamp(self, lat: float, lng: float) -> tuple[float, float]:
        dlat = self.half_m / M_PER_DEG_LAT
        dlng = self.half_m / self.m_per_deg_lng
        return (
            min(max(lat, self.lat - dlat), self.lat + dlat),
            min(max(lng, self.lng - dlng), self.lng + dlng),
        )

    def uniform(self, rng: random.Random) -> tuple[float, float]:
        return self.offset(
            rng.uniform(-self.half_m, self.half_m), rng.uniform(-self.half_m, self.half_m)
        )

    def demand_point(self, rng: random.Random, hot_share: float = 0.7) -> tuple[float, float]:
        """A pickup: mostly around a hot spot, otherwise anywhere in the city. A city made
        from recorded pickups picks one of them, moved by up to about 300 m."""
        if self.anchors:
            lat, lng = rng.choice(self.anchors)
            return self.clamp(
                lat + rng.gauss(0, 150) / M_PER_DEG_LAT,
                lng + rng.gauss(0, 150) / self.m_per_deg_lng,
            )
        if rng.random() >= hot_share or not self.hotspots:
            return self.uniform(rng)
        spot = rng.choices(self.hotspots, self._weights)[0]
        lat = spot.lat + rng.gauss(0, spot.sigma_m) / M_PER_DEG_LAT
        lng = spot.lng + rng.gauss(0, spot.sigma_m) / self.m_per_deg_lng
        return self.clamp(lat, lng)

    def near(
        self, rng: random.Random, lat: float, lng: float, mean_m: float
    ) -> tuple[float, float]:
        """A point about ``mean_m`` away in a random direction, kept inside the city: one
        beyond the square is drawn again (``redraw_outside``, up to ``INSIDE_DRAWS`` tries)
        or moved onto its edge."""
        for _ in range(INSIDE_DRAWS if self.redraw_outside else 1):
            dist = rng.expovariate(1.0 / mean_m)
            angle = rng.uniform(0, 2 * math.pi)
            point = (
                lat + dist * math.sin(angle) / M_PER_DEG_LAT,
                lng + dist * math.cos(angle) / self.m_per_deg_lng,
            )
            inside = self.clamp(*point)
            if inside == point:
                return point
        return inside

    def step_towards(
        self,
        here: tuple[float, float],
        there: tuple[float, float],
        rng: random.Random,
        mean_m: float,
    ) -> tuple[float, float]:
        """A point on the way from ``here`` to ``there``, about ``mean_m`` on (never past)."""
        total = self.distance_m(here, there)
        if total == 0:
            return here
        f = min(1.0, rng.expovariate(1.0 / mean_m) / total)
        return here[0] + (there[0] - here[0]) * f, here[1] + (there[1] - here[1]) * f

    def distance_m(self, a: tuple[float, float], b: tuple[float, float]) -> float:
        return math.hypot((a[0] - b[0]) * M_PER_DEG_LAT, (a[1] - b[1]) * self.m_per_deg_lng)
