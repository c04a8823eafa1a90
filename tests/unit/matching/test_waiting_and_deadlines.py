"""Waiting rides and deadlines: the work of a tick follows what changed, not the backlog."""

from __future__ import annotations

import math
import uuid

from hypothesis import given, settings
from hypothesis import strategies as st

from dispatch.matching.deadlines import Deadlines
from dispatch.matching.geo import haversine_m
from dispatch.matching.strategies import PendingRide
from dispatch.matching.waiting import WaitingRides

CENTRE = (37.77, -122.42)
REACH_M = 3_000.0


def ride_at(lat: float, lng: float, at: float = 0.0) -> PendingRide:
    return PendingRide(uuid.uuid4(), lat, lng, at, at + 600.0)


def north_of(metres: float) -> tuple[float, float]:
    return CENTRE[0] + math.degrees(metres / 6_371_008.8), CENTRE[1]


def queue() -> WaitingRides:
    return WaitingRides(REACH_M, 8, first_retry_s=2.0, max_retry_s=16.0)


def ready_ids(waiting: WaitingRides, now: float) -> set[uuid.UUID]:
    return {r.ride_id for r in waiting.ready(now)}


def test_a_new_ride_is_ready_at_once() -> None:
    waiting, ride = queue(), ride_at(*CENTRE)
    waiting.add(ride)
    assert ready_ids(waiting, 0.0) == {ride.ride_id}


def test_a_ride_that_found_nobody_sleeps_with_a_backoff_doubling_up_to_its_cap() -> None:
    waiting, ride = queue(), ride_at(*CENTRE)
    waiting.add(ride)
    now, gaps = 0.0, []
    for _ in range(6):
        waiting.unmatched(ride, now)
        assert ready_ids(waiting, now) == set()
        wake = ride.retry_at
        assert ready_ids(waiting, wake - 0.001) == set()
        assert ready_ids(waiting, wake) == {ride.ride_id}
        gaps.append(wake - now)
        now = wake
    assert gaps == [2.0, 4.0, 8.0, 16.0, 16.0, 16.0]


def test_new_supply_wakes_exactly_the_sleeping_rides_within_reach() -> None:
    waiting = queue()
    near, edge, beyond, far = (ride_at(*north_of(m)) for m in (1_000, 2_990, 3_010, 50_000))
    for ride in (near, edge, beyond, far):
        waiting.add(ride)
        waiting.unmatched(ride, 0.0)
    assert waiting.wake_near(*CENTRE) == 2
    assert ready_ids(waiting, 0.5) == {near.ride_id, edge.ride_id}


def test_a_ride_that_was_paired_stays_ready_until_it_leaves_pending() -> None:
    waiting, ride = queue(), ride_at(*CENTRE)
    waiting.add(ride)
    assert ready_ids(waiting, 0.0) == {ride.ride_id}  # paired: nothing tells the queue
    assert ready_ids(waiting, 1.0) == {ride.ride_id}  # the pairing was not recorded
    waiting.remove(ride.ride_id)  # offered
    assert ready_ids(waiting, 100.0) == set()
    assert waiting.wake_near(*CENTRE) == 0


def test_a_ride_back_in_pending_starts_its_backoff_again() -> None:
    waiting, ride = queue(), ride_at(*CENTRE)
    waiting.add(ride)
    for now in (0.0, 2.0, 6.0):
        waiting.ready(now)
        waiting.unmatched(ride, now)
    waiting.remove(ride.ride_id)  # offered, then declined:
    waiting.add(ride)
    waiting.unmatched(ride, 20.0)
    assert ride.retry_at == 22.0


def test_superseded_backoffs_do_not_pile_up() -> None:
    waiting, ride = queue(), ride_at(*CENTRE)
    waiting.add(ride)
    for i in range(10_000):
        waiting.unmatched(ride, float(i))
        waiting.wake_near(*CENTRE)
    assert waiting.heap_size <= 2 * len(waiting) + 1024


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.floats(-0.06, 0.06), st.floats(-0.06, 0.06)), min_size=1, max_size=60),
    st.tuples(st.floats(-0.06, 0.06), st.floats(-0.06, 0.06)),
)
def test_wake_near_equals_a_brute_force_distance_check(
    offsets: list[tuple[float, float]], supply: tuple[float, float]
) -> None:
    waiting = queue()
    rides = [ride_at(CENTRE[0] + a, CENTRE[1] + b) for a, b in offsets]
    for ride in rides:
        waiting.add(ride)
        waiting.unmatched(ride, 0.0)
    lat, lng = CENTRE[0] + supply[0], CENTRE[1] + supply[1]
    waiting.wake_near(lat, lng)
    expected = {r.ride_id for r in rides if haversine_m(r.lat, r.lng, lat, lng) <= REACH_M}
    assert ready_ids(waiting, 0.5) == expected


class Clock:
    def __init__(self) -> None:
        self.deadlines: dict[str, float] = {}
        self.due = Deadlines[str](self.deadlines.get, lambda: list(self.deadlines.items()))

    def set(self, key: str, at: float) -> None:
        self.deadlines[key] = at
        self.due.add(key, at)


def test_a_due_deadline_is_reported_until_it_changes() -> None:
    c = Clock()
    c.set("a", 10.0)
    c.set("b", 20.0)
    assert c.due.due(9.9) == []
    assert c.due.due(10.0) == ["a"]
    assert c.due.due(11.0) == ["a"]  # not yet acted on: decided again
    del c.deadlines["a"]  # acted on (the offer ended)
    assert c.due.due(12.0) == []
    assert c.due.due(20.0) == ["b"]


def test_a_replaced_deadline_counts_and_the_old_one_does_not() -> None:
    c = Clock()
    c.set("a", 10.0)
    assert c.due.due(10.0) == ["a"]
    c.set("a", 30.0)  # a new offer for the same ride, before the old expiry came back
    assert c.due.due(11.0) == []
    assert c.due.due(30.0) == ["a"]


def test_equal_deadlines_fall_due_in_the_order_they_were_set() -> None:
    c = Clock()
    for key in ("c", "a", "b"):
        c.set(key, 5.0)
    assert c.due.due(5.0) == ["c", "a", "b"]


def test_superseded_deadlines_do_not_pile_up() -> None:
    c = Clock()
    for i in range(50_000):
        c.set("a", float(i + 100_000))
    assert len(c.due) <= 4096
    assert c.due.due(149_999.0) == ["a"]
