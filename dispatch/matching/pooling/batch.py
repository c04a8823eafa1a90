"""A batch window of shared rides: request-trip-vehicle combinations and their assignment.

In the spirit of Alonso-Mora et al. (PNAS 2017), bounded in time per window:

1. *Request-vehicle*: each asking rider's ``candidates`` nearest vehicles that can reach the
   pickup in time (``Reach``); every placement of the rider into each one's plan is judged.
2. The greedy path (``insert_in_order``, at most ``max_trip`` new riders per vehicle) on
   the same input: the window's fallback, and the floor its answer is held to.
3. *Request-request*: two riders are shareable when a vehicle at either one's pickup at
   the earliest time any vehicle of the window is anywhere (its ``ready_at``, or the
   window's time) could serve both; only shareable riders are tried together.
4. *Trips*: for each vehicle, the sets of asking riders (up to ``max_trip``) it could add to
   its plan, grown one rider at a time from the feasible plans of the smaller set; a set is
   tried only when each of its subsets one smaller is a trip of the vehicle.
5. *Assignment*: each vehicle takes at most one trip and each rider is in at most one:
   greedily (bigger trips, then cheaper, first) and as an integer program (scipy's HiGHS)
   with the time left. The best of the greedy path, the greedy trips and the program wins:
   more riders served, then less cost added (the riders' delay, plus ``drive_weight`` times
   the seconds driven: ``plan_cost``).

With a travel time that keeps the triangle inequality (``StraightLineTravel``), taking a
rider's stops out of a feasible plan leaves it feasible, so steps 3 and 4 prune nothing that
could be served: within the candidates, every plan is found (a brute-force test checks
it). A window that runs out of its ``budget_s`` stops judging placements, enumerating or
solving, keeps the best it has and says ``capped``. The greedy path always runs to its
end (it is the floor, finding for itself the placements step 1 did not reach), so a window
whose greedy path alone outlasts the budget runs over it; ``capped`` is also said of a
window that ran over for any other reason (the program stopping late).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Collection, Hashable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import csr_array

from dispatch.domain.pooling import Plan, PoolRider, Route, Stop, Travel, plan_cost
from dispatch.matching.pooling.insertion import (
    Assignment,
    feasible_placements,
    insert_in_order,
)
from dispatch.matching.pooling.travel import Reach


@dataclass(frozen=True, slots=True)
class PoolLimits:
    candidates: int = 8  # vehicles tried per asking rider
    max_trip: int = 3  # asking riders one vehicle may take in one window
    budget_s: float = 0.15  # a window's time cap (the enumeration and the program share it)
    # seconds of riders' delay a second of driving is worth in a plan's cost (0: riders'
    # delay alone; more puts riders into cars already on their way rather than free ones)
    drive_weight: float = 1.0

    def __post_init__(self) -> None:
        if self.candidates < 1 or self.max_trip < 1:
            raise ValueError("candidates and max_trip must be at least 1")
        if not (math.isfinite(self.drive_weight) and self.drive_weight >= 0):
            raise ValueError(f"drive_weight must be 0 or more, got {self.drive_weight!r}")
        if not (math.isfinite(self.budget_s) and self.budget_s > 0):
            raise ValueError(f"budget_s must be a positive number, got {self.budget_s!r}")


@dataclass(frozen=True, slots=True)
class WindowReport:
    asking: int
    vehicles: int
    trips: tuple[int, ...]  # how many trips of 1, 2, ... riders were found
    served: int
    added_cost: float
    insertion_served: int  # the greedy path's, on the same input
    insertion_cost: float
    solver: str  # whose answer won: "insertion", "trips" (greedy over trips) or "ilp"
    capped: bool  # the window ran out of its budget
    elapsed_s: float


@dataclass(frozen=True, slots=True)
class _Trip:
    vehicle_id: Hashable
    riders: frozenset[Hashable]
    added: float
    plan: Plan


def assign_window(
    asking: Sequence[PoolRider],
    routes: Sequence[Route],
    accepted: Mapping[Hashable, PoolRider],
    travel: Travel,
    seconds_per_m: float,
    limits: PoolLimits,
    now: float,
    clock: Callable[[], float] = time.perf_counter,
    excluded: Mapping[Hashable, Collection[Hashable]] | None = None,
) -> tuple[Assignment, WindowReport]:
    """Decide a window: which asking riders go into which vehicles' plans.
    ``seconds_per_m`` must be a lower bound of ``travel``'s pace over the straight line
    (the same pace for ``StraightLineTravel``): ``Reach`` prunes with it. ``excluded``: the
    vehicles each rider may not go into (by ride id; a driver who declined it, a vehicle
    that does not serve its product)."""
    started = clock()
    deadline = started + limits.budget_s
    riders, by_id, reach = _prepared(asking, routes, accepted, seconds_per_m)
    skip = excluded or {}
    near = {r.ride_id: reach.of(r, limits.candidates, skip.get(r.ride_id, ())) for r in asking}
    weight = limits.drive_weight
    base = _Costs(by_id, riders, travel, weight)
    singles: dict[Hashable, dict[Hashable, list[tuple[float, Plan]]]] = {}
    first: dict[tuple[Hashable, Hashable], tuple[float, Plan] | None] = {}
    capped = False
    for rider in asking:
        if clock() > deadline:  # the greedy path finds the rest's placements itself
            capped = True
            break
        for vehicle_id in near[rider.ride_id]:
            route = by_id[vehicle_id]
            found = feasible_placements(route, route.plan, rider, riders, travel, weight)
            first[(rider.ride_id, vehicle_id)] = min(found, key=_cost) if found else None
            if found:
                singles.setdefault(vehicle_id, {})[rider.ride_id] = found
    greedy_path = insert_in_order(asking, by_id, riders, travel, lambda r: near[r.ride_id],
                                  base, first, limits.max_trip, weight)  # fmt: skip
    answers = [("insertion", greedy_path)]
    counts = [sum(len(s) for s in singles.values())]
    if not capped and clock() <= deadline:
        # A vehicle at a pickup at the earliest time any vehicle is anywhere: the
        # shareability test's start (a later one could prune a pair some vehicle serves).
        start = min([now, *(r.ready_at for r in routes)])
        trips, capped = _trips(singles, by_id, base, riders, travel, limits, start, deadline, clock)
        sizes = range(1, limits.max_trip + 1)
        counts = [sum(1 for t in trips if len(t.riders) == n) for n in sizes]
        answers.append(("trips", _greedy(trips)))
        left = deadline - clock()
        if trips and left <= 0:
            capped = True
        elif trips:
            solved, stopped = _program(trips, left)
            capped = capped or stopped
            if solved is not None:
                answers.append(("ilp", solved))
    else:
        capped = True
    solver, best = min(answers, key=lambda a: a[1].key())
    elapsed = clock() - started
    report = WindowReport(
        len(asking), len(routes), tuple(counts), best.served, best.added_cost,
        greedy_path.served, greedy_path.added_cost, solver,
        capped or elapsed > limits.budget_s, elapsed,
    )  # fmt: skip
    return best, report


def assign_in_order(
    asking: Sequence[PoolRider],
    routes: Sequence[Route],
    accepted: Mapping[Hashable, PoolRider],
    travel: Travel,
    seconds_per_m: float,
    limits: PoolLimits,
    excluded: Mapping[Hashable, Collection[Hashable]] | None = None,
) -> Assignment:
    """The greedy path alone (the greedy strategy's): riders oldest first, each into the
    vehicle among its ``limits.candidates`` nearest in reach where it adds least."""
    riders, by_id, reach = _prepared(asking, routes, accepted, seconds_per_m)
    skip = excluded or {}

    def near(rider: PoolRider) -> list[Hashable]:
        return reach.of(rider, limits.candidates, skip.get(rider.ride_id, ()))

    base = _Costs(by_id, riders, travel, limits.drive_weight)
    return insert_in_order(asking, by_id, riders, travel, near, base, None, limits.max_trip,
                           limits.drive_weight)  # fmt: skip


def _prepared(
    asking: Sequence[PoolRider],
    routes: Sequence[Route],
    accepted: Mapping[Hashable, PoolRider],
    seconds_per_m: float,
) -> tuple[dict[Hashable, PoolRider], dict[Hashable, Route], Reach]:
    """A window's input checked (``_check_window``): every rider by id, every vehicle by
    id, and which vehicles reach each pickup."""
    _check_window(asking, routes, accepted)
    riders: dict[Hashable, PoolRider] = {**accepted, **{r.ride_id: r for r in asking}}
    return riders, {r.vehicle_id: r for r in routes}, Reach(routes, seconds_per_m)


def _check_window(
    asking: Sequence[PoolRider], routes: Sequence[Route], accepted: Mapping[Hashable, PoolRider]
) -> None:
    """Refuse a window whose riders or vehicles are not each once, or whose vehicles carry
    or plan for riders the window was not given (ValueError saying which)."""
    ids = [r.ride_id for r in asking]
    if len(set(ids)) != len(ids):
        raise ValueError("an asking rider is in the window twice")
    again = sorted(str(r) for r in set(ids) & set(accepted))
    if again:
        raise ValueError(f"riders both asking and accepted: {', '.join(again)}")
    vehicles = [r.vehicle_id for r in routes]
    if len(set(vehicles)) != len(vehicles):
        raise ValueError("a vehicle is in the window twice")
    for route in routes:
        unknown = ({s.ride_id for s in route.plan} | set(route.onboard)) - set(accepted)
        if unknown:
            names = ", ".join(sorted(str(r) for r in unknown))
            raise ValueError(f"vehicle {route.vehicle_id} serves riders not accepted: {names}")


class _Costs(dict[Hashable, float]):
    """Each vehicle's plan's cost, worked out when first asked for."""

    def __init__(
        self,
        routes: Mapping[Hashable, Route],
        riders: Mapping[Hashable, PoolRider],
        travel: Travel,
        drive_weight: float,
    ) -> None:
        super().__init__()
        self._routes, self._riders, self._travel = routes, riders, travel
        self._weight = drive_weight

    def __missing__(self, vehicle_id: Hashable) -> float:
        route = self._routes[vehicle_id]
        cost = plan_cost(route, route.plan, self._riders, self._travel, self._weight)
        self[vehicle_id] = cost
        return cost


def _cost(found: tuple[float, Plan]) -> float:
    return found[0]


def _trips(
    singles: Mapping[Hashable, Mapping[Hashable, list[tuple[float, Plan]]]],
    routes: Mapping[Hashable, Route],
    base: Mapping[Hashable, float],
    riders: Mapping[Hashable, PoolRider],
    travel: Travel,
    limits: PoolLimits,
    start: float,
    deadline: float,
    clock: Callable[[], float],
) -> tuple[list[_Trip], bool]:
    out: list[_Trip] = []
    shareable = Shareable(riders, travel, start)
    for vehicle_id, own in singles.items():
        route, floor = routes[vehicle_id], base[vehicle_id]
        level: dict[frozenset[Hashable], list[tuple[float, Plan]]] = {}
        for ride_id, found in own.items():
            level[frozenset((ride_id,))] = found
            out.append(
                _Trip(
                    vehicle_id,
                    frozenset((ride_id,)),
                    min(found, key=_cost)[0] - floor,
                    min(found, key=_cost)[1],
                )
            )
        order = list(own)
        for _size in range(2, limits.max_trip + 1):
            if clock() > deadline:
                return out, True
            grown: dict[frozenset[Hashable], list[tuple[float, Plan]]] = {}
            for members, plans in level.items():
                if clock() > deadline:
                    return out, True
                for ride_id in order:
                    if ride_id in members:
                        continue
                    bigger = members | {ride_id}
                    if bigger in grown or not all(bigger - {m} in level for m in members):
                        continue
                    if not all(shareable(ride_id, m) for m in members):
                        continue
                    seen: set[Plan] = set()
                    found = []
                    for _, plan in plans:
                        for cost, candidate in feasible_placements(
                            route, plan, riders[ride_id], riders, travel, limits.drive_weight
                        ):
                            if candidate not in seen:
                                seen.add(candidate)
                                found.append((cost, candidate))
                    if found:
                        grown[bigger] = found
                        best = min(found, key=_cost)
                        out.append(_Trip(vehicle_id, bigger, best[0] - floor, best[1]))
            if not grown:
                break
            level = grown
    return out, False


class Shareable:
    """Whether two asking riders could share a vehicle at all: a vehicle at either one's
    pickup at ``start`` (no vehicle is anywhere earlier) serves both (memoised per pair)."""

    def __init__(self, riders: Mapping[Hashable, PoolRider], travel: Travel, start: float) -> None:
        self._riders, self._travel, self._start = riders, travel, start
        self._known: dict[frozenset[Hashable], bool] = {}

    def __call__(self, a: Hashable, b: Hashable) -> bool:
        key = frozenset((a, b))
        known = self._known.get(key)
        if known is None:
            known = self._known[key] = self._from(a, b) or self._from(b, a)
        return known

    def _from(self, a: Hashable, b: Hashable) -> bool:
        ra, rb = self._riders[a], self._riders[b]
        virtual = Route(("virtual", a), ra.seats + rb.seats, ra.pickup, self._start)
        return bool(
            feasible_placements(
                virtual, (Stop(a, True), Stop(a, False)), rb, self._riders, self._travel
            )
        )


def _greedy(trips: Sequence[_Trip]) -> Assignment:
    out = Assignment({}, {}, 0.0)
    used: set[Hashable] = set()
    for trip in sorted(trips, key=lambda t: (-len(t.riders), t.added)):
        if trip.vehicle_id in used or any(r in out.riders for r in trip.riders):
            continue
        _take(out, trip)
        used.add(trip.vehicle_id)
    return out


def _take(out: Assignment, trip: _Trip) -> None:
    out.plans[trip.vehicle_id] = trip.plan
    for ride_id in trip.riders:
        out.riders[ride_id] = trip.vehicle_id
    out.added_cost += trip.added


def _program(trips: Sequence[_Trip], seconds: float) -> tuple[Assignment | None, bool]:
    """The integer program: at most one trip per vehicle and per rider, serving as many
    riders as possible and then adding the least cost. Returns its answer (None when it
    found none in time) and whether it stopped on its time limit."""
    vehicles = {v: i for i, v in enumerate(dict.fromkeys(t.vehicle_id for t in trips))}
    ride_ids = {r: i for i, r in enumerate(dict.fromkeys(r for t in trips for r in t.riders))}
    # One more rider served outweighs any difference in cost: every trip's cost summed.
    weight = 1.0 + sum(abs(t.added) for t in trips)
    c = np.array([t.added - weight * len(t.riders) for t in trips])
    rows, cols = [], []
    for j, trip in enumerate(trips):
        rows.append(vehicles[trip.vehicle_id])
        cols.append(j)
        for ride_id in trip.riders:
            rows.append(len(vehicles) + ride_ids[ride_id])
            cols.append(j)
    shape = (len(vehicles) + len(ride_ids), len(trips))
    a = csr_array((np.ones(len(rows)), (rows, cols)), shape=shape)
    result = milp(
        c,
        constraints=LinearConstraint(a, 0.0, 1.0),
        integrality=np.ones(len(trips)),
        bounds=Bounds(0.0, 1.0),
        options={"time_limit": max(seconds, 1e-3), "mip_rel_gap": 0.0, "disp": False},
    )
    stopped = result.status == 1
    if result.x is None:
        return None, stopped
    out = Assignment({}, {}, 0.0)
    for chosen in np.flatnonzero(result.x > 0.5).tolist():
        _take(out, trips[chosen])
    return out, stopped
