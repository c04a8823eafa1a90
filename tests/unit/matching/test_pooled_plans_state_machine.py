"""A fleet of pooled vehicles followed through requests, cancellations, no-shows, pickups
and drop-offs in any order (hypothesis' rule-based state machine): every vehicle's plan keeps
its seats and every accepted rider's wait and detour bounds, the riders actually picked up and
dropped off met their bounds, and no accepted rider is lost or in two vehicles."""

from __future__ import annotations

import math
from collections.abc import Hashable

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from dispatch.domain.pooling import SLACK_S, PoolBounds, PoolRider, Route, walk, without
from dispatch.matching.pooling.batch import PoolLimits, assign_window
from dispatch.matching.pooling.travel import StraightLineTravel

PACE = 0.2
TRAVEL = StraightLineTravel(PACE)
ORIGIN = (37.77, -122.42)
KM = 1 / 111.195


def _place(dy: float, dx: float) -> tuple[float, float]:
    return (ORIGIN[0] + dy * KM, ORIGIN[1] + dx * KM / math.cos(math.radians(ORIGIN[0])))


def _unit(p: tuple[float, float]) -> tuple[float, float, float]:
    la, ln = math.radians(p[0]), math.radians(p[1])
    return (math.cos(la) * math.cos(ln), math.cos(la) * math.sin(ln), math.sin(la))


def _along(a: tuple[float, float], b: tuple[float, float], f: float) -> tuple[float, float]:
    """The point a fraction ``f`` of the great circle from a to b."""
    ua, ub = _unit(a), _unit(b)
    omega = math.acos(max(-1.0, min(1.0, sum(x * y for x, y in zip(ua, ub, strict=True)))))
    if omega < 1e-12:
        return b
    wa, wb = math.sin((1 - f) * omega) / math.sin(omega), math.sin(f * omega) / math.sin(omega)
    x, y, z = (wa * p + wb * q for p, q in zip(ua, ub, strict=True))
    return (math.degrees(math.atan2(z, math.hypot(x, y))), math.degrees(math.atan2(y, x)))


_km = st.floats(-2.5, 2.5)


class PooledFleet(RuleBasedStateMachine):
    @initialize(
        n=st.integers(1, 3), seats=st.lists(st.sampled_from([2, 3, 4]), min_size=3, max_size=3)
    )
    def start(self, n: int, seats: list[int]) -> None:
        self.now = 0.0
        self.routes = {f"v{i}": Route(f"v{i}", seats[i], _place(i - 1, 0), 0.0) for i in range(n)}
        self.riders: dict[Hashable, PoolRider] = {}  # accepted, not yet dropped off or cancelled
        self.picked_at: dict[Hashable, float] = {}
        self.count = 0
        self.served = 0

    def _where(self, ride_id: Hashable) -> list[str]:
        return [
            v
            for v, r in self.routes.items()
            if ride_id in r.onboard or any(s.ride_id == ride_id for s in r.plan)
        ]

    @rule(
        trips=st.lists(st.tuples(_km, _km, _km, _km, st.integers(1, 2)), min_size=1, max_size=3),
        max_trip=st.integers(1, 3),
    )
    def request(self, trips: list[tuple[float, float, float, float, int]], max_trip: int) -> None:
        asking = []
        for y0, x0, y1, x1, seats in trips:
            self.count += 1
            asking.append(
                PoolRider.asking(
                    f"r{self.count}",
                    seats,
                    _place(y0, x0),
                    _place(y1, x1),
                    self.now,
                    PoolBounds(400.0, 1.6),
                    TRAVEL,
                )
            )
        routes = list(self.routes.values())
        chosen, _ = assign_window(
            asking,
            routes,
            self.riders,
            TRAVEL,
            PACE,
            PoolLimits(max_trip=max_trip, budget_s=30.0),
            self.now,
        )
        for vehicle_id, plan in chosen.plans.items():
            self.routes[vehicle_id] = Route(
                vehicle_id, self.routes[vehicle_id].seats, self.routes[vehicle_id].at, self.now,
                self.routes[vehicle_id].onboard, plan,
            )  # fmt: skip
        for r in asking:
            if r.ride_id in chosen.riders:
                self.riders[r.ride_id] = r

    def _waiting(self) -> list[Hashable]:
        return sorted((r for r in self.riders if r not in self.picked_at), key=str)

    @precondition(lambda self: bool(self._waiting()))
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        ride_id = data.draw(st.sampled_from(self._waiting()))
        (vehicle_id,) = self._where(ride_id)
        route = self.routes[vehicle_id]
        self.routes[vehicle_id] = Route(
            vehicle_id,
            route.seats,
            route.at,
            route.ready_at,
            route.onboard,
            without(route.plan, ride_id),
        )
        del self.riders[ride_id]

    @precondition(lambda self: any(r.plan for r in self.routes.values()))
    @rule(no_show=st.booleans())
    def next_stop(self, no_show: bool) -> None:
        """The vehicle due first reaches its next stop; every other moving vehicle is moved
        along its leg to that time."""
        due = {
            v: r.ready_at + TRAVEL(r.at, self._place_of(r))
            for v, r in self.routes.items()
            if r.plan
        }
        vehicle_id = min(due, key=lambda v: (due[v], v))
        t = due[vehicle_id]
        for v, r in list(self.routes.items()):
            if v == vehicle_id:
                continue
            if r.plan:
                f = (t - r.ready_at) / max(due[v] - r.ready_at, 1e-12)
                self.routes[v] = Route(
                    v, r.seats, _along(r.at, self._place_of(r), min(f, 1.0)), t, r.onboard, r.plan
                )
            else:
                self.routes[v] = Route(v, r.seats, r.at, t, r.onboard, r.plan)
        route = self.routes[vehicle_id]
        here = self._place_of(route)
        stop, rest = route.plan[0], route.plan[1:]
        rider = self.riders[stop.ride_id]
        onboard = dict(route.onboard)
        if stop.pickup and no_show:
            rest = without(rest, stop.ride_id)
            del self.riders[stop.ride_id]
        elif stop.pickup:
            assert t <= rider.latest_pickup_at + SLACK_S, (
                "picked up after the rider's latest pickup"
            )
            onboard[stop.ride_id] = t
            self.picked_at[stop.ride_id] = t
        else:
            assert t - onboard.pop(stop.ride_id) <= rider.max_ride_s + SLACK_S, (
                "in the vehicle too long"
            )
            del self.riders[stop.ride_id]
            self.served += 1
        self.routes[vehicle_id] = Route(vehicle_id, route.seats, here, t, onboard, rest)
        self.now = t

    def _place_of(self, route: Route) -> tuple[float, float]:
        stop = route.plan[0]
        rider = self.riders[stop.ride_id]
        return rider.pickup if stop.pickup else rider.dropoff

    @invariant()
    def every_plan_keeps_seats_and_bounds(self) -> None:
        for route in self.routes.values():
            done = walk(route, route.plan, self.riders, TRAVEL)
            assert done.ok, done.problem

    @invariant()
    def every_accepted_rider_is_in_exactly_one_vehicle(self) -> None:
        for ride_id in self.riders:
            assert len(self._where(ride_id)) == 1
        for route in self.routes.values():
            assert {s.ride_id for s in route.plan} | set(route.onboard) <= set(self.riders)


PooledFleet.TestCase.settings = settings(max_examples=120, stateful_step_count=30, deadline=None)
test_pooled_plans_keep_their_bounds_through_any_order_of_events = PooledFleet.TestCase
