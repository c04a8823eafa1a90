"""The pending rides and when each may search: a tick's work follows what changed.

A ride is *ready* when it entered pending (new, or back from a declined, expired or
cancelled offer) or when new supply appeared within its search reach. A ready ride that
found no driver sleeps: it is woken by supply within reach of its pickup (a driver becoming
available, or an available driver pinging a first position or entering another H3 cell),
and otherwise searches again after a backoff that doubles from ``first_retry_s`` up to
``max_retry_s`` (for a driver that comes into reach without leaving its cell). A ready
ride that was paired stays ready until it leaves pending, so a pairing that was not
recorded is searched again.

The pickups of pending rides are kept in the same H3 index the drivers are, so "within
reach" is the index's exact radius search, not an approximation.
"""

from __future__ import annotations

import heapq
import itertools
import math
from uuid import UUID

from dispatch.matching.index import DriverIndex
from dispatch.matching.strategies import PendingRide


class WaitingRides:
    def __init__(
        self,
        reach_m: float,
        resolution: int,
        first_retry_s: float,
        max_retry_s: float,
    ) -> None:
        self.reach_m = reach_m
        self.first_retry_s, self.max_retry_s = first_retry_s, max(first_retry_s, max_retry_s)
        self._rides: dict[UUID, PendingRide] = {}
        self._ready: dict[UUID, PendingRide] = {}  # in the order they became ready
        self._asleep: list[tuple[float, int, UUID]] = []  # lazy heap (retry_at, seq, id)
        self._seq = itertools.count()
        # Pickups by H3 cell; no TTL applies (queries pass no time), so it is never expired.
        self._pickups = DriverIndex[UUID](resolution, ttl_s=1.0, max_radius_m=max(reach_m, 1.0))

    def __len__(self) -> int:
        return len(self._rides)

    def __contains__(self, ride_id: object) -> bool:
        return ride_id in self._rides

    @property
    def heap_size(self) -> int:
        return len(self._asleep)

    def add(self, ride: PendingRide) -> None:
        """A ride entered pending: it searches at the next assignment."""
        ride.misses, ride.retry_at = 0, 0.0
        self._rides[ride.ride_id] = ride
        self._ready[ride.ride_id] = ride
        self._pickups.upsert(ride.ride_id, ride.lat, ride.lng, ride.requested_at)

    def remove(self, ride_id: UUID) -> None:
        """A ride left pending (offered, or ended)."""
        if self._rides.pop(ride_id, None) is not None:
            self._ready.pop(ride_id, None)
            self._pickups.remove(ride_id)

    def ready(self, now: float) -> list[PendingRide]:
        """The rides that may search at ``now``: woken, new, or whose backoff has ended."""
        heap = self._asleep
        while heap and heap[0][0] <= now:
            at, _, ride_id = heapq.heappop(heap)
            ride = self._rides.get(ride_id)
            if ride is not None and ride.retry_at == at and ride_id not in self._ready:
                self._ready[ride_id] = ride
        return list(self._ready.values())

    def unmatched(self, ride: PendingRide, now: float) -> None:
        """A ready ride found no driver: asleep until supply near it, or its backoff."""
        if self._ready.pop(ride.ride_id, None) is None:
            return
        backoff = self.first_retry_s * 2.0 ** min(ride.misses, 60)
        ride.retry_at = now + min(backoff, self.max_retry_s)
        ride.misses += 1
        heapq.heappush(self._asleep, (ride.retry_at, next(self._seq), ride.ride_id))
        if len(self._asleep) > 2 * len(self._rides) + 1024:  # drop superseded entries
            self._asleep = [
                (r.retry_at, next(self._seq), i)
                for i, r in self._rides.items()
                if i not in self._ready
            ]
            heapq.heapify(self._asleep)

    def wake_near(self, lat: float, lng: float) -> int:
        """New supply at ``lat``/``lng``: every sleeping ride within reach is ready again.
        Returns how many were woken."""
        n = len(self._pickups)
        if n == 0 or not (math.isfinite(lat) and math.isfinite(lng)):
            return 0
        woken = 0
        for ride_id, _ in self._pickups.nearest(lat, lng, n, self.reach_m):
            if ride_id not in self._ready:
                ride = self._rides[ride_id]
                ride.retry_at = 0.0
                self._ready[ride_id] = ride
                woken += 1
        return woken
