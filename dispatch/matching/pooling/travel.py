"""Travel time between places for pooled plans, and which vehicles can reach a pickup."""

from __future__ import annotations

import math
from collections.abc import Collection, Hashable, Sequence

import numpy as np

from dispatch.domain.pooling import SLACK_S, LatLng, PoolRider, Route
from dispatch.matching.geo import TWO_R_M, haversine_m


class StraightLineTravel:
    """Great-circle metres times a pace (seconds per metre: the matcher's ETA pace, a road
    factor over an urban speed). It keeps the triangle inequality, which the searches'
    pruning and the plans' repair rely on (``dispatch.domain.pooling.without``)."""

    def __init__(self, seconds_per_m: float) -> None:
        if not (math.isfinite(seconds_per_m) and seconds_per_m > 0):
            raise ValueError(f"seconds_per_m must be a positive number, got {seconds_per_m!r}")
        self.seconds_per_m = seconds_per_m

    def __call__(self, a: LatLng, b: LatLng) -> float:
        return haversine_m(a[0], a[1], b[0], b[1]) * self.seconds_per_m


class Reach:
    """The vehicles that could reach a rider's pickup by the rider's latest pickup, nearest
    first: the straight line at the travel's pace is a lower bound on any plan's way there
    (the vehicle goes from where it is, perhaps by other stops first)."""

    def __init__(self, routes: Sequence[Route], seconds_per_m: float) -> None:
        self._ids: list[Hashable] = [r.vehicle_id for r in routes]
        self._seats = np.array([r.seats for r in routes], dtype=np.int64)
        self._ready = np.array([r.ready_at for r in routes], dtype=np.float64)
        lat = np.radians(np.array([r.at[0] for r in routes], dtype=np.float64))
        self._lat, self._cos = lat, np.cos(lat)
        self._lng = np.radians(np.array([r.at[1] for r in routes], dtype=np.float64))
        self._pace = seconds_per_m

    def of(self, rider: PoolRider, k: int, excluded: Collection[Hashable] = ()) -> list[Hashable]:
        """At most ``k`` vehicles, nearest first, with the seats and the time to reach the
        pickup in time, none of them in ``excluded``."""
        if not self._ids:
            return []
        la, ln = math.radians(rider.pickup[0]), math.radians(rider.pickup[1])
        s1 = np.sin((self._lat - la) * 0.5)
        s2 = np.sin((self._lng - ln) * 0.5)
        a = np.minimum(s1 * s1 + math.cos(la) * self._cos * s2 * s2, 1.0)
        seconds = TWO_R_M * np.arcsin(np.sqrt(a)) * self._pace
        in_time = self._ready + seconds <= rider.latest_pickup_at + SLACK_S
        ok = in_time & (self._seats >= rider.seats)
        idx = np.flatnonzero(ok)
        wanted = k + len(excluded)
        if len(idx) > wanted:
            idx = idx[np.argpartition(seconds[idx], wanted - 1)[:wanted]]
        idx = idx[np.argsort(seconds[idx], kind="stable")]
        ids = [self._ids[i] for i in idx]
        if excluded:
            ids = [v for v in ids if v not in excluded]
        return ids[:k]
