"""The matcher's shared rides: each shared ride's terms, each pooled driver's plan, and the
decisions of a window (docs/ARCHITECTURE.md, "Shared rides").

What it folds comes from the shard's events: a shared ride's terms from its request
(``Ride.Requested.sharing`` and its drop-off), its pickup time from ``Ride.TripStarted``,
and each driver's plan with the aggregates' own ``fold_plan``. A driver's events are
folded by their type where the type says all (the offer's plan is the offered ride's
pickup and drop-off, ``Ride.Offered`` names it; a pickup is the plan's next stop, as the
aggregate serves it in order), and decoded where the event carries what moves the plan
(an extension's plan, the ride that ended).

A window's answer becomes decisions: a free vehicle is *offered* one shared ride (the one
its new plan picks up first, in a plan of its own two stops), which it accepts or declines;
the window's other riders for it are searched for again at the next window. A vehicle
already serving a plan has each new ride put in (``ExtendPlan``), one ride at a time in
the order of their pickups, each plan the new one without the rides not yet put in (a
plan keeps the rule without any of its riders: ``dispatch.domain.pooling.without``).
"""

from __future__ import annotations

from collections.abc import Collection, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from uuid import UUID

from dispatch.domain.driver import Driver, PlanState, fold_plan
from dispatch.domain.pooling import (
    DROPOFF,
    PICKUP,
    LatLng,
    PoolRider,
    Route,
    Sharing,
    Stop,
    plan_of,
    walk,
)
from dispatch.matching.decisions import ExtendPlan, MakeOffer
from dispatch.matching.geo import haversine_m
from dispatch.matching.pooling.batch import PoolLimits, assign_in_order, assign_window
from dispatch.matching.pooling.insertion import Assignment
from dispatch.matching.pooling.travel import StraightLineTravel
from dispatch.matching.strategies import PendingRide

# A driver's events that move its plan and are folded by their type alone.
PLAN_BY_TYPE = frozenset({
    Driver.OfferClosed.TOPIC, Driver.Assigned.TOPIC, Driver.TripStarted.TOPIC,
    Driver.PoolPickedUp.TOPIC, Driver.Released.TOPIC,
})  # fmt: skip
# Those decoded: the event carries what moves the plan.
PLAN_DECODED = frozenset(
    {Driver.PlanExtended.TOPIC, Driver.PoolRideEnded.TOPIC, Driver.AboardEmptied.TOPIC}
)
_PICKED = frozenset({Driver.TripStarted.TOPIC, Driver.PoolPickedUp.TOPIC})


@dataclass(frozen=True, slots=True)
class PoolMatching:
    """How the matcher pools shared rides: the straight-line pace (seconds per metre, the
    shard's own for a direct trip) and a window's limits."""

    seconds_per_m: float
    limits: PoolLimits = field(default_factory=PoolLimits)


@dataclass
class PoolStats:
    windows: int = 0  # windows decided with shared rides asking
    capped: int = 0  # of those, how many hit their time cap
    offers: int = 0  # shared rides offered to a free vehicle
    extensions: int = 0  # shared rides put into a plan being served
    slowest_s: float = 0.0  # the longest window's decision

    def as_dict(self) -> dict[str, float | int]:
        return {"windows": self.windows, "capped": self.capped, "offers": self.offers,
                "extensions": self.extensions, "slowest_ms": self.slowest_s * 1e3}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Vehicle:
    """A vehicle a window may use: where it is, its passenger seats."""

    driver_id: UUID
    at: LatLng
    seats: int


class PooledRides:
    def __init__(self, config: PoolMatching, batch: bool) -> None:
        self.config, self.batch = config, batch
        self.travel = StraightLineTravel(config.seconds_per_m)
        # each shared ride's terms and drop-off, from its request until it ends
        # (None: its rider was erased; the ride ends later in the log, but its offer may
        # still start a plan the driver's other riders join)
        self.terms: dict[UUID, tuple[Sharing, LatLng | None]] = {}
        self.picked_up: dict[UUID, float] = {}  # a shared ride aboard: when
        self.plans: dict[UUID, PlanState] = {}  # drivers serving or offered a plan
        self.stats = PoolStats()

    # -- folding ---------------------------------------------------------------------------
    def is_shared(self, ride_id: UUID) -> bool:
        return ride_id in self.terms

    def requested(self, ride_id: UUID, sharing: Sharing, dropoff: LatLng | None) -> None:
        """A shared ride requested (``dropoff`` None: its rider erased since)."""
        self.terms[ride_id] = (sharing, dropoff)

    def started(self, ride_id: UUID, at: float) -> None:
        if ride_id in self.terms:
            self.picked_up[ride_id] = at

    def ended(self, ride_id: UUID) -> None:
        self.terms.pop(ride_id, None)
        self.picked_up.pop(ride_id, None)

    def offered(self, driver_id: UUID, ride_id: UUID) -> None:
        """A ride was offered to the driver: a shared one with the plan of its two stops."""
        if ride_id in self.terms:
            key = str(ride_id)
            state = self.plans.setdefault(driver_id, PlanState())
            fold_plan(state, Driver.OfferReceived.TOPIC, key, [[key, PICKUP], [key, DROPOFF]])

    def driver_event(
        self, driver_id: UUID, topic: str, ride_id: str = "", plan: list[list[str]] | None = None
    ) -> None:
        """One of the driver's events that moves a plan (``PLAN_BY_TYPE`` with no ride id:
        a pickup is the plan's next stop)."""
        state = self.plans.get(driver_id)
        if state is None:
            return
        if topic in _PICKED and not ride_id:
            ride_id = state.plan[0][0] if state.plan else ""
        fold_plan(state, topic, ride_id, plan)
        if not state.pooled and state.offer_plan is None:
            del self.plans[driver_id]

    def serving(self, driver_id: UUID) -> bool:
        """Whether the driver serves a shared plan (and has no offer open)."""
        state = self.plans.get(driver_id)
        return state is not None and state.pooled

    def placed(self, ride_id: UUID) -> bool:
        """Whether the shared ride's places are known (its rider not erased)."""
        found = self.terms.get(ride_id)
        return found is not None and found[1] is not None

    def rider(self, ride: PendingRide) -> PoolRider:
        sharing, dropoff = self.terms[ride.ride_id]
        if dropoff is None:
            raise ValueError(f"shared ride {ride.ride_id}'s places are erased")
        return sharing.rider(ride.ride_id, (ride.lat, ride.lng), dropoff, ride.requested_at)

    # -- deciding --------------------------------------------------------------------------
    def offer_alone(
        self, ride: PendingRide, v: Vehicle, now: float, offer_expires_at: float
    ) -> MakeOffer | None:
        """An offer of ``ride`` to the free vehicle ``v`` (a place's queue head), with the
        plan of its two stops; None when the vehicle cannot serve it within its bounds."""
        route = Route(v.driver_id, v.seats, v.at, now)
        return self._offer(route, ride.ride_id, {ride.ride_id: self.rider(ride)}, now,
                           offer_expires_at)  # fmt: skip

    def _offer(
        self,
        route: Route,
        ride_id: Hashable,
        riders: Mapping[Hashable, PoolRider],
        now: float,
        offer_expires_at: float,
    ) -> MakeOffer | None:
        """The offer of ``ride_id`` to the free vehicle of ``route`` with the plan of its two
        stops, timed from the vehicle; None when that plan breaks the rider's bounds."""
        own = (Stop(ride_id, True), Stop(ride_id, False))
        timed = walk(route, own, riders, self.travel)
        if not timed.ok:
            return None
        assert isinstance(ride_id, UUID) and isinstance(route.vehicle_id, UUID)
        self.stats.offers += 1
        return MakeOffer(ride_id, route.vehicle_id, max(0.0, timed.times[0] - now),
                         haversine_m(*route.at, *riders[ride_id].pickup), offer_expires_at,
                         own, timed.times)  # fmt: skip

    def decide(
        self,
        asking: list[PendingRide],
        accepted: Mapping[UUID, PendingRide],
        free: Iterable[Vehicle],
        serving: Iterable[Vehicle],
        excluded: Mapping[Hashable, Collection[Hashable]],
        now: float,
        offer_expires_at: float,
    ) -> tuple[list[MakeOffer | ExtendPlan], set[UUID]]:
        """A window: ``asking`` (shared rides pending), ``accepted`` (the shared rides of the
        plans being served, with their pickups), the ``free`` vehicles and those ``serving``
        a plan (no offer open, not going offline), and the vehicles each rider may not
        take. Returns the offers and extensions it decided, and the rides the window put
        into a plan (those not offered or put in yet search again at the next window)."""
        riders: dict[Hashable, PoolRider] = {r.ride_id: self.rider(r) for r in asking}
        held: dict[Hashable, PoolRider] = {
            i: self.rider(ride) for i, ride in accepted.items() if self.placed(i)
        }
        routes = [Route(v.driver_id, v.seats, v.at, now) for v in free]
        for v in serving:
            route = self._route(v, held, now)
            if route is not None:
                routes.append(route)
        if not routes:
            return [], set()
        limits, pace = self.config.limits, self.config.seconds_per_m
        window = list(riders.values())
        if self.batch:
            answer, report = assign_window(window, routes, held, self.travel, pace, limits,
                                           now, excluded=excluded)  # fmt: skip
            self.stats.windows += 1
            self.stats.capped += report.capped
            self.stats.slowest_s = max(self.stats.slowest_s, report.elapsed_s)
        else:
            answer = assign_in_order(window, routes, held, self.travel, pace, limits, excluded)
        decided = self._decisions(answer, {r.vehicle_id: r for r in routes},
                                  {**held, **riders}, now, offer_expires_at)  # fmt: skip
        return decided, {r for r in answer.riders if isinstance(r, UUID)}

    def _route(self, v: Vehicle, held: Mapping[Hashable, PoolRider], now: float) -> Route | None:
        """A vehicle serving a plan, as the window plans for it (a pickup next committed);
        None when a rider of its plan is not known here (its terms not folded)."""
        state = self.plans[v.driver_id]
        plan = plan_of(state.plan)
        onboard: dict[Hashable, float] = {}
        for key in state.aboard:
            ride_id = UUID(key)
            if ride_id not in held or ride_id not in self.picked_up:
                return None
            onboard[ride_id] = self.picked_up[ride_id]
        stops = tuple(Stop(UUID(str(s.ride_id)), s.pickup) for s in plan)
        if any(s.ride_id not in held for s in stops):
            return None
        committed = 1 if stops and stops[0].pickup else 0  # on its way to a rider, or there
        return Route(v.driver_id, v.seats, v.at, now, onboard, stops, committed)

    def _decisions(
        self,
        answer: Assignment,
        routes: Mapping[Hashable, Route],
        riders: Mapping[Hashable, PoolRider],
        now: float,
        offer_expires_at: float,
    ) -> list[MakeOffer | ExtendPlan]:
        out: list[MakeOffer | ExtendPlan] = []
        taken: dict[Hashable, set[Hashable]] = {}
        for ride_id, vehicle_id in answer.riders.items():
            taken.setdefault(vehicle_id, set()).add(ride_id)
        for vehicle_id, plan in answer.plans.items():
            route = routes[vehicle_id]
            new = [s.ride_id for s in plan if s.pickup and s.ride_id in taken.get(vehicle_id, ())]
            if not new:
                continue
            driver_id = vehicle_id
            assert isinstance(driver_id, UUID)
            if not route.plan and not route.onboard:  # a free vehicle: offered the first
                offer = self._offer(route, new[0], riders, now, offer_expires_at)
                if offer is not None:
                    out.append(offer)
                continue
            for k, ride_id in enumerate(new):  # one ride at a time, the later ones left out
                later = set(new[k + 1 :])
                step = tuple(s for s in plan if s.ride_id not in later)
                timed = walk(route, step, riders, self.travel)
                if not timed.ok:
                    break
                assert isinstance(ride_id, UUID)
                out.append(ExtendPlan(ride_id, driver_id, step, timed.times))
                self.stats.extensions += 1
        return out
