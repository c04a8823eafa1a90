"""Assignment strategies: which pending ride is offered to which available driver.

``greedy`` offers each ride, oldest first, the best-ETA free driver at once. ``batch`` waits
for a window and solves a min-cost bipartite assignment over all pending rides with
scipy's ``linear_sum_assignment``: it maximises the number of rides matched, then
minimises their total pickup ETA. Both search, for each ride, only the drivers whose
vehicle serves the ride's product (``Fleet``).
"""

from __future__ import annotations

from collections.abc import Container, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Protocol
from uuid import UUID

import numpy as np
from scipy.optimize import linear_sum_assignment

from dispatch.matching.eta import EtaProvider
from dispatch.matching.fleet import Fleet
from dispatch.matching.index import MAX_SKIP

UNMATCHED_COST = 1.0e7  # larger than any feasible total ETA, so matching more rides wins


@dataclass(slots=True)
class PendingRide:
    ride_id: UUID
    lat: float
    lng: float
    requested_at: float
    expires_at: float
    excluded: set[UUID] = field(default_factory=set)
    product: str = "standard"  # only drivers whose vehicle serves it are offered the ride
    # A scheduled ride: its time (None: immediate), and whether its rider was told no
    # driver was found by then (``Ride.Overdue``).
    scheduled_for: float | None = None
    overdue: bool = False
    # After a search that found nobody: when to search again at the latest, and how many
    # searches in a row found nobody (scheduling, not state: ``waiting.WaitingRides``).
    retry_at: float = field(default=0.0, compare=False)
    misses: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class Pairing:
    ride_id: UUID
    driver_id: UUID
    eta_s: float
    distance_m: float


@dataclass(frozen=True, slots=True)
class SearchLimits:
    radius_m: float = 3_000.0
    max_eta_s: float = 900.0
    candidates: int = 8
    max_batch_candidates: int = 32


class Strategy(Protocol):
    name: str

    def due(self, now: float) -> bool:
        """Whether this tick should assign (the batch strategy waits for its window)."""
        ...

    def assign(
        self,
        rides: Sequence[PendingRide],
        index: Fleet,
        eta: EtaProvider,
        limits: SearchLimits,
        now: float,
    ) -> list[Pairing]: ...


class _Skip:
    """Container view of 'excluded for this ride, or already taken in this round'."""

    __slots__ = ("excluded", "taken")

    def __init__(self, excluded: set[UUID], taken: set[Hashable]) -> None:
        self.excluded, self.taken = excluded, taken

    def __contains__(self, item: object) -> bool:
        return item in self.taken or item in self.excluded


def _skip(excluded: set[UUID], taken: set[Hashable]) -> Container[UUID]:
    """The drivers a ride must not get: as one small set when that is cheap (the index then
    skips them inside its compiled scan), else as a view it checks afterwards."""
    if not taken:
        return excluded
    if len(excluded) + len(taken) <= MAX_SKIP:
        return excluded | taken  # type: ignore[operator]
    return _Skip(excluded, taken)


def candidates(
    ride: PendingRide,
    index: Fleet,
    eta: EtaProvider,
    limits: SearchLimits,
    now: float,
    k: int,
    taken: set[Hashable],
) -> list[Pairing]:
    """The ride's k nearest free drivers that serve its product, with their ETA, best ETA
    first, within the cutoff."""
    skip = _skip(ride.excluded, taken)
    found = index.nearest(ride.product, ride.lat, ride.lng, k, limits.radius_m, now, skip)
    if not found:
        return []
    sources = []
    for driver_id, dist in found:
        pos = index.position(driver_id)
        assert pos is not None
        sources.append((pos[0], pos[1], dist))
    etas = eta.etas_s(ride.lat, ride.lng, sources)
    out = [
        Pairing(ride.ride_id, driver_id, t, dist)  # type: ignore[arg-type]
        for (driver_id, dist), t in zip(found, etas, strict=True)
        if t <= limits.max_eta_s
    ]
    out.sort(key=lambda p: p.eta_s)
    return out


class Greedy:
    name = "greedy"

    def due(self, now: float) -> bool:
        return True

    def assign(
        self,
        rides: Sequence[PendingRide],
        index: Fleet,
        eta: EtaProvider,
        limits: SearchLimits,
        now: float,
    ) -> list[Pairing]:
        taken: set[Hashable] = set()
        out = []
        for ride in sorted(rides, key=lambda r: r.requested_at):
            best = candidates(ride, index, eta, limits, now, limits.candidates, taken)
            if best:
                out.append(best[0])
                taken.add(best[0].driver_id)
        return out


class Batch:
    name = "batch"

    def __init__(self, window_s: float = 2.0) -> None:
        self.window_s = window_s
        self._next_at = float("-inf")

    def due(self, now: float) -> bool:
        if now < self._next_at:
            return False
        self._next_at = now + self.window_s
        return True

    def assign(
        self,
        rides: Sequence[PendingRide],
        index: Fleet,
        eta: EtaProvider,
        limits: SearchLimits,
        now: float,
    ) -> list[Pairing]:
        if not rides:
            return []
        # Greedy picks among its k nearest drivers not taken by the (at most n - 1) rides
        # before it, so every greedy choice is within the k + n - 1 nearest: with that many
        # candidates the optimum is never worse than greedy (up to the cap on huge batches).
        k = min(limits.candidates + len(rides) - 1, limits.max_batch_candidates)
        rows = [candidates(r, index, eta, limits, now, k, set()) for r in rides]
        columns: dict[UUID, int] = {}
        for row in rows:
            for p in row:
                columns.setdefault(p.driver_id, len(columns))
        if not columns:
            return []
        cost = np.full((len(rides), len(columns)), UNMATCHED_COST)
        for i, row in enumerate(rows):
            for p in row:
                cost[i, columns[p.driver_id]] = p.eta_s
        picked_rows, picked_cols = linear_sum_assignment(cost)
        by_pair = {(p.ride_id, p.driver_id): p for row in rows for p in row}
        drivers = list(columns)
        out = []
        for i, j in zip(picked_rows, picked_cols, strict=True):
            if cost[i, j] < UNMATCHED_COST:
                out.append(by_pair[(rides[i].ride_id, drivers[j])])
        return out


def make_strategy(name: str, batch_window_s: float = 2.0) -> Strategy:
    if name == "greedy":
        return Greedy()
    if name == "batch":
        return Batch(batch_window_s)
    raise ValueError(f"unknown strategy {name!r}: choose 'greedy' or 'batch'")
