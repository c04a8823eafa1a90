"""The shard's matcher: follows the shard's events and driver pings, and decides offers.

Its state is derived: a fold over the shard's events (pending rides, open offers, which
drivers are available) plus the latest pings. It never writes; ``tick`` returns decisions
that the shard application records as events, which come back here through ``observe``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from dispatch.domain.driver import (
    AVAILABILITY_TOPICS,
    REGISTERED,
    Availability,
    Driver,
    DriverStatus,
    next_availability,
)
from dispatch.domain.ride import RIDE_ENDINGS, Ride
from dispatch.matching.decisions import Decision, ExpireOffer, ExpireRequest, MakeOffer
from dispatch.matching.eta import EtaProvider
from dispatch.matching.index import DriverIndex
from dispatch.matching.strategies import PendingRide, SearchLimits, Strategy

# A driver's events the matcher folds: those that move its availability (registration
# starts at the domain's REGISTERED, so it needs no event).
DRIVER_AVAILABILITY_EVENTS = AVAILABILITY_TOPICS - {Driver.Created.TOPIC}


@dataclass(frozen=True, slots=True)
class MatcherConfig:
    offer_timeout_s: float = 15.0
    limits: SearchLimits = field(default_factory=SearchLimits)
    expire_every_s: float = 10.0
    # A ride that found no driver is searched again after this long, or at once when a
    # driver becomes available: an empty search over a wide radius is the costly kind.
    retry_unmatched_s: float = 2.0


@dataclass
class MatcherStats:
    offers: int = 0
    offer_expiries: int = 0
    request_expiries: int = 0
    ticks: int = 0
    pings: int = 0


def _ts(value: datetime) -> float:
    return value.timestamp()


class Matcher:
    def __init__(
        self, index: DriverIndex[UUID], eta: EtaProvider, strategy: Strategy, config: MatcherConfig
    ) -> None:
        self.index, self.eta, self.strategy, self.config = index, eta, strategy, config
        self.pending: dict[UUID, PendingRide] = {}
        self.offers: dict[UUID, tuple[UUID, float, PendingRide]] = {}
        self.assigned: dict[UUID, PendingRide] = {}
        self.available: set[UUID] = set()
        self.drivers: dict[UUID, Availability] = {}  # folded with the domain's rule
        self.positions: dict[UUID, tuple[float, float, float]] = {}
        self.stats = MatcherStats()
        self._next_expire = float("-inf")
        # By event type name: the ride endings and a driver's availability events come from
        # the domain's tables, not from a list of their own.
        self._handlers: dict[str, Callable[[Any], None]] = {
            Ride.Created.TOPIC: self._on_requested,
            Ride.Offered.TOPIC: self._on_offered,
            Ride.OfferDeclined.TOPIC: self._on_offer_ended,
            Ride.OfferExpired.TOPIC: self._on_offer_ended,
            Ride.Accepted.TOPIC: self._on_accepted,
            Ride.CancelledByDriver.TOPIC: self._on_driver_cancelled,
            **dict.fromkeys(RIDE_ENDINGS, self._on_ride_closed),
            **dict.fromkeys(DRIVER_AVAILABILITY_EVENTS, self._on_driver),
        }

    @property
    def topics(self) -> frozenset[str]:
        """The event types the matcher folds (restore skips every other type unread)."""
        return frozenset(self._handlers)

    @property
    def driver_topics(self) -> frozenset[str]:
        """The driver events the matcher folds by their type and driver id alone."""
        return DRIVER_AVAILABILITY_EVENTS

    # -- inputs --------------------------------------------------------------------------
    def observe(self, event: Any) -> None:
        """Fold one of the shard's events into the matcher's state."""
        handler = self._handlers.get(type(event).TOPIC)
        if handler is not None:
            handler(event)

    def ping(self, driver_id: UUID, lat: float, lng: float, at: float) -> None:
        """Record a driver's position; available drivers are (re)indexed at once."""
        self.stats.pings += 1
        last = self.positions.get(driver_id)
        if last is not None and last[2] > at:
            return  # out of order: keep the newer position
        self.positions[driver_id] = (lat, lng, at)
        if driver_id in self.available:
            self.index.upsert(driver_id, lat, lng, at)

    # -- decisions -----------------------------------------------------------------------
    def tick(self, now: float) -> list[Decision]:
        """Offer expiry, request expiry, then assignment (when the strategy is due)."""
        self.stats.ticks += 1
        decisions: list[Decision] = []
        for ride_id, (_, expires_at, _) in self.offers.items():
            if expires_at <= now:
                decisions.append(ExpireOffer(ride_id))
        expired = {r.ride_id for r in self.pending.values() if r.expires_at <= now}
        decisions.extend(ExpireRequest(ride_id) for ride_id in expired)
        if now >= self._next_expire:
            self.index.expire(now)
            self._next_expire = now + self.config.expire_every_s
        waiting = [
            r for r in self.pending.values() if r.ride_id not in expired and r.retry_at <= now
        ]
        if waiting and self.strategy.due(now):
            limits = self.config.limits
            pairings = self.strategy.assign(waiting, self.index, self.eta, limits, now)
            matched = {p.ride_id for p in pairings}
            for ride in waiting:
                if ride.ride_id not in matched:
                    ride.retry_at = now + self.config.retry_unmatched_s
            for p in pairings:
                decisions.append(
                    MakeOffer(
                        p.ride_id,
                        p.driver_id,
                        p.eta_s,
                        p.distance_m,
                        now + self.config.offer_timeout_s,
                    )
                )
        return decisions

    # -- event handlers --------------------------------------------------------------------
    def _on_requested(self, e: Ride.Created) -> None:
        ts = _ts(e.timestamp)
        lat, lng = e.pickup
        self.pending[e.originator_id] = PendingRide(
            e.originator_id, lat, lng, ts, _ts(e.expires_at)
        )

    def _on_offered(self, e: Ride.Offered) -> None:
        ride = self.pending.pop(e.originator_id, None)
        if ride is not None:
            self.stats.offers += 1
            self.offers[e.originator_id] = (UUID(e.driver_id), _ts(e.offer_expires_at), ride)

    def _on_offer_ended(self, e: Ride.OfferDeclined | Ride.OfferExpired) -> None:
        offer = self.offers.pop(e.originator_id, None)
        if offer is not None:
            if isinstance(e, Ride.OfferExpired):
                self.stats.offer_expiries += 1
            ride = offer[2]
            ride.excluded.add(UUID(e.driver_id))
            self.pending[ride.ride_id] = ride

    def _on_accepted(self, e: Ride.Accepted) -> None:
        offer = self.offers.pop(e.originator_id, None)
        if offer is not None:
            self.assigned[e.originator_id] = offer[2]

    def _on_ride_closed(self, e: Any) -> None:
        if isinstance(e, Ride.Expired):
            self.stats.request_expiries += 1
        self.pending.pop(e.originator_id, None)
        self.offers.pop(e.originator_id, None)
        self.assigned.pop(e.originator_id, None)

    def _on_driver_cancelled(self, e: Ride.CancelledByDriver) -> None:
        ride = self.assigned.pop(e.originator_id, None)
        if ride is not None:
            ride.excluded.add(UUID(e.driver_id))
            self.pending[ride.ride_id] = ride

    def _on_driver(self, e: Any) -> None:
        self.observe_driver(e.originator_id, e.TOPIC)

    def observe_driver(self, driver_id: UUID, topic: str) -> None:
        """Fold one of a driver's availability events, known by its type alone (restore
        calls this without decoding the event: ``driver_topics``)."""
        after = next_availability(self.drivers.get(driver_id, REGISTERED), topic)
        self.drivers[driver_id] = after
        if after[0] == DriverStatus.AVAILABLE:
            if driver_id not in self.available:
                self._make_available(driver_id)
        elif driver_id in self.available:
            self.available.discard(driver_id)
            self.index.remove(driver_id)

    def _make_available(self, driver_id: UUID) -> None:
        self.available.add(driver_id)
        for ride in self.pending.values():  # new supply: unmatched rides may search again
            ride.retry_at = 0.0
        pos = self.positions.get(driver_id)
        if pos is not None:
            self.index.upsert(driver_id, pos[0], pos[1], pos[2])
