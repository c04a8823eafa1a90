"""Shared rides' matching (dispatch/matching/pooling/): placements keep a plan's order,
insertion takes the cheapest, and a batch window's answer is never worse than the greedy
path's on the same input, keeps every plan within the rule and drops no accepted rider."""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Hashable

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from dispatch.domain.pooling import PoolBounds, PoolRider, Route, Stop, walk
from dispatch.matching.pooling.batch import (
    PoolLimits,
    Shareable,
    assign_in_order,
    assign_window,
)
from dispatch.matching.pooling.insertion import (
    best_placement,
    feasible_placements,
    insert_in_order,
    placements,
)
from dispatch.matching.pooling.travel import Reach, StraightLineTravel

PACE = 0.2  # seconds per metre
TRAVEL = StraightLineTravel(PACE)
ORIGIN = (37.77, -122.42)
KM_LAT = 1 / 111.195  # degrees of latitude per km


def north(km: float, east: float = 0.0) -> tuple[float, float]:
    return (ORIGIN[0] + km * KM_LAT, ORIGIN[1] + east * KM_LAT / math.cos(math.radians(ORIGIN[0])))


def ask(ride_id: str, pickup: tuple[float, float], dropoff: tuple[float, float], *, seats: int = 1,
        at: float = 0.0, wait: float = 250.0, detour: float = 1.5) -> PoolRider:  # fmt: skip
    return PoolRider.asking(ride_id, seats, pickup, dropoff, at, PoolBounds(wait, detour), TRAVEL)


def test_placements_put_pickup_before_drop_off_and_keep_the_plans_order() -> None:
    plan = (Stop("a", True), Stop("b", True), Stop("a", False))
    found = list(placements(plan, "n"))
    assert len(found) == len(set(found)) == (3 + 1) * (3 + 2) // 2
    for candidate in found:
        assert tuple(s for s in candidate if s.ride_id != "n") == plan
        assert candidate.index(Stop("n", True)) < candidate.index(Stop("n", False))
    after_next = list(placements(plan, "n", first=1))  # the next stop committed
    assert len(after_next) == 3 * 4 // 2 and all(p[0] == plan[0] for p in after_next)


def test_a_search_puts_nothing_before_a_vehicles_committed_stops() -> None:
    a = ask("a", north(2), north(4), wait=600, detour=3.0)
    n = ask("n", north(0.1), north(4.1), wait=1_200, detour=3.0)  # on the way to a's pickup
    plan = (Stop("a", True), Stop("a", False))
    free = Route("V", 4, ORIGIN, 0.0, {}, plan)
    riders = {"a": a, "n": n}
    best = best_placement(free, plan, n, riders, TRAVEL)
    assert best is not None and best[1][0] == Stop("n", True)
    committed = Route("V", 4, ORIGIN, 0.0, {}, plan, committed=1)
    best = best_placement(committed, plan, n, riders, TRAVEL)
    assert best is not None and best[1][0] == Stop("a", True)


def test_the_best_placement_is_the_cheapest_plan_that_keeps_the_rule() -> None:
    riders = {
        "a": ask("a", north(0.5), north(4), wait=600),
        "b": ask("b", north(1), north(3), wait=600),
        "n": ask("n", north(1.5), north(2.5), wait=600),
    }
    route = Route(
        "v",
        4,
        ORIGIN,
        0.0,
        {},
        (Stop("a", True), Stop("b", True), Stop("b", False), Stop("a", False)),
    )
    walks = [walk(route, p, riders, TRAVEL) for p in placements(route.plan, "n")]
    cheapest = min(w.cost for w in walks if w.ok)
    found = best_placement(route, route.plan, riders["n"], riders, TRAVEL)
    assert found is not None and found[0] == pytest.approx(cheapest)
    assert len(feasible_placements(route, route.plan, riders["n"], riders, TRAVEL)) == sum(
        w.ok for w in walks
    )


def test_a_window_serves_riders_the_greedy_path_leaves_waiting() -> None:
    # r1 asked first; A (1 km north) is nearest to it, and also the only vehicle in reach of
    # r2 (2 km north). B (1.1 km south) can reach r1 only. The trips go opposite ways, so
    # one vehicle cannot take both: the greedy path gives r1 to A and leaves r2 waiting.
    r1 = ask("r1", ORIGIN, north(-3), at=0.0)
    r2 = ask("r2", north(2), north(5), at=1.0)
    routes = [Route("A", 4, north(1), 1.0), Route("B", 4, north(-1.1), 1.0)]
    chosen, report = assign_window(
        [r1, r2], routes, {}, TRAVEL, PACE, PoolLimits(budget_s=5.0), 1.0
    )
    assert chosen.riders == {"r1": "B", "r2": "A"}
    assert (report.served, report.insertion_served) == (2, 1)
    assert report.solver in {"trips", "ilp"} and not report.capped


def test_a_window_pools_riders_going_the_same_way_into_one_vehicle() -> None:
    r1 = ask("r1", ORIGIN, north(4), at=0.0)
    r2 = ask("r2", north(0.2), north(4.2), at=0.0)
    chosen, report = assign_window(
        [r1, r2], [Route("A", 4, north(-0.5), 0.0)], {}, TRAVEL, PACE, PoolLimits(), 0.0
    )
    assert chosen.riders == {"r1": "A", "r2": "A"} and report.trips[:2] == (2, 1)
    assert walk(Route("A", 4, north(-0.5), 0.0), chosen.plans["A"], {"r1": r1, "r2": r2}, TRAVEL).ok


def test_a_window_out_of_time_keeps_the_greedy_paths_answer_and_says_capped() -> None:
    ticks = itertools.count(step=10.0)  # every reading of the clock is 10 s later
    r1 = ask("r1", ORIGIN, north(-3), at=0.0)
    r2 = ask("r2", north(2), north(5), at=1.0)
    routes = [Route("A", 4, north(1), 1.0), Route("B", 4, north(-1.1), 1.0)]
    chosen, report = assign_window(
        [r1, r2], routes, {}, TRAVEL, PACE, PoolLimits(budget_s=1.0), 1.0, clock=lambda: next(ticks)
    )
    assert report.capped and report.solver == "insertion"
    assert chosen.riders == {"r1": "A"}


def test_a_vehicle_without_the_seats_or_the_time_is_not_in_reach() -> None:
    routes = [
        Route("near-2", 2, north(0.1), 0.0),
        Route("far", 4, north(3), 0.0),
        Route("ok", 4, north(0.5), 0.0),
    ]
    reach = Reach(routes, PACE)
    assert reach.of(ask("r", ORIGIN, north(2), seats=2), 8) == ["near-2", "ok"]
    assert reach.of(ask("r", ORIGIN, north(2), seats=2), 1) == ["near-2"]
    small = [Route("tiny", 1, north(0.1), 0.0)]
    assert Reach(small, PACE).of(ask("r", ORIGIN, north(2), seats=2), 8) == []


@pytest.mark.parametrize(
    ("kwargs", "message"), [({"candidates": 0}, "at least 1"), ({"budget_s": 0.0}, "budget_s")]
)
def test_limits_refuse_meaningless_values(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PoolLimits(**kwargs)  # type: ignore[arg-type]


_km = st.floats(-3, 3)


@st.composite
def _windows(draw: st.DrawFn) -> tuple[list[PoolRider], list[Route], dict[Hashable, PoolRider]]:
    accepted: dict[Hashable, PoolRider] = {}
    routes = []
    for v in range(draw(st.integers(1, 5))):
        at = north(draw(_km), draw(_km))
        route = Route(f"v{v}", draw(st.sampled_from([2, 4, 6])), at, 100.0)
        if draw(st.booleans()):
            a = ask(
                f"a{v}",
                at,
                north(draw(_km), draw(_km)),
                at=draw(st.floats(0, 100)),
                wait=600,
                detour=2.0,
            )
            on = draw(st.booleans())
            plan = (
                (Stop(a.ride_id, False),) if on else (Stop(a.ride_id, True), Stop(a.ride_id, False))
            )
            trial = Route(
                route.vehicle_id, route.seats, at, 100.0, {a.ride_id: 90.0} if on else {}, plan
            )
            if walk(trial, plan, {a.ride_id: a}, TRAVEL).ok:
                route, accepted[a.ride_id] = trial, a
        routes.append(route)
    asking = [
        ask(
            f"r{i}",
            north(draw(_km), draw(_km)),
            north(draw(_km), draw(_km)),
            seats=draw(st.integers(1, 2)),
            at=draw(st.floats(90, 100)),
            wait=draw(st.floats(100, 600)),
            detour=draw(st.floats(1.2, 2.5)),
        )
        for i in range(draw(st.integers(1, 6)))
    ]
    return asking, routes, accepted


WEIGHTS = st.sampled_from([0.0, 0.0, 0.5, 1.0, 3.0])  # seconds of delay a second driven is


@settings(max_examples=150, deadline=None)
@given(_windows(), st.integers(1, 3), WEIGHTS)
def test_a_windows_plans_are_never_worse_than_insertion_and_keep_the_rule(
    case: tuple[list[PoolRider], list[Route], dict[Hashable, PoolRider]],
    max_trip: int,
    weight: float,
) -> None:
    asking, routes, accepted = case
    limits = PoolLimits(candidates=8, max_trip=max_trip, budget_s=30.0, drive_weight=weight)
    chosen, report = assign_window(asking, routes, accepted, TRAVEL, PACE, limits, 100.0)
    riders = {**accepted, **{r.ride_id: r for r in asking}}
    by_id = {r.vehicle_id: r for r in routes}
    base = {v: walk(r, r.plan, riders, TRAVEL, weight).cost for v, r in by_id.items()}
    reach = Reach(routes, PACE)
    greedy = insert_in_order(asking, by_id, riders, TRAVEL, lambda r: reach.of(r, 8), base,
                             max_new=max_trip, drive_weight=weight)  # fmt: skip
    assert chosen.key() <= (greedy.key()[0], greedy.key()[1] + 1e-6)
    assert (report.insertion_served, report.served) == (greedy.served, chosen.served)
    added = 0.0
    for vehicle_id, plan in chosen.plans.items():
        route = by_id[vehicle_id]
        done = walk(route, plan, riders, TRAVEL, weight)
        assert done.ok, done.problem
        new = {s.ride_id for s in plan} - {s.ride_id for s in route.plan}
        assert tuple(s for s in plan if s.ride_id not in new) == route.plan  # old stops, old order
        assert new == {r for r, v in chosen.riders.items() if v == vehicle_id}
        added += done.cost - base[vehicle_id]
    assert added == pytest.approx(chosen.added_cost, abs=1e-6)


def _every_plan(route: Route, new: list[PoolRider]) -> list[tuple[Stop, ...]]:
    plans = [route.plan]
    for rider in new:
        plans = [p for plan in plans for p in placements(plan, rider.ride_id)]
    return plans


def _brute_force(
    asking: list[PoolRider],
    routes: list[Route],
    accepted: dict[Hashable, PoolRider],
    max_trip: int,
    weight: float = 0.0,
) -> tuple[int, float]:
    """The best key over every assignment of riders to vehicles (or none), each vehicle's
    riders placed every possible way: no pruning, no candidates."""
    riders = {**accepted, **{r.ride_id: r for r in asking}}
    base = {r.vehicle_id: walk(r, r.plan, riders, TRAVEL, weight).cost for r in routes}
    best_of: dict[tuple[Hashable, frozenset[Hashable]], float] = {}

    def cheapest(route: Route, group: frozenset[Hashable]) -> float:
        key = (route.vehicle_id, group)
        if key not in best_of:
            costs = [
                walk(route, p, riders, TRAVEL, weight)
                for p in _every_plan(route, [riders[r] for r in sorted(group, key=str)])
            ]  # type: ignore[misc]
            best_of[key] = (
                min((w.cost for w in costs if w.ok), default=math.inf) - base[route.vehicle_id]
            )
        return best_of[key]

    best = (0, 0.0)
    for choice in itertools.product([None, *range(len(routes))], repeat=len(asking)):
        added, served = 0.0, 0
        for v, route in enumerate(routes):
            group = frozenset(r.ride_id for r, c in zip(asking, choice, strict=True) if c == v)
            if not group:
                continue
            if len(group) > max_trip:
                added = math.inf
                break
            added += cheapest(route, group)
            served += len(group)
        if added < math.inf and (-served, added) < best:
            best = (-served, added)
    return best


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_a_window_with_time_finds_the_best_assignment_brute_force_finds(
    data: st.DataObject,
) -> None:
    asking, routes, accepted = data.draw(_windows())
    asking = asking[:4]
    routes = [r for r in routes[:3]]
    accepted = {
        k: v
        for k, v in accepted.items()
        if any(k in r.onboard or any(s.ride_id == k for s in r.plan) for r in routes)
    }
    # some vehicles' positions are older than the window (a stale ping)
    routes = [
        Route(
            r.vehicle_id,
            r.seats,
            r.at,
            r.ready_at - data.draw(st.sampled_from([0.0, 0.0, 30.0])),
            r.onboard,
            r.plan,
        )
        for r in routes
    ]
    max_trip, weight = data.draw(st.integers(1, 3)), data.draw(WEIGHTS)
    limits = PoolLimits(max_trip=max_trip, budget_s=60.0, drive_weight=weight)
    chosen, report = assign_window(asking, routes, accepted, TRAVEL, PACE, limits, 100.0)
    best = _brute_force(asking, routes, accepted, max_trip, weight)
    assert not report.capped
    assert chosen.key()[0] == best[0]  # as many served (the keys hold minus the count)
    assert chosen.added_cost == pytest.approx(best[1], abs=1e-6)


def test_the_greedy_path_gives_a_vehicle_no_more_new_riders_than_max_trip() -> None:
    # four riders at one corner, one vehicle there, a second far off
    asking = [
        ask(f"r{i}", north(0.01 * i), north(3), at=float(i), wait=600, detour=3.0) for i in range(4)
    ]
    routes = [Route("A", 8, ORIGIN, 5.0), Route("B", 8, north(-1.5), 5.0)]
    chosen, report = assign_window(
        asking, routes, {}, TRAVEL, PACE, PoolLimits(max_trip=1, budget_s=5.0), 5.0
    )
    assert sorted(chosen.riders.values()) == ["A", "B"]
    by_id = {r.vehicle_id: r for r in routes}
    greedy = insert_in_order(
        asking,
        by_id,
        dict((r.ride_id, r) for r in asking),
        TRAVEL,
        lambda r: ["A", "B"],
        {"A": 0.0, "B": 0.0},
        max_new=1,
    )
    assert sorted(greedy.riders.values()) == ["A", "B"] and report.insertion_served == 2


def test_a_drive_weight_puts_a_rider_into_a_car_on_its_way_rather_than_a_free_one() -> None:
    # "a" rides north from the origin; "n" asks a little further up for a shorter trip the
    # same way; a free car waits right at n's pickup
    a = ask("a", ORIGIN, north(5), at=0.0, wait=600, detour=2.0)
    n = ask("n", north(1), north(4), at=100.0, wait=600, detour=2.0)
    serving = Route("on-its-way", 4, ORIGIN, 100.0, {"a": 90.0}, (Stop("a", False),))
    free = Route("free", 4, north(1.05), 100.0)
    for weight, car in ((0.0, "free"), (1.0, "on-its-way")):
        limits = PoolLimits(budget_s=5.0, drive_weight=weight)
        for assign in ("window", "in_order"):
            if assign == "window":
                chosen, _ = assign_window([n], [serving, free], {"a": a}, TRAVEL, PACE, limits,
                                          100.0)  # fmt: skip
            else:
                chosen = assign_in_order([n], [serving, free], {"a": a}, TRAVEL, PACE, limits)
            assert chosen.riders == {"n": car}, (weight, assign)


def test_a_negative_or_unbounded_drive_weight_is_refused() -> None:
    for weight in (-1.0, math.inf, math.nan):
        with pytest.raises(ValueError, match="drive_weight must be 0 or more"):
            PoolLimits(drive_weight=weight)


def test_a_window_serves_the_most_riders_even_where_a_trip_saves_delay() -> None:
    # Vehicles whose positions are older than the riders' requests pick some up "before"
    # they asked: a trip's added delay is then below zero, which the program's weight for
    # one more rider served must still outweigh.
    r1 = ask("r1", ORIGIN, north(-3), at=200.0)
    r2 = ask("r2", north(2), north(5), at=200.0)
    routes = [Route("A", 4, north(1), -100.0), Route("B", 4, north(-1.1), -100.0)]
    limits = PoolLimits(budget_s=5.0, drive_weight=0.0)  # the riders' delay alone
    chosen, _ = assign_window([r1, r2], routes, {}, TRAVEL, PACE, limits, 200.0)
    assert chosen.riders == {"r1": "B", "r2": "A"} and chosen.added_cost < 0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("twice", "in the window twice"),
        ("accepted", "both asking and accepted"),
        ("unknown", "serves riders not accepted"),
        ("vehicle", "a vehicle is in the window twice"),
    ],
)
def test_a_window_refuses_riders_or_vehicles_given_twice_or_unknown(
    change: str, message: str
) -> None:
    r1 = ask("r1", ORIGIN, north(2))
    asking, accepted = [r1], {}
    routes = [Route("A", 4, north(1), 0.0)]
    if change == "twice":
        asking = [r1, r1]
    elif change == "accepted":
        accepted = {"r1": r1}
    elif change == "unknown":
        routes = [Route("A", 4, north(1), 0.0, {"ghost": 0.0}, (Stop("ghost", False),))]
    else:
        routes = routes * 2
    with pytest.raises(ValueError, match=message):
        assign_window(asking, routes, accepted, TRAVEL, PACE, PoolLimits(), 0.0)


def test_a_window_that_ran_past_its_budget_says_capped() -> None:
    ticks = itertools.count(step=0.2)  # every reading of the clock is 0.2 s later
    r1 = ask("r1", ORIGIN, north(4))
    _, report = assign_window(
        [r1],
        [Route("A", 4, north(0.5), 0.0)],
        {},
        TRAVEL,
        PACE,
        PoolLimits(budget_s=1.0),
        0.0,
        clock=lambda: next(ticks),
    )
    assert report.served == 1 and report.capped


@st.composite
def _crowded(draw: st.DrawFn) -> tuple[list[PoolRider], list[Route]]:
    """Riders close together going the same way, few vehicles, some seen a while ago:
    windows where pooling two or three riders is what the best assignment does."""
    near_km = st.floats(-0.6, 0.6)
    asking = [
        ask(
            f"r{i}",
            north(draw(near_km), draw(near_km)),
            north(3 + draw(near_km), draw(near_km)),
            seats=draw(st.integers(1, 2)),
            at=100.0 - draw(st.floats(0, 20)),
            wait=draw(st.floats(150, 500)),
            detour=draw(st.floats(1.1, 2.0)),
        )
        for i in range(draw(st.integers(2, 4)))
    ]
    routes = [
        Route(
            f"v{v}",
            draw(st.sampled_from([2, 3, 4])),
            north(draw(near_km) - 0.5, draw(near_km)),
            100.0 - draw(st.sampled_from([0.0, 0.0, 40.0])),
        )
        for v in range(draw(st.integers(1, 2)))
    ]
    return asking, routes


@settings(max_examples=80, deadline=None)
@given(_crowded(), st.integers(2, 3), WEIGHTS)
def test_a_window_of_riders_who_could_share_finds_the_best_pooling(
    case: tuple[list[PoolRider], list[Route]], max_trip: int, weight: float
) -> None:
    asking, routes = case
    limits = PoolLimits(max_trip=max_trip, budget_s=60.0, drive_weight=weight)
    chosen, report = assign_window(asking, routes, {}, TRAVEL, PACE, limits, 100.0)
    best = _brute_force(asking, routes, {}, max_trip, weight)
    assert not report.capped
    assert chosen.key()[0] == best[0]
    assert chosen.added_cost == pytest.approx(best[1], abs=1e-6)
    most = max(Counter(chosen.riders.values()).values(), default=0)
    event(f"{chosen.served} served, {most} in one vehicle")


@pytest.mark.parametrize("stale_s", [0.0, 100.0])
def test_two_riders_only_one_order_can_serve_are_still_pooled(stale_s: float) -> None:
    # The vehicle waits at b's pickup; a is 1 km (200 s) north. b must be picked up at once
    # (its latest pickup is where the vehicle is, when it is there), a within 300 s: only
    # "b first" serves both, from b's pickup, and only from the vehicle's own (maybe older)
    # time. Both rides go 5 km north.
    now = 1_000.0
    ready = now - stale_s
    b = ask("b", ORIGIN, north(5), at=ready - 10, wait=40.0, detour=2.0)
    a = ask("a", north(1), north(5), at=ready, wait=300.0, detour=2.0)
    routes = [Route("V", 4, ORIGIN, ready)]
    chosen, _ = assign_window([b, a], routes, {}, TRAVEL, PACE, PoolLimits(budget_s=5.0), now)
    assert chosen.riders == {"a": "V", "b": "V"}
    assert chosen.plans["V"][:2] == (Stop("b", True), Stop("a", True))
    # the pair test the trips are pruned with agrees, whichever rider it is asked about
    # first, from the earliest time a vehicle is anywhere
    riders = {"a": a, "b": b}
    assert Shareable(riders, TRAVEL, ready)("a", "b") and Shareable(riders, TRAVEL, ready)("b", "a")
    assert not Shareable(riders, TRAVEL, ready + 100)("a", "b")
