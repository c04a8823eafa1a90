"""Scheduled rides waiting for their dispatch (docs/MARKETPLACE.md, "Scheduled rides").

A booked ride is watched from its time less the longest pickup the matcher offers and the
margin; from then on, every ``check_every_s``, its expected pickup is estimated from the
ETA provider and the drivers available now (the median ETA of the nearest that serve its
product; the longest pickup offered when there are none), and the ride is due once its
time less that and the margin has come: ``StartDispatch``. A ride asking for its rider's
lock is left alone until the answer; a held one tries again after ``retry_s``. A booked
ride still not dispatched at its time (held: its rider busy, or still asking) is overdue,
once (``MarkOverdue``: its rider is told), and one still waiting at ``expires_at`` expires.
Everything here is folded from the shard's events and decided on the shard's clock: no
timer lives outside the log.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass
from uuid import UUID

from dispatch.matching.deadlines import Deadlines
from dispatch.matching.decisions import ExpireRequest, MarkOverdue, StartDispatch
from dispatch.matching.eta import EtaProvider
from dispatch.matching.fleet import Fleet
from dispatch.matching.strategies import PendingRide, SearchLimits, candidates


@dataclass(frozen=True, slots=True)
class SchedulingConfig:
    margin_s: float = 300.0
    check_every_s: float = 10.0
    retry_s: float = 30.0


class ScheduledRides:
    def __init__(self, config: SchedulingConfig, limits: SearchLimits) -> None:
        self.config, self.limits = config, limits
        self.booked: dict[UUID, PendingRide] = {}
        # Rides asking for their rider's lock (``DispatchDue`` recorded, no answer yet).
        self.activating: set[UUID] = set()
        self._check_at: dict[UUID, float] = {}
        self._checks = Deadlines[UUID](self._check_at.get, lambda: self._check_at.items())
        self._expiries = Deadlines[UUID](self._expiry, self._live_expiries)
        self._overdue = Deadlines[UUID](self._overdue_at, self._live_overdue)

    def __len__(self) -> int:
        return len(self.booked)

    # -- folded --------------------------------------------------------------------------
    def book(self, ride: PendingRide, activating: bool = False) -> None:
        assert ride.scheduled_for is not None
        self.booked[ride.ride_id] = ride
        self._expiries.add(ride.ride_id, ride.expires_at)
        if not ride.overdue:
            self._overdue.add(ride.ride_id, ride.scheduled_for)
        if activating:
            self.activating.add(ride.ride_id)
        else:
            watch_from = ride.scheduled_for - self.limits.max_eta_s - self.config.margin_s
            self._check(ride.ride_id, watch_from)

    def asking(self, ride_id: UUID) -> None:
        """``DispatchDue`` recorded: the ride waits for its rider's lock."""
        if ride_id in self.booked:
            self.activating.add(ride_id)
            self._check_at.pop(ride_id, None)

    def held(self, ride_id: UUID, at: float) -> None:
        """``DispatchHeld``: the rider is busy; the ride asks again after ``retry_s``."""
        if ride_id in self.booked:
            self.activating.discard(ride_id)
            self._check(ride_id, at + self.config.retry_s)

    def told_overdue(self, ride_id: UUID) -> None:
        """``Overdue`` recorded while the ride was still booked."""
        if (ride := self.booked.get(ride_id)) is not None:
            ride.overdue = True

    def leave(self, ride_id: UUID) -> PendingRide | None:
        """The ride's dispatch started, or it ended: no longer waiting here."""
        self.activating.discard(ride_id)
        self._check_at.pop(ride_id, None)
        return self.booked.pop(ride_id, None)

    # -- decided -------------------------------------------------------------------------
    def tick(
        self, now: float, fleet: Fleet, eta: EtaProvider, skip: Callable[[UUID], bool]
    ) -> list[StartDispatch | ExpireRequest | MarkOverdue]:
        """The booked rides past their search window expire, those past their time are
        overdue; the rides watched whose check is due are started when due (``skip``: a
        ride decided otherwise this tick)."""
        out: list[StartDispatch | ExpireRequest | MarkOverdue] = []
        expired = set(self._expiries.due(now))
        out.extend(ExpireRequest(ride_id) for ride_id in expired)
        out.extend(
            MarkOverdue(ride_id)
            for ride_id in self._overdue.due(now)
            if ride_id not in expired and not skip(ride_id)
        )
        for ride_id in self._checks.due(now):
            ride = self.booked[ride_id]
            if ride_id in expired or skip(ride_id):
                continue
            assert ride.scheduled_for is not None
            expected = self.expected_pickup_s(ride, fleet, eta, now)
            if now >= ride.scheduled_for - expected - self.config.margin_s:
                out.append(StartDispatch(ride_id, expected, self.config.margin_s))
            else:
                self._check(ride_id, now + self.config.check_every_s)
        return out

    def expected_pickup_s(
        self, ride: PendingRide, fleet: Fleet, eta: EtaProvider, now: float
    ) -> float:
        """The median pickup ETA of the nearest drivers available now that serve the
        ride's product, within the search's reach; the longest pickup offered if none."""
        found = candidates(ride, fleet, eta, self.limits, now, self.limits.candidates, set())
        if not found:
            return self.limits.max_eta_s
        return float(statistics.median(p.eta_s for p in found))

    # -- helpers -------------------------------------------------------------------------
    def _check(self, ride_id: UUID, at: float) -> None:
        self._check_at[ride_id] = at
        self._checks.add(ride_id, at)

    def _expiry(self, ride_id: UUID) -> float | None:
        ride = self.booked.get(ride_id)
        return None if ride is None else ride.expires_at

    def _live_expiries(self) -> list[tuple[UUID, float]]:
        return [(ride_id, ride.expires_at) for ride_id, ride in self.booked.items()]

    def _overdue_at(self, ride_id: UUID) -> float | None:
        ride = self.booked.get(ride_id)
        return None if ride is None or ride.overdue else ride.scheduled_for

    def _live_overdue(self) -> list[tuple[UUID, float]]:
        return [(r, at) for r in self.booked if (at := self._overdue_at(r)) is not None]
