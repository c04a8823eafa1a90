"""Shared rides: a vehicle's plan of stops, and the one rule every plan must keep.

Pooling replaces "a driver holds at most one ride" with "a vehicle's plan never exceeds its
seats nor any accepted rider's wait and detour bounds" (issue #21). A *plan* is the ordered
stops a vehicle will make from where it is: each rider's pickup before their drop-off, a
rider already on board only their drop-off. ``walk`` times a plan from the vehicle's
position and says whether it keeps the rule, why not, and what it costs (the riders' total
delay); ``plan_cost`` is its fast form for the matcher's searches
(``dispatch/matching/pooling/``), held to the same verdicts by a property test.

Time in a plan is estimated: ``Travel`` gives seconds between two places (the matcher's
ETA pace, or a road router). A rider's bounds are fixed when they are accepted:
``latest_pickup_at`` (requested at + max wait) and ``max_ride_s`` (the direct trip's
seconds times the detour factor: time in the vehicle may not exceed it).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field

LatLng = tuple[float, float]
Travel = Callable[[LatLng, LatLng], float]  # estimated seconds from one place to another

MIN_RIDE_SEATS, MAX_RIDE_SEATS = 1, 2  # seats one shared ride may ask for
# Bounds are compared with a millisecond of slack: a vehicle followed along its legs (a
# simulation, a test) reaches its stops at sums of floats in another order.
SLACK_S = 1e-3


@dataclass(frozen=True, slots=True)
class PoolBounds:
    """What a shared rider is promised: the longest wait from request to pickup, and the
    longest time in the vehicle as a factor of the direct trip's."""

    max_wait_s: float = 300.0
    detour_factor: float = 1.5

    def __post_init__(self) -> None:
        if not (math.isfinite(self.max_wait_s) and self.max_wait_s > 0):
            raise ValueError(f"max_wait_s must be a positive number, got {self.max_wait_s!r}")
        if not (math.isfinite(self.detour_factor) and self.detour_factor >= 1.0):
            raise ValueError(f"detour_factor must be at least 1, got {self.detour_factor!r}")


@dataclass(frozen=True, slots=True)
class PoolRider:
    """An accepted (or asking) shared rider, with the bounds their plan must keep."""

    ride_id: Hashable
    seats: int
    pickup: LatLng
    dropoff: LatLng
    requested_at: float
    latest_pickup_at: float
    direct_s: float
    max_ride_s: float

    @classmethod
    def asking(
        cls,
        ride_id: Hashable,
        seats: int,
        pickup: LatLng,
        dropoff: LatLng,
        requested_at: float,
        bounds: PoolBounds,
        travel: Travel,
    ) -> PoolRider:
        if not MIN_RIDE_SEATS <= seats <= MAX_RIDE_SEATS:
            raise ValueError(
                f"seats must be from {MIN_RIDE_SEATS} to {MAX_RIDE_SEATS}, got {seats!r}"
            )
        direct = travel(pickup, dropoff)
        return cls(
            ride_id, seats, pickup, dropoff, requested_at,
            requested_at + bounds.max_wait_s, direct, direct * bounds.detour_factor,
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Stop:
    ride_id: Hashable
    pickup: bool  # False: the drop-off

    def __repr__(self) -> str:
        return f"{'P' if self.pickup else 'D'}({self.ride_id})"


Plan = tuple[Stop, ...]


@dataclass(frozen=True, slots=True)
class Route:
    """A vehicle as plans are made for it: where it is and from when (``ready_at``), its
    passenger seats, the riders on board (ride id -> picked up at), its plan, and how many
    of the plan's first stops are committed (no new stop may come before them: a vehicle
    serving shared rides is on its way to its next stop, or there)."""

    vehicle_id: Hashable
    seats: int
    at: LatLng
    ready_at: float
    onboard: Mapping[Hashable, float] = field(default_factory=dict)
    plan: Plan = ()
    committed: int = 0


@dataclass(frozen=True, slots=True)
class Walk:
    """A plan timed from its vehicle: each stop's estimated time, the riders' total delay
    (dropped off at minus requested at minus the direct trip, summed), and why the plan
    breaks the rule (None when it keeps it)."""

    times: tuple[float, ...]
    cost: float
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


def walk(
    route: Route,
    plan: Plan,
    riders: Mapping[Hashable, PoolRider],
    travel: Travel,
    drive_weight: float = 0.0,
) -> Walk:
    """Time ``plan`` from ``route``'s place and check it: seats never exceeded, every
    pickup by its rider's latest pickup and before their drop-off, every time in the
    vehicle within its rider's bound, every rider on board or picked up dropped off, no
    stop twice. Stops at the first broken rule. Its cost is the riders' total delay plus
    ``drive_weight`` times the seconds the vehicle drives the plan."""
    t, here = route.ready_at, route.at
    picked: dict[Hashable, float] = dict(route.onboard)
    load = 0
    for ride_id in route.onboard:
        rider = riders.get(ride_id)
        if rider is None:
            return Walk((), math.inf, f"rider {ride_id} is on board but unknown")
        load += rider.seats
    if load > route.seats:
        return Walk((), math.inf, f"{load} seats on board, the vehicle has {route.seats}")
    dropped: set[Hashable] = set()
    times: list[float] = []
    cost = 0.0
    for stop in plan:
        rider = riders.get(stop.ride_id)
        if rider is None:
            return Walk(tuple(times), math.inf, f"{stop!r}: unknown rider")
        place = rider.pickup if stop.pickup else rider.dropoff
        t += travel(here, place)
        here = place
        times.append(t)
        if stop.pickup:
            if stop.ride_id in picked or stop.ride_id in dropped:
                return Walk(tuple(times), math.inf, f"{stop!r}: picked up twice")
            if t > rider.latest_pickup_at + SLACK_S:
                return Walk(
                    tuple(times), math.inf,
                    f"{stop!r} at {t:.0f} s, after the rider's latest pickup "
                    f"{rider.latest_pickup_at:.0f} s",
                )  # fmt: skip
            picked[stop.ride_id] = t
            load += rider.seats
            if load > route.seats:
                return Walk(
                    tuple(times), math.inf, f"{stop!r}: {load} seats, the vehicle has {route.seats}"
                )
        else:
            since = picked.pop(stop.ride_id, None)
            if since is None:
                why = "twice" if stop.ride_id in dropped else "before its pickup"
                return Walk(tuple(times), math.inf, f"{stop!r}: dropped off {why}")
            if t - since > rider.max_ride_s + SLACK_S:
                return Walk(
                    tuple(times), math.inf,
                    f"{stop!r}: {t - since:.0f} s in the vehicle, the rider's bound is "
                    f"{rider.max_ride_s:.0f} s",
                )  # fmt: skip
            dropped.add(stop.ride_id)
            load -= rider.seats
            cost += t - rider.requested_at - rider.direct_s
    if picked:
        left = ", ".join(sorted(str(r) for r in picked))
        return Walk(tuple(times), math.inf, f"riders never dropped off: {left}")
    return Walk(tuple(times), cost + drive_weight * (t - route.ready_at))


def plan_cost(
    route: Route,
    plan: Plan,
    riders: Mapping[Hashable, PoolRider],
    travel: Travel,
    drive_weight: float = 0.0,
) -> float:
    """``walk``'s cost, ``math.inf`` for a plan that breaks the rule: the searches' fast
    path (no times kept, no reason written; every rider must be known). A property test
    holds the two to the same verdict and cost on any plan."""
    t, here = route.ready_at, route.at
    picked = dict(route.onboard)
    load = sum(riders[r].seats for r in picked)
    cap = route.seats
    if load > cap:
        return math.inf
    dropped: set[Hashable] = set()
    cost = 0.0
    for stop in plan:
        rider = riders[stop.ride_id]
        if stop.pickup:
            place = rider.pickup
            t += travel(here, place)
            if t > rider.latest_pickup_at + SLACK_S or stop.ride_id in picked:
                return math.inf
            if stop.ride_id in dropped:
                return math.inf
            load += rider.seats
            if load > cap:
                return math.inf
            picked[stop.ride_id] = t
        else:
            place = rider.dropoff
            t += travel(here, place)
            since = picked.pop(stop.ride_id, None)
            if since is None or t - since > rider.max_ride_s + SLACK_S:
                return math.inf
            load -= rider.seats
            dropped.add(stop.ride_id)
            cost += t - rider.requested_at - rider.direct_s
        here = place
    return math.inf if picked else cost + drive_weight * (t - route.ready_at)


def without(plan: Plan, ride_id: Hashable) -> Plan:
    """The plan with a rider's stops taken out (a cancellation or a no-show repairs the
    plan this way: no other stop comes later for it when travel keeps the triangle
    inequality, so every other rider's bounds still hold)."""
    return tuple(s for s in plan if s.ride_id != ride_id)


@dataclass(frozen=True, slots=True)
class Sharing:
    """A shared ride's terms, fixed when it is requested and recorded with it
    (``Ride.Requested.sharing``): the seats it takes, its bounds, and the direct trip's
    estimated seconds then, so its plans can be judged from the log alone."""

    seats: int
    max_wait_s: float
    detour_factor: float
    direct_s: float

    def __post_init__(self) -> None:
        if not (isinstance(self.seats, int) and MIN_RIDE_SEATS <= self.seats <= MAX_RIDE_SEATS):
            raise ValueError(
                f"seats must be from {MIN_RIDE_SEATS} to {MAX_RIDE_SEATS}, got {self.seats!r}"
            )
        PoolBounds(self.max_wait_s, self.detour_factor)  # says what is wrong with them
        if not (math.isfinite(self.direct_s) and self.direct_s >= 0):
            raise ValueError(f"direct_s must be a number of seconds, got {self.direct_s!r}")

    @classmethod
    def of(cls, seats: int, bounds: PoolBounds, direct_s: float) -> Sharing:
        return cls(seats, bounds.max_wait_s, bounds.detour_factor, direct_s)

    def rider(
        self, ride_id: Hashable, pickup: LatLng, dropoff: LatLng, requested_at: float
    ) -> PoolRider:
        """The ride as the rule sees it."""
        return PoolRider(
            ride_id, self.seats, pickup, dropoff, requested_at,
            requested_at + self.max_wait_s, self.direct_s, self.direct_s * self.detour_factor,
        )  # fmt: skip

    def to_data(self) -> dict[str, float | int]:
        return {
            "seats": self.seats, "max_wait_s": self.max_wait_s,
            "detour_factor": self.detour_factor, "direct_s": self.direct_s,
        }  # fmt: skip

    @classmethod
    def from_data(cls, data: Mapping[str, float | int]) -> Sharing:
        return cls(
            int(data["seats"]), float(data["max_wait_s"]), float(data["detour_factor"]),
            float(data["direct_s"]),
        )  # fmt: skip


PICKUP, DROPOFF = "P", "D"
StopData = list[str]  # [ride id, "P" or "D"]: a stop as events carry it


def plan_data(plan: Plan) -> list[StopData]:
    return [[str(s.ride_id), PICKUP if s.pickup else DROPOFF] for s in plan]


def plan_of(data: list[StopData] | tuple[()]) -> Plan:
    return tuple(Stop(ride_id, kind == PICKUP) for ride_id, kind in data)


def times_problem(plan: Plan, times: list[float]) -> str | None:
    """Why ``times`` are not estimated times of ``plan``'s stops (one each, finite, in
    order), or None."""
    if len(times) != len(plan):
        return f"a plan of {len(plan)} stops needs {len(plan)} times, got {len(times)}"
    finite = all(isinstance(t, int | float) and math.isfinite(t) for t in times)
    if not finite or any(b < a for a, b in itertools.pairwise(times)):
        return "a plan's times must be finite and in order"
    return None


def extension_problem(before: Plan, after: Plan, ride_id: Hashable) -> str | None:
    """Why ``after`` is not ``before`` with ``ride_id``'s pickup and then drop-off put in
    (every other stop kept, in its order, and a next stop that is a pickup still first: it
    is committed, the vehicle on its way to a rider or there already), or None. A drop-off
    next is not committed: a vehicle may pick someone up on the way to it."""
    if tuple(s for s in after if s.ride_id != ride_id) != before:
        return f"the plan must keep its stops in their order, adding only ride {ride_id}'s"
    if before and before[0].pickup and after[0] != before[0]:
        return f"the plan's next stop {before[0]!r} is committed: nothing may come before it"
    mine = [s for s in after if s.ride_id == ride_id]
    if mine != [Stop(ride_id, True), Stop(ride_id, False)]:
        return f"the plan must add ride {ride_id}'s pickup and then its drop-off"
    return None
