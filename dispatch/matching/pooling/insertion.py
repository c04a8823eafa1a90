"""Insertion: a rider's pickup and drop-off put into a vehicle's plan where they cost least.

Every position pair (pickup at i, drop-off at j >= i, the plan's own order kept) is tried
and judged by ``plan_cost``: a plan of n stops has (n + 1)(n + 2) / 2 of them, a few dozen
for a full vehicle. ``insert_in_order`` is the greedy path: riders oldest first, each into
the vehicle where it adds least, the vehicle's plan updated before the next rider.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace

from dispatch.domain.pooling import Plan, PoolRider, Route, Stop, Travel, plan_cost


def placements(plan: Plan, ride_id: Hashable, first: int = 0) -> Iterator[Plan]:
    """Every plan with the rider's pickup and then drop-off put into ``plan``, the plan's
    own stops in their order, none before the plan's ``first`` stops (committed)."""
    pick, drop = Stop(ride_id, True), Stop(ride_id, False)
    n = len(plan)
    for i in range(min(first, n), n + 1):
        head, tail = plan[:i], plan[i:]
        for j in range(n - i + 1):
            yield (*head, pick, *tail[:j], drop, *tail[j:])


def feasible_placements(
    route: Route,
    plan: Plan,
    rider: PoolRider,
    riders: Mapping[Hashable, PoolRider],
    travel: Travel,
    drive_weight: float = 0.0,
) -> list[tuple[float, Plan]]:
    """The placements of ``rider`` into ``plan`` that keep the rule, with their costs
    (``plan_cost``'s, with its ``drive_weight``)."""
    out = []
    for candidate in placements(plan, rider.ride_id, route.committed):
        cost = plan_cost(route, candidate, riders, travel, drive_weight)
        if cost < math.inf:
            out.append((cost, candidate))
    return out


def best_placement(
    route: Route,
    plan: Plan,
    rider: PoolRider,
    riders: Mapping[Hashable, PoolRider],
    travel: Travel,
    drive_weight: float = 0.0,
) -> tuple[float, Plan] | None:
    """The cheapest placement (the first of equal ones), or None when none keeps the rule."""
    best: tuple[float, Plan] | None = None
    for candidate in placements(plan, rider.ride_id, route.committed):
        cost = plan_cost(route, candidate, riders, travel, drive_weight)
        if cost < math.inf and (best is None or cost < best[0]):
            best = (cost, candidate)
    return best


@dataclass(slots=True)
class Assignment:
    """What a window decided: each changed vehicle's new plan, the riders it took, and the
    cost added (the new plans' costs minus the old ones')."""

    plans: dict[Hashable, Plan]
    riders: dict[Hashable, Hashable]  # ride id -> vehicle id
    added_cost: float

    @property
    def served(self) -> int:
        return len(self.riders)

    def key(self) -> tuple[int, float]:
        """Smaller is better: more riders served, then less cost added."""
        return (-self.served, self.added_cost)


def insert_in_order(
    asking: Sequence[PoolRider],
    routes: Mapping[Hashable, Route],
    riders: Mapping[Hashable, PoolRider],
    travel: Travel,
    reach: Callable[[PoolRider], Sequence[Hashable]],
    base_costs: Mapping[Hashable, float],
    first: Mapping[tuple[Hashable, Hashable], tuple[float, Plan] | None] | None = None,
    max_new: int | None = None,
    drive_weight: float = 0.0,
) -> Assignment:
    """The greedy path: riders by request time, each into the vehicle among ``reach``'s
    where it adds least, at most ``max_new`` riders per vehicle (None: no limit).
    ``first`` may hold each (ride, vehicle)'s best placement into the vehicle's plan as it
    was (reused until the vehicle's plan changes)."""
    current: dict[Hashable, Route] = {}
    cost_now: dict[Hashable, float] = {}
    taken: dict[Hashable, int] = {}
    out = Assignment({}, {}, 0.0)
    for rider in sorted(asking, key=lambda r: r.requested_at):
        best: tuple[float, Hashable, Plan] | None = None
        for vehicle_id in reach(rider):
            if max_new is not None and taken.get(vehicle_id, 0) >= max_new:
                continue
            if vehicle_id not in cost_now:
                cost_now[vehicle_id] = base_costs[vehicle_id]
            route = current.get(vehicle_id) or routes[vehicle_id]
            if (
                vehicle_id not in current
                and first is not None
                and (rider.ride_id, vehicle_id) in first
            ):
                found = first[(rider.ride_id, vehicle_id)]
            else:
                found = best_placement(route, route.plan, rider, riders, travel, drive_weight)
            if found is None:
                continue
            added = found[0] - cost_now[vehicle_id]
            if best is None or added < best[0]:
                best = (added, vehicle_id, found[1])
        if best is None:
            continue
        added, vehicle_id, plan = best
        route = current.get(vehicle_id) or routes[vehicle_id]
        current[vehicle_id] = replace(route, plan=plan)
        cost_now[vehicle_id] += added
        taken[vehicle_id] = taken.get(vehicle_id, 0) + 1
        out.plans[vehicle_id] = plan
        out.riders[rider.ride_id] = vehicle_id
        out.added_cost += added
    return out
