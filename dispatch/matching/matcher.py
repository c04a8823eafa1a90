"""The shard's matcher: follows the shard's events and driver pings, and decides offers.

Its state is derived: a fold over the shard's events (pending rides, open offers, which
drivers are available) plus the latest pings. It never writes; ``tick`` returns decisions
that the shard application records as events, which come back here through ``observe``.

A tick's work follows what changed, not the backlog: offers and requests fall due from
deadline heaps, and only rides that are new, back from an offer, woken by new supply
within their search reach, or at the end of their backoff search (``waiting.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
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
from dispatch.domain.geo import straight_line_pace
from dispatch.domain.place_queues import PlaceQueues
from dispatch.domain.pooling import Sharing
from dispatch.domain.products import DEFAULT_CATALOG, DEFAULT_VEHICLE, Catalog
from dispatch.domain.products import Vehicle as Registered
from dispatch.domain.ride import MOVED, RIDE_ENDINGS, Ride
from dispatch.domain.surge import Surge
from dispatch.matching.deadlines import Deadlines
from dispatch.matching.decisions import (
    Decision,
    ExpireOffer,
    ExpireRequest,
    ExtendPlan,
    LocateDriver,
    MakeOffer,
    MarkOverdue,
    StartDispatch,
)
from dispatch.matching.eta import EtaProvider
from dispatch.matching.fleet import Fleet
from dispatch.matching.geo import haversine_m
from dispatch.matching.hints import Hints
from dispatch.matching.index import DriverIndex
from dispatch.matching.places import PlaceLocator
from dispatch.matching.pooled import PLAN_BY_TYPE, PLAN_DECODED, PooledRides, PoolMatching, Vehicle
from dispatch.matching.scheduled import ScheduledRides, SchedulingConfig
from dispatch.matching.strategies import Pairing, PendingRide, SearchLimits, Strategy
from dispatch.matching.surge import SurgeTracking
from dispatch.matching.waiting import WaitingRides

# A driver's events the matcher folds: those that move its availability (registration
# starts at the domain's REGISTERED, so it needs no event).
DRIVER_AVAILABILITY_EVENTS = AVAILABILITY_TOPICS - {Driver.Created.TOPIC}
_HANDED_OFF = Driver.HandedOff.TOPIC
# Folded by type and driver id alone: all but an arrival, which carries the vehicle, and
# the shared plans' events that carry the plan or the ride that ended.
_BY_TYPE = DRIVER_AVAILABILITY_EVENTS - {Driver.Arrived.TOPIC} - PLAN_DECODED


@dataclass(frozen=True, slots=True)
class MatcherConfig:
    offer_timeout_s: float = 15.0
    limits: SearchLimits = field(default_factory=SearchLimits)
    expire_every_s: float = 10.0
    # A ride that found no driver searches again when a driver becomes available within
    # its search radius, or else after a backoff doubling from retry_unmatched_s to
    # retry_max_s: an empty search over a wide radius is the costly kind.
    retry_unmatched_s: float = 2.0
    retry_max_s: float = 60.0
    scheduling: SchedulingConfig = field(default_factory=SchedulingConfig)
    # Shared rides' matching (docs/ARCHITECTURE.md, "Shared rides"): the shard's
    # straight-line pace (25 km/h, road factor 1.35, by default) and a window's limits.
    pool: PoolMatching = field(default_factory=lambda: PoolMatching(straight_line_pace(1.35, 25.0)))


@dataclass
class MatcherStats:
    offers: int = 0
    offer_expiries: int = 0
    request_expiries: int = 0
    ticks: int = 0
    pings: int = 0
    searches: int = 0  # rides searched for, summed over ticks
    woken: int = 0  # rides woken by new supply within reach
    crossings: int = 0  # geofence decisions (a driver's places changed)
    queue_offers: int = 0  # offers made to a place's queue head
    hints: int = 0  # repositioning hints decided
    dispatch_starts: int = 0  # scheduled rides found due
    overdue: int = 0  # scheduled rides with no driver at their time


def _ts(value: datetime) -> float:
    return value.timestamp()


class Matcher:
    def __init__(
        self,
        index: DriverIndex[UUID],
        eta: EtaProvider,
        strategy: Strategy,
        config: MatcherConfig,
        surge: SurgeTracking | None = None,
        catalog: Catalog = DEFAULT_CATALOG,
        places: PlaceLocator | None = None,
        hints: Hints | None = None,
    ) -> None:
        self.index, self.eta, self.strategy, self.config = index, eta, strategy, config
        # Geofenced places (None or empty: none): which own drivers are inside each, and
        # each place's queue, folded from the crossings the shard recorded (log order);
        # ``_located``: the places last proposed for a driver whose crossing is in flight.
        self.places = places if places else None
        self.place_queues: PlaceQueues[UUID] = PlaceQueues(
            self.places.queued() if self.places is not None else None
        )
        self._located: dict[UUID, frozenset[str]] = {}
        self._crossings: dict[UUID, frozenset[str]] = {}
        self.hints = hints  # None: no repositioning hints
        # ``index`` holds every available driver (positions, surge's supply); ``fleet``
        # searches them by product (docs/MARKETPLACE.md, "The product lever").
        self.catalog = catalog
        self.fleet = Fleet(index, catalog.names)
        # The vehicles of the drivers registered or arrived here, and of other shards'
        # drivers as those said (``know_vehicle``); a driver in neither drives the default
        # vehicle, which is never stored.
        self.vehicles: dict[UUID, Registered] = {}
        self.foreign_vehicles: dict[UUID, Registered] = {}
        self.surge = surge  # None: surge off (every multiplier 1.00)
        self.pending: dict[UUID, PendingRide] = {}
        self.offers: dict[UUID, tuple[UUID, float, PendingRide]] = {}
        self.assigned: dict[UUID, PendingRide] = {}
        self.available: set[UUID] = set()
        self.drivers: dict[UUID, Availability] = {}  # folded with the domain's rule
        # The drivers this shard serves (folded from its own events; the others in
        # ``drivers`` are other shards', as they said: ``observe_foreign``).
        self.own: set[UUID] = set()
        self.positions: dict[UUID, tuple[float, float, float]] = {}
        self.stats = MatcherStats()
        self._next_expire = float("-inf")
        self.waiting = WaitingRides(
            min(config.limits.radius_m, index.max_radius_m),
            max(0, index.resolution - 1),
            config.retry_unmatched_s,
            config.retry_max_s,
        )
        self._offer_deadlines = Deadlines[UUID](self._offer_expiry, self._live_offers)
        self._request_deadlines = Deadlines[UUID](self._request_expiry, self._live_requests)
        # Scheduled rides booked and not yet dispatched; and, once dispatched, when each is
        # overdue (its time, while it has no driver and its rider was not told).
        self.scheduled = ScheduledRides(config.scheduling, config.limits)
        self._overdue_deadlines = Deadlines[UUID](self._overdue_at, self._live_overdue)
        # Shared rides: their terms, the pooled drivers' plans, and their windows.
        self.pool = PooledRides(config.pool, batch=strategy.name == "batch")
        # By event type name: the ride endings and a driver's availability events come from
        # the domain's tables, not from a list of their own.
        self._handlers: dict[str, Callable[[Any], None]] = {
            Ride.Created.TOPIC: self._on_requested,
            Ride.Booked.TOPIC: self._on_booked,
            Ride.DispatchDue.TOPIC: self._on_dispatch_due,
            Ride.DispatchHeld.TOPIC: self._on_dispatch_held,
            Ride.DispatchStarted.TOPIC: self._on_dispatch_started,
            Ride.Overdue.TOPIC: self._on_overdue,
            Ride.Offered.TOPIC: self._on_offered,
            Ride.DriverAsked.TOPIC: self._on_asked,
            Ride.AskEnded.TOPIC: self._on_offer_ended,
            Ride.OfferDeclined.TOPIC: self._on_offer_ended,
            Ride.OfferExpired.TOPIC: self._on_offer_ended,
            Ride.Accepted.TOPIC: self._on_accepted,
            Ride.Pooled.TOPIC: self._on_pooled,
            Ride.TripStarted.TOPIC: self._on_trip_started,
            Ride.CancelledByDriver.TOPIC: self._on_driver_cancelled,
            **dict.fromkeys(RIDE_ENDINGS, self._on_ride_closed),
            **dict.fromkeys(DRIVER_AVAILABILITY_EVENTS, self._on_driver),
            **dict.fromkeys(PLAN_DECODED, self._on_plan_moved),
            Driver.Created.TOPIC: self._on_registered,
            Driver.Arrived.TOPIC: self._on_arrived,
            Driver.EnteredPlace.TOPIC: self._on_entered_place,
            Driver.LeftPlace.TOPIC: self._on_left_place,
            Driver.Hinted.TOPIC: self._on_hinted,
            Driver.Erased.TOPIC: self._on_erased,
            Driver.ErasedByOperator.TOPIC: self._on_erased,
        }
        if surge is not None:
            self._handlers[Surge.Changed.TOPIC] = self._on_surge_changed
            self._handlers[Surge.Recomputed.TOPIC] = self._on_surge_recomputed

    @property
    def topics(self) -> frozenset[str]:
        """The event types the matcher folds (restore skips every other type unread)."""
        return frozenset(self._handlers)

    @property
    def driver_topics(self) -> frozenset[str]:
        """The driver events the matcher folds by their type and driver id alone."""
        return _BY_TYPE

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
        if driver_id in self.available and self.fleet.upsert(
            driver_id, lat, lng, at, self.products_of(driver_id)
        ):
            # Supply new or moved to another cell (a first position, back after a silence
            # longer than the TTL, or a drift): the rides waiting within reach may find it.
            self.stats.woken += self.waiting.wake_near(lat, lng)
        if self.places is not None and driver_id in self.own:
            self._locate(driver_id, lat, lng)

    def _locate(self, driver_id: UUID, lat: float, lng: float) -> None:
        """Propose the driver's places when its ping changes them (``tick`` decides)."""
        assert self.places is not None
        inside = self._located.get(driver_id)
        if inside is None:
            inside = self.place_queues.places_of(driver_id)
        now_inside = self.places.locate(lat, lng, inside)
        if now_inside != inside:
            self._located[driver_id] = now_inside
            self._crossings[driver_id] = now_inside

    def products_of(self, driver_id: UUID) -> frozenset[str]:
        """The products the driver's vehicle serves under the catalog in force."""
        vehicle = self.vehicles.get(driver_id) or self.foreign_vehicles.get(driver_id)
        return self.catalog.serves(vehicle or DEFAULT_VEHICLE)

    def vehicle_of(self, driver_id: UUID) -> Registered:
        return self.vehicles.get(driver_id) or DEFAULT_VEHICLE

    def know_vehicle(self, driver_id: UUID, vehicle: Registered, foreign: bool = False) -> None:
        """The driver drives ``vehicle`` (``foreign``: as the shard that serves it said);
        an indexed driver is searchable for its products from now on."""
        known = self.foreign_vehicles if foreign else self.vehicles
        if vehicle == DEFAULT_VEHICLE:
            known.pop(driver_id, None)
        else:
            known[driver_id] = vehicle
        if driver_id in self.fleet:
            pos = self.index.position(driver_id)
            assert pos is not None
            self.fleet.upsert(driver_id, pos[0], pos[1], pos[2], self.products_of(driver_id))

    # -- a checkpoint's state (``state.load``) -------------------------------------------
    def load_driver(self, driver_id: UUID, availability: Availability) -> None:
        """A driver this shard serves, from its checkpoint."""
        self.drivers[driver_id] = availability
        if availability[0] != DriverStatus.HANDED_OFF:
            self.own.add(driver_id)
        if availability[0] == DriverStatus.AVAILABLE:
            self.available.add(driver_id)  # indexed with its first ping

    def load_places(self, rows: list[tuple[str, str, float, float | None]]) -> None:
        """The drivers inside each place and the queues, from a checkpoint."""
        self.place_queues.load(rows, UUID)

    def load_pending(self, ride: PendingRide, demand: bool = True) -> None:
        self._enter_pending(ride)
        if demand:
            self._demand(ride)

    def load_offer(
        self, ride: PendingRide, driver_id: UUID, expires_at: float, demand: bool = True
    ) -> None:
        self.offers[ride.ride_id] = (driver_id, expires_at, ride)
        self._offer_deadlines.add(ride.ride_id, expires_at)
        if demand:
            self._demand(ride)

    def load_assigned(self, ride: PendingRide, demand: bool = True) -> None:
        self.assigned[ride.ride_id] = ride
        if demand:
            self._demand(ride)

    def _demand(self, ride: PendingRide) -> None:
        """A ride's request is demand for the surge window (``demand`` False: the
        checkpoint carries the window itself; an older one only its unended rides)."""
        if self.surge is not None:
            self.surge.requested(ride.lat, ride.lng, ride.requested_at)

    # -- decisions -----------------------------------------------------------------------
    def tick(self, now: float) -> list[Decision]:
        """Offer expiry, request expiry, then assignment (when the strategy is due)."""
        self.stats.ticks += 1
        decisions: list[Decision] = [
            ExpireOffer(ride_id) for ride_id in self._offer_deadlines.due(now)
        ]
        if self._crossings:
            self.stats.crossings += len(self._crossings)
            decisions.extend(LocateDriver(d, p) for d, p in self._crossings.items())
            self._crossings = {}
        expired = set(self._request_deadlines.due(now))
        decisions.extend(ExpireRequest(ride_id) for ride_id in expired)
        if self.scheduled.booked:
            starts = self.scheduled.tick(now, self.fleet, self.eta, expired.__contains__)
            self.stats.dispatch_starts += sum(1 for d in starts if isinstance(d, StartDispatch))
            self.stats.overdue += sum(1 for d in starts if isinstance(d, MarkOverdue))
            decisions.extend(starts)
        overdue = [r for r in self._overdue_deadlines.due(now) if r not in expired]
        self.stats.overdue += len(overdue)
        decisions.extend(MarkOverdue(ride_id) for ride_id in overdue)
        if now >= self._next_expire:
            self.fleet.expire(now)
            self._next_expire = now + self.config.expire_every_s
        waiting = [r for r in self.waiting.ready(now) if r.ride_id not in expired]
        if waiting and self.strategy.due(now):
            self.stats.searches += len(waiting)
            shared = [r for r in waiting if self.pool.is_shared(r.ride_id)]
            matched: set[UUID] = set()
            offered: set[UUID] = set()  # free drivers offered a shared ride this tick
            if shared:
                waiting = [r for r in waiting if not self.pool.is_shared(r.ride_id)]
                pooled, matched = self._pool(shared, now)
                decisions.extend(pooled)
                offered = {d.driver_id for d in pooled if isinstance(d, MakeOffer)}
            pairings = self._assign(waiting, now, offered) if waiting else []
            matched |= {p.ride_id for p in pairings}
            waiting += shared
            for ride in waiting:
                if ride.ride_id not in matched:
                    self.waiting.unmatched(ride, now)
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
        if self.hints is not None and self.hints.due(now):
            recent = [] if self.surge is None else [c for c, _ in self.surge.window()]
            hinted = self.hints.tick(now, self.pending.values(), self.index, self._may_hint,
                                     self.eta, recent)  # fmt: skip
            self.stats.hints += len(hinted)
            decisions.extend(hinted)
        if self.surge is not None:
            cells, counts = self.index.cell_counts()
            if self.surge.due(now):
                changes = self.surge.tick(now, cells, counts, self.index.resolution)
                if changes is not None:
                    decisions.append(changes)
            else:  # the cells the pings brought since, mapped now: not all at the cadence
                self.surge.meet(cells, self.index.resolution)
        return decisions

    def _assign(self, waiting: list[PendingRide], now: float, taken: set[UUID]) -> list[Pairing]:
        """A pickup inside a place with a queue goes to the queue's head first (the first
        queued driver free, positioned, serving its product and not excluded by the ride);
        the rest, and those with no such driver, to the strategy, without any queued
        driver (a queue's drivers wait for its place's pickups) and without the drivers
        ``taken`` (offered a shared ride in this tick)."""
        limits = self.config.limits
        first: list[Pairing] = []
        rest = waiting
        if self.place_queues.queues:
            first = self._queue_heads(waiting, taken)
            self.stats.queue_offers += len(first)
            offered = {p.ride_id for p in first}
            rest = [r for r in waiting if r.ride_id not in offered]
            taken = taken | {d for q in self.place_queues.queues.values() for d in q}
        aside = [(d, self.positions[d]) for d in taken if d in self.fleet]
        for driver_id, _ in aside:  # not offered twice a tick; queued ones kept for their place
            self.fleet.remove(driver_id)
        try:
            return first + self.strategy.assign(rest, self.fleet, self.eta, limits, now)
        finally:
            for driver_id, (lat, lng, at) in aside:
                self.fleet.upsert(driver_id, lat, lng, at, self.products_of(driver_id))

    def _pool(
        self, shared: list[PendingRide], now: float
    ) -> tuple[list[MakeOffer | ExtendPlan], set[UUID]]:
        """A window of the shared rides ready (before the single ones of the tick): into
        the plans of this shard's own drivers, free ones (near each ride, not waiting in a
        place's queue unless at its head for a pickup there) and those serving a plan (no
        offer open, not going offline after their trips)."""
        taken: set[UUID] = set()
        limits = self.config.limits
        k = 2 * self.config.pool.limits.candidates
        queued = {d for q in self.place_queues.queues.values() for d in q}
        expires_at = now + self.config.offer_timeout_s
        heads: list[MakeOffer | ExtendPlan] = []
        if queued:  # a pickup inside a place with a queue: offered to its head first
            for p in self._queue_heads(shared):
                lat, lng, _at = self.positions[p.driver_id]
                alone = self.pool.offer_alone(
                    self.pending[p.ride_id],
                    Vehicle(p.driver_id, (lat, lng), self.vehicle_of(p.driver_id).seats),
                    now, expires_at,
                )  # fmt: skip
                if alone is not None:
                    heads.append(alone)
                    taken = taken | {p.driver_id}
            self.stats.queue_offers += len(heads)
            offered = {d.ride_id for d in heads}
            shared = [r for r in shared if r.ride_id not in offered]
            if not shared:
                return heads, offered
        free: dict[UUID, Vehicle] = {}
        for ride in shared:
            skip = ride.excluded | taken | queued
            for driver_id, _ in self.fleet.nearest(ride.product, ride.lat, ride.lng, k,
                                                   limits.radius_m, now, skip):  # fmt: skip
                if driver_id in self.own and driver_id not in free:
                    lat, lng, _at = self.positions[driver_id]
                    seats = self.vehicle_of(driver_id).seats
                    free[driver_id] = Vehicle(driver_id, (lat, lng), seats)
        serving: list[Vehicle] = []
        accepted: dict[UUID, PendingRide] = {}
        for driver_id, state in self.pool.plans.items():
            pos = self.positions.get(driver_id)
            availability = self.drivers.get(driver_id)
            if (
                not state.pooled
                or pos is None
                or now - pos[2] > self.index.ttl_s  # silent: no rider is put in on its word
                or driver_id not in self.own
                or availability is None
                or availability[1]  # goes offline after its trips
            ):
                continue
            serving.append(Vehicle(driver_id, (pos[0], pos[1]), self.vehicle_of(driver_id).seats))
            for key in {r for r, _ in state.plan} | set(state.aboard):
                held = self.assigned.get(UUID(key))
                if held is not None:
                    accepted[held.ride_id] = held
        ids = [*free, *(v.driver_id for v in serving)]
        excluded: dict[Hashable, set[UUID]] = {}
        for ride in shared:
            out = {d for d in ids if d in ride.excluded or ride.product not in self.products_of(d)}
            if out:
                excluded[ride.ride_id] = out
        decided, paired = self.pool.decide(shared, accepted, free.values(), serving, excluded,
                                           now, expires_at)  # fmt: skip
        return heads + decided, paired | {d.ride_id for d in heads}

    def _queue_heads(
        self, waiting: list[PendingRide], taken: set[UUID] | None = None
    ) -> list[Pairing]:
        """Each pickup inside a place with a queue paired with the queue's first driver who
        is free, positioned, serves its product, is not excluded by the ride and is not
        ``taken`` (offered another ride this tick)."""
        assert self.places is not None
        taken = set(taken or ())
        out = []
        for ride in sorted(waiting, key=lambda r: r.requested_at):
            place = self.places.queue_place(ride.lat, ride.lng)
            if place is None:
                continue
            for driver_id in self.place_queues.first(place):
                if (
                    driver_id in taken
                    or driver_id in ride.excluded
                    or driver_id not in self.fleet
                    or ride.product not in self.products_of(driver_id)
                ):
                    continue
                lat, lng, _ = self.positions[driver_id]
                distance = haversine_m(lat, lng, ride.lat, ride.lng)
                (eta,) = self.eta.etas_s(ride.lat, ride.lng, [(lat, lng, distance)])
                if eta == float("inf"):
                    continue
                out.append(Pairing(ride.ride_id, driver_id, eta, distance))
                taken.add(driver_id)
                break
        return out

    def _may_hint(self, driver_id: UUID) -> bool:
        """An available driver this shard serves, not waiting in a place's queue."""
        if driver_id not in self.own or driver_id not in self.available:
            return False
        queues = self.place_queues.queues
        return not any(
            driver_id in queues.get(p, ()) for p in self.place_queues.where.get(driver_id, ())
        )

    # -- event handlers --------------------------------------------------------------------
    def _on_erased(self, e: Driver.Erased) -> None:
        self._out_of_places(e.originator_id)

    def _out_of_places(self, driver_id: UUID) -> None:
        """Offline, erased or handed off: out of every place (its next ping inside, if
        any, enters again)."""
        self.place_queues.leave_all(driver_id)
        self._located.pop(driver_id, None)

    def _on_hinted(self, e: Driver.Hinted) -> None:
        """A hint recorded (after a restart too: the per-driver rate limit holds)."""
        if self.hints is not None:
            at = _ts(e.timestamp)
            self.hints.last[e.originator_id] = max(at, self.hints.last.get(e.originator_id, at))

    def _on_entered_place(self, e: Driver.EnteredPlace) -> None:
        if e.place is None:  # an erased driver's crossing: its Erased takes it out of all
            return
        driver_id = e.originator_id
        state = self.drivers.get(driver_id)
        available = state is not None and state[0] == DriverStatus.AVAILABLE
        self.place_queues.entered(e.place, driver_id, _ts(e.timestamp), available)
        self._settled(driver_id)

    def _on_left_place(self, e: Driver.LeftPlace) -> None:
        if e.place is None:  # an erased driver's crossing (see ``_on_entered_place``)
            return
        self.place_queues.left(e.place, e.originator_id)
        self._settled(e.originator_id)

    def _settled(self, driver_id: UUID) -> None:
        """The crossing proposed for the driver is recorded: its fold holds it now."""
        if self._located.get(driver_id) == self.place_queues.places_of(driver_id):
            del self._located[driver_id]

    def _on_requested(self, e: Ride.Created) -> None:
        ts = _ts(e.timestamp)
        if e.sharing is not None:  # known as shared, its places or not (erased: ended later)
            dropoff = e.dropoff
            self.pool.requested(e.originator_id, Sharing.from_data(e.sharing),
                                None if dropoff is None or e.pickup is None
                                else (float(dropoff[0]), float(dropoff[1])))  # fmt: skip
        if e.pickup is None:  # erased: the ride has ended (later in the log), not matched
            return
        lat, lng = e.pickup
        # The ride's own product (priced or not), never its fare's.
        ride = PendingRide(e.originator_id, lat, lng, ts, _ts(e.expires_at), product=e.product)
        self._enter_pending(ride)
        self._demand(ride)

    def _on_booked(self, e: Ride.Booked) -> None:
        """A scheduled ride: watched for its dispatch, not searched for (nor demand)."""
        if e.pickup is None:  # erased: the ride has ended (later in the log)
            return
        lat, lng = e.pickup
        self.scheduled.book(PendingRide(e.originator_id, lat, lng, _ts(e.timestamp),
                                        _ts(e.expires_at), product=e.product,
                                        scheduled_for=_ts(e.scheduled_for)))  # fmt: skip

    def _on_dispatch_due(self, e: Ride.DispatchDue) -> None:
        self.scheduled.asking(e.originator_id)

    def _on_dispatch_held(self, e: Ride.DispatchHeld) -> None:
        self.scheduled.held(e.originator_id, _ts(e.timestamp))

    def _on_dispatch_started(self, e: Ride.DispatchStarted) -> None:
        """The scheduled ride is dispatched from now on, as a ride requested now (demand
        from now too), searched for until its time plus the late window."""
        ride = self.scheduled.leave(e.originator_id)
        if ride is not None:
            ride.requested_at = _ts(e.timestamp)
            self._enter_pending(ride)
            self._demand(ride)

    def _on_overdue(self, e: Ride.Overdue) -> None:
        ride = self.pending.get(e.originator_id)
        if ride is not None:
            ride.overdue = True
        else:  # told while still booked (held)
            self.scheduled.told_overdue(e.originator_id)

    def _on_surge_changed(self, e: Surge.Changed) -> None:
        assert self.surge is not None
        self.surge.level(e.cell, e.multiplier)

    def _on_surge_recomputed(self, e: Surge.Recomputed) -> None:
        assert self.surge is not None
        self.surge.levels_recorded(e.cells, e.multipliers)

    def _on_asked(self, e: Ride.DriverAsked) -> None:
        """A driver of another shard asked to hold for the ride: the ride waits for the
        answer like an offer (withdrawn if none comes within twice the offer timeout), and
        the driver is no longer proposed here until its owner says it is free again."""
        ride = self._leave_pending(e.originator_id)
        driver_id = UUID(e.driver_id)
        if driver_id in self.available:
            self.available.discard(driver_id)
            self.fleet.remove(driver_id)
        if ride is not None:
            expires_at = _ts(e.timestamp) + 2 * self.config.offer_timeout_s
            self.offers[e.originator_id] = (driver_id, expires_at, ride)
            self._offer_deadlines.add(e.originator_id, expires_at)

    def _on_offered(self, e: Ride.Offered) -> None:
        ride = self._leave_pending(e.originator_id)
        asked = self.offers.get(e.originator_id)
        if ride is None and asked is not None and asked[0] == UUID(e.driver_id):
            ride = asked[2]  # granted by the driver's owner
        self.pool.offered(UUID(e.driver_id), e.originator_id)
        if ride is not None:
            self.stats.offers += 1
            expires_at = _ts(e.offer_expires_at)
            self.offers[e.originator_id] = (UUID(e.driver_id), expires_at, ride)
            self._offer_deadlines.add(e.originator_id, expires_at)

    def _on_offer_ended(self, e: Ride.OfferDeclined | Ride.OfferExpired | Ride.AskEnded) -> None:
        offer = self.offers.pop(e.originator_id, None)
        if offer is not None:
            if isinstance(e, Ride.OfferExpired):
                self.stats.offer_expiries += 1
            ride = offer[2]
            if not (isinstance(e, Ride.AskEnded) and e.reason == MOVED):
                ride.excluded.add(UUID(e.driver_id))
            self._enter_pending(ride)
        if isinstance(e, Ride.AskEnded):
            # set aside while asked: back if its owner's last word here was "available"
            driver_id = UUID(e.driver_id)
            state = self.drivers.get(driver_id)
            available = state is not None and state[0] == DriverStatus.AVAILABLE
            if available and driver_id not in self.available:
                self._make_available(driver_id)

    def _on_accepted(self, e: Ride.Accepted) -> None:
        offer = self.offers.pop(e.originator_id, None)
        if offer is not None:
            self.assigned[e.originator_id] = offer[2]

    def _on_pooled(self, e: Ride.Pooled) -> None:
        """A shared ride put into the plan of a driver serving shared rides."""
        ride = self._leave_pending(e.originator_id)
        if ride is not None:
            self.assigned[e.originator_id] = ride

    def _on_trip_started(self, e: Ride.TripStarted) -> None:
        self.pool.started(e.originator_id, _ts(e.timestamp))

    def _on_ride_closed(self, e: Any) -> None:
        if isinstance(e, Ride.Expired):
            self.stats.request_expiries += 1
        self.pool.ended(e.originator_id)
        self._leave_pending(e.originator_id)
        self.scheduled.leave(e.originator_id)
        self.offers.pop(e.originator_id, None)
        self.assigned.pop(e.originator_id, None)

    def _on_driver_cancelled(self, e: Ride.CancelledByDriver) -> None:
        ride = self.assigned.pop(e.originator_id, None)
        if ride is not None:
            ride.excluded.add(UUID(e.driver_id))
            self._enter_pending(ride)

    def _on_driver(self, e: Any) -> None:
        self.observe_driver(e.originator_id, e.TOPIC)

    def _on_plan_moved(self, e: Driver.PlanExtended | Driver.PoolRideEnded) -> None:
        """An extension of a pooled driver's plan, or the end of one of its rides."""
        plan = e.plan if isinstance(e, Driver.PlanExtended) else None
        self.pool.driver_event(e.originator_id, e.TOPIC, e.ride_id, plan)
        self.observe_driver(e.originator_id, e.TOPIC)

    def _on_registered(self, e: Driver.Created) -> None:
        self.know_vehicle(e.originator_id, Registered.from_data(e.vehicle))

    def _on_arrived(self, e: Driver.Arrived) -> None:
        self.foreign_vehicles.pop(e.originator_id, None)
        self.know_vehicle(e.originator_id, Registered.from_data(e.vehicle))
        self.observe_driver(e.originator_id, e.TOPIC)

    def observe_driver(self, driver_id: UUID, topic: str) -> None:
        """Fold one of the shard's own driver availability events, known by its type alone
        (restore calls this without decoding the event: ``driver_topics``)."""
        if topic in PLAN_BY_TYPE:
            self.pool.driver_event(driver_id, topic)
        if topic == _HANDED_OFF:
            self.own.discard(driver_id)
            self._out_of_places(driver_id)  # its places are the next shard's
        else:
            self.own.add(driver_id)
        self.observe_foreign(driver_id, topic)

    def observe_foreign(self, driver_id: UUID, topic: str) -> None:
        """Fold an availability event of a driver, as another shard that serves it said."""
        after = next_availability(self.drivers.get(driver_id, REGISTERED), topic)
        self.drivers[driver_id] = after
        if driver_id in self.place_queues.where:  # the matcher keeps queue order, not times
            if after[0] == DriverStatus.OFFLINE:
                self._out_of_places(driver_id)
            else:
                self.place_queues.availability(driver_id, after[0] == DriverStatus.AVAILABLE, 0.0)
        if after[0] == DriverStatus.AVAILABLE:
            if driver_id not in self.available:
                self._make_available(driver_id)
        elif driver_id in self.available:
            self.available.discard(driver_id)
            self.fleet.remove(driver_id)

    def _make_available(self, driver_id: UUID) -> None:
        self.available.add(driver_id)
        pos = self.positions.get(driver_id)
        if pos is not None:
            self.fleet.upsert(driver_id, pos[0], pos[1], pos[2], self.products_of(driver_id))
            # New supply: the rides waiting within its reach may search again (a driver
            # with no position yet wakes them with its first ping).
            self.stats.woken += self.waiting.wake_near(pos[0], pos[1])

    # -- pending rides and deadlines -------------------------------------------------------
    def _enter_pending(self, ride: PendingRide) -> None:
        self.pending[ride.ride_id] = ride
        self.waiting.add(ride)
        self._request_deadlines.add(ride.ride_id, ride.expires_at)
        if ride.scheduled_for is not None and not ride.overdue:
            self._overdue_deadlines.add(ride.ride_id, ride.scheduled_for)

    def _leave_pending(self, ride_id: UUID) -> PendingRide | None:
        self.waiting.remove(ride_id)
        return self.pending.pop(ride_id, None)

    def _offer_expiry(self, ride_id: UUID) -> float | None:
        offer = self.offers.get(ride_id)
        return None if offer is None else offer[1]

    def _live_offers(self) -> list[tuple[UUID, float]]:
        return [(ride_id, offer[1]) for ride_id, offer in self.offers.items()]

    def _request_expiry(self, ride_id: UUID) -> float | None:
        ride = self.pending.get(ride_id)
        return None if ride is None else ride.expires_at

    def _live_requests(self) -> list[tuple[UUID, float]]:
        return [(ride_id, ride.expires_at) for ride_id, ride in self.pending.items()]

    def _overdue_at(self, ride_id: UUID) -> float | None:
        """A dispatched scheduled ride waiting for a driver (not offered one) is overdue at
        its time, once."""
        ride = self.pending.get(ride_id)
        if ride is None or ride.scheduled_for is None or ride.overdue:
            return None
        return ride.scheduled_for

    def _live_overdue(self) -> list[tuple[UUID, float]]:
        return [(r, at) for r in self.pending if (at := self._overdue_at(r)) is not None]
