"""The rule every pooled plan keeps (dispatch/domain/pooling.py): seats, each accepted
rider's latest pickup and time in the vehicle, pickups before drop-offs, everyone dropped
off; ``walk`` says why a plan breaks it and ``plan_cost`` gives the same verdict and cost."""

from __future__ import annotations

import math

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from dispatch.domain.pooling import (
    PoolBounds,
    PoolRider,
    Route,
    Stop,
    plan_cost,
    walk,
    without,
)

KM = 1_000.0


def line(a: tuple[float, float], b: tuple[float, float]) -> float:
    """A flat test world: x, y in metres, one second per metre."""
    return math.dist(a, b)


def rider(ride_id: str, pickup: float, dropoff: float, seats: int = 1, *, at: float = 0.0,
          wait: float = 10 * KM, detour: float = 1.5) -> PoolRider:  # fmt: skip
    return PoolRider.asking(
        ride_id, seats, (pickup, 0.0), (dropoff, 0.0), at, PoolBounds(wait, detour), line
    )


P, D = (lambda r: Stop(r, True)), (lambda r: Stop(r, False))


def test_a_plan_that_keeps_every_bound_is_timed_and_costs_the_riders_delay() -> None:
    riders = {"a": rider("a", 1 * KM, 5 * KM), "b": rider("b", 2 * KM, 4 * KM)}
    route = Route("v", 4, (0.0, 0.0), 0.0)
    done = walk(route, (P("a"), P("b"), D("b"), D("a")), riders, line)
    assert done.ok and done.times == (1 * KM, 2 * KM, 4 * KM, 5 * KM)
    # a: dropped at 5 km, requested at 0, direct 4 km: 1 km late; b: 4 - 0 - 2 = 2 km late
    assert done.cost == pytest.approx(3 * KM)
    assert plan_cost(route, (P("a"), P("b"), D("b"), D("a")), riders, line) == done.cost
    # with a drive weight, each second driven (5 km here) adds that much
    weighted = walk(route, (P("a"), P("b"), D("b"), D("a")), riders, line, 0.5)
    assert weighted.cost == pytest.approx(3 * KM + 0.5 * 5 * KM)


def test_more_seats_than_the_vehicle_has_are_refused() -> None:
    riders = {"a": rider("a", 1 * KM, 5 * KM, 2), "b": rider("b", 2 * KM, 4 * KM, 2)}
    plan = (P("a"), P("b"), D("b"), D("a"))
    assert walk(Route("v", 4, (0.0, 0.0), 0.0), plan, riders, line).ok
    done = walk(Route("v", 3, (0.0, 0.0), 0.0), plan, riders, line)
    assert done.problem == "P(b): 4 seats, the vehicle has 3"
    assert plan_cost(Route("v", 3, (0.0, 0.0), 0.0), plan, riders, line) == math.inf


def test_a_pickup_after_the_riders_latest_pickup_is_refused() -> None:
    riders = {"a": rider("a", 1 * KM, 5 * KM), "b": rider("b", 3 * KM, 4 * KM, wait=3.5 * KM)}
    route = Route("v", 4, (0.0, 0.0), 0.0)
    assert walk(route, (P("b"), D("b"), P("a"), D("a")), riders, line).ok
    done = walk(route, (P("a"), D("a"), P("b"), D("b")), riders, line)
    assert done.problem is not None and "after the rider's latest pickup" in done.problem
    assert done.problem.startswith("P(b) at 7000 s")


def test_a_detour_past_the_riders_bound_is_refused() -> None:
    # a rides 1 -> 2 km (direct 1 km, bound 1.5 km); going by b's drop-off at 4 km first
    # keeps a in the vehicle 5 km.
    riders = {"a": rider("a", 1 * KM, 2 * KM), "b": rider("b", 1 * KM, 4 * KM)}
    route = Route("v", 4, (0.0, 0.0), 0.0)
    done = walk(route, (P("a"), P("b"), D("b"), D("a")), riders, line)
    assert done.problem == "D(a): 5000 s in the vehicle, the rider's bound is 1500 s"
    assert walk(route, (P("a"), P("b"), D("a"), D("b")), riders, line).ok


@pytest.mark.parametrize(
    ("plan", "problem"),
    [
        ((D("a"), P("a")), "D(a): dropped off before its pickup"),
        ((P("a"), D("a"), D("a")), "D(a): dropped off twice"),
        ((P("a"), P("a"), D("a")), "P(a): picked up twice"),
        ((P("a"), D("a"), P("a"), D("a")), "P(a): picked up twice"),
        ((P("a"),), "riders never dropped off: a"),
        ((P("z"), D("z")), "P(z): unknown rider"),
    ],
)
def test_stops_out_of_order_twice_or_missing_are_refused(
    plan: tuple[Stop, ...], problem: str
) -> None:
    riders = {"a": rider("a", 1 * KM, 5 * KM)}
    assert walk(Route("v", 4, (0.0, 0.0), 0.0), plan, riders, line).problem == problem


def test_a_rider_on_board_must_be_dropped_off_within_their_bound_since_pickup() -> None:
    riders = {"a": rider("a", 0.0, 2 * KM)}  # bound 3 km in the vehicle
    onboard = Route("v", 4, (1 * KM, 0.0), 1_500.0, {"a": 0.0})
    assert walk(onboard, (D("a"),), riders, line).ok
    assert walk(onboard, (), riders, line).problem == "riders never dropped off: a"
    late = Route("v", 4, (1 * KM, 0.0), 2_500.0, {"a": 0.0})
    assert "in the vehicle" in str(walk(late, (D("a"),), riders, line).problem)
    crowded = Route("v", 0, (1 * KM, 0.0), 0.0, {"a": 0.0})
    assert walk(crowded, (D("a"),), riders, line).problem == "1 seats on board, the vehicle has 0"


def test_taking_a_riders_stops_out_keeps_the_others_order() -> None:
    plan = (P("a"), P("b"), D("a"), D("b"))
    assert without(plan, "a") == (P("b"), D("b"))


@pytest.mark.parametrize("seats", [0, 3])
def test_a_shared_ride_asks_for_one_or_two_seats(seats: int) -> None:
    with pytest.raises(ValueError, match="seats must be from 1 to 2"):
        rider("a", 0.0, KM, seats)


@pytest.mark.parametrize(
    ("wait", "detour"), [(0.0, 1.5), (math.nan, 1.5), (60.0, 0.9), (60.0, math.inf)]
)
def test_bounds_must_be_a_positive_wait_and_a_factor_of_at_least_one(
    wait: float, detour: float
) -> None:
    with pytest.raises(ValueError):
        PoolBounds(wait, detour)


_place = st.tuples(st.floats(0, 5 * KM), st.floats(0, 5 * KM))


@st.composite
def _plans(draw: st.DrawFn) -> tuple[Route, tuple[Stop, ...], dict[str, PoolRider]]:
    """Plans of 1-4 riders, each rider's pickup and drop-off put in at random positions
    (so most plans are well formed and many keep the rule), some then damaged: a stop
    dropped, doubled or moved, or a rider served again."""
    n = draw(st.integers(1, 4))
    riders = {}
    for i in range(n):
        pickup, dropoff = draw(_place), draw(_place)
        riders[f"r{i}"] = PoolRider.asking(
            f"r{i}", draw(st.integers(1, 2)), pickup, dropoff, draw(st.floats(0, 100)),
            PoolBounds(draw(st.floats(1 * KM, 20 * KM)), draw(st.floats(1, 4))), line,
        )  # fmt: skip
    onboard = {r: 0.0 for r in draw(st.sets(st.sampled_from(sorted(riders))))}
    plan: list[Stop] = []
    for r in riders:
        stops = [Stop(r, False)] if r in onboard else [Stop(r, True), Stop(r, False)]
        at = draw(st.integers(0, len(plan)))
        plan.insert(at, stops[0])
        if len(stops) == 2:
            plan.insert(draw(st.integers(at + 1, len(plan))), stops[1])
    damage = draw(st.sampled_from(["none", "none", "none", "drop", "double", "move", "again"]))
    if damage == "drop" and plan:
        plan.pop(draw(st.integers(0, len(plan) - 1)))
    elif damage == "double" and plan:
        plan.insert(draw(st.integers(0, len(plan))), draw(st.sampled_from(plan)))
    elif damage == "again":  # a rider served twice over
        r = draw(st.sampled_from(sorted(riders)))
        plan += [Stop(r, True), Stop(r, False)]
    elif damage == "move" and plan:
        plan.insert(
            draw(st.integers(0, len(plan) - 1)), plan.pop(draw(st.integers(0, len(plan) - 1)))
        )
    seats = draw(st.integers(1, 6))
    route = Route("v", seats, draw(_place), draw(st.floats(0, 100)), onboard, tuple(plan))
    return route, tuple(plan), riders


@settings(max_examples=600, deadline=None)
@given(_plans(), st.sampled_from([0.0, 0.5, 2.0]))
def test_the_fast_cost_gives_walks_verdict_and_cost_on_any_plan(
    case: tuple[Route, tuple[Stop, ...], dict[str, PoolRider]], weight: float
) -> None:
    route, plan, riders = case
    done = walk(route, plan, riders, line, weight)
    fast = plan_cost(route, plan, riders, line, weight)
    assert (fast == math.inf) == (not done.ok)
    if done.ok:
        assert fast == pytest.approx(done.cost)
    event("keeps the rule" if done.ok else "breaks it")
    event(f"{len({s.ride_id for s in plan})} riders in the plan")
