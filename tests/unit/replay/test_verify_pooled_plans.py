"""`replay verify` on shared rides (dispatch/invariants_pooled.py): a plan that keeps its
riders' bounds and the vehicle's seats passes; one picking up late, keeping a rider too long,
seating too many, holding a single ride or recorded without times is flagged; a pooled
driver offered another ride is a driver in two rides; what happened on the road past a
bound is counted, not flagged; riders actually aboard beyond the seats are flagged."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import pytest

from dispatch.invariants import InvariantChecker
from dispatch.log import LogEvent

D, R1, R2, R3 = "d" * 8 + "-0000-0000-0000-000000000000", "1" * 36, "2" * 36, "3" * 36
T0 = 1_780_000_000.0


def iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat()


class Log:
    def __init__(self) -> None:
        self.events: list[LogEvent] = []
        self.versions: dict[str, int] = {}

    def add(self, aggregate: str, kind: str, at: float, **data: Any) -> Log:
        version = self.versions[aggregate] = self.versions.get(aggregate, 0) + 1
        self.events.append(LogEvent(0, len(self.events) + 1, aggregate, version,
                                    f"dispatch.{kind}", T0 + at, data))  # fmt: skip
        return self

    def checked(self) -> InvariantChecker:
        checker = InvariantChecker()
        for e in self.events:
            checker.check(e)
        checker.finish()
        return checker


def request(log: Log, ride: str, at: float, seats: int | None) -> None:
    sharing = None if seats is None else {"seats": seats, "max_wait_s": 300.0,
                                          "detour_factor": 1.5, "direct_s": 600.0}  # fmt: skip
    log.add(ride, "Ride.Requested", at, rider_id=ride, pickup=[37.7, -122.4],
            dropoff=[37.8, -122.4], expires_at=iso(T0 + at + 900), fare=None,
            product="standard", sharing=sharing)  # fmt: skip


def pooled_two(vehicle_seats: int = 4, seats2: int = 1, times2: list[float] | None = None) -> Log:
    """r1 offered to d with its plan and accepted; r2 pooled in after r1's pickup."""
    log = Log()
    log.add(
        D,
        "Driver.Registered",
        0,
        name="d",
        vehicle={"product": "standard", "seats": vehicle_seats, "accessible": False},
    )
    log.add(D, "Driver.WentOnline", 1)
    request(log, R1, 0, 1)
    log.add(R1, "Ride.Offered", 2, driver_id=D, offer_expires_at=iso(T0 + 17), pickup_eta_s=98,
            distance_m=500)  # fmt: skip
    log.add(D, "Driver.OfferReceived", 2, ride_id=R1, expires_at=iso(T0 + 17), resv="",
            plan=[[R1, "P"], [R1, "D"]], times=[T0 + 100, T0 + 700])  # fmt: skip
    log.add(R1, "Ride.Accepted", 5, driver_id=D)
    log.add(D, "Driver.Assigned", 5, ride_id=R1)
    request(log, R2, 10, seats2)
    log.add(R2, "Ride.Pooled", 12, driver_id=D)
    times = times2 if times2 is not None else [100.0, 200.0, 800.0, 900.0]
    log.add(
        D,
        "Driver.PlanExtended",
        12,
        ride_id=R2,
        plan=[[R1, "P"], [R2, "P"], [R1, "D"], [R2, "D"]],
        times=[T0 + t for t in times],
    )
    return log


def kinds(checker: InvariantChecker) -> list[str]:
    return [v.kind for v in checker.violations]


def test_a_plan_that_keeps_the_bounds_and_seats_passes() -> None:
    checker = pooled_two().checked()
    assert checker.violations == []
    assert checker.driver_pool == {D: {R2}}


@pytest.mark.parametrize(
    ("times", "detail"),
    [
        ([100.0, 400.0, 800.0, 900.0], "after its latest pickup"),  # r2 latest: 10 + 300
        ([100.0, 200.0, 1_100.0, 1_200.0], "s in the vehicle, its bound is 900.0 s"),  # r1
    ],
)
def test_a_plan_picking_up_late_or_keeping_a_rider_too_long_is_flagged(
    times: list[float], detail: str
) -> None:
    checker = pooled_two(times2=times).checked()
    assert kinds(checker) == ["plan_breaks_bounds"]
    assert detail in checker.violations[0].detail


def test_a_plan_needing_more_seats_than_the_vehicle_has_is_flagged() -> None:
    checker = pooled_two(vehicle_seats=2, seats2=2).checked()
    assert kinds(checker) == ["plan_over_seats"]


def test_a_single_ride_pooled_or_in_a_plan_is_flagged() -> None:
    log = pooled_two()
    request(log, R3, 20, None)
    log.add(R3, "Ride.Pooled", 21, driver_id=D)
    log.add(D, "Driver.PlanExtended", 21, ride_id=R3,
            plan=[[R1, "P"], [R2, "P"], [R3, "P"], [R1, "D"], [R2, "D"], [R3, "D"]],
            times=[T0 + t for t in (100, 200, 250, 800, 900, 950)])  # fmt: skip
    assert kinds(log.checked()) == ["pooled_single_ride", "pooled_single_ride"]


def test_a_plan_without_times_is_flagged() -> None:
    log = pooled_two()
    log.events[-1] = LogEvent(
        0,
        log.events[-1].position,
        D,
        log.events[-1].version,
        "dispatch.Driver.PlanExtended",
        T0 + 12,
        {"ride_id": R2, "plan": [[R1, "P"], [R2, "P"], [R1, "D"], [R2, "D"]]},
    )
    assert kinds(log.checked()) == ["plan_without_times"]


@pytest.mark.parametrize("first_cancelled", [False, True])
def test_a_driver_serving_a_plan_offered_another_ride_is_in_two_rides(
    first_cancelled: bool,
) -> None:
    log = pooled_two()
    if first_cancelled:  # the ride it was offered ended: it still serves r2
        log.add(R1, "Ride.CancelledByRider", 15, reason="x", fee=None)
        log.add(D, "Driver.PoolRideEnded", 15, ride_id=R1, reason="cancelled_by_rider")
    request(log, R3, 20, None)
    log.add(R3, "Ride.Offered", 21, driver_id=D, offer_expires_at=iso(T0 + 36), pickup_eta_s=60,
            distance_m=300)  # fmt: skip
    assert "driver_in_two_rides" in kinds(log.checked())


def test_the_road_past_a_bound_is_counted_and_riders_aboard_past_the_seats_flagged() -> None:
    log = pooled_two(vehicle_seats=2, seats2=1)
    log.add(R1, "Ride.DriverArrived", 300, driver_id=D)
    log.add(R1, "Ride.TripStarted", 400, driver_id=D)  # latest pickup was 300
    log.add(D, "Driver.TripStarted", 400, ride_id=R1)
    log.add(R2, "Ride.DriverArrived", 450, driver_id=D)
    log.add(R2, "Ride.TripStarted", 460, driver_id=D)
    log.add(D, "Driver.PoolPickedUp", 460, ride_id=R2)
    log.add(R1, "Ride.Completed", 1_500, driver_id=D, distance_m=6_000, duration_s=1_100,
            trip_by={"distance": "clock", "duration": "clock"}, fare=None)  # fmt: skip
    log.add(D, "Driver.PoolRideEnded", 1_500, ride_id=R1, reason="completed")
    checker = log.checked()
    assert checker.pooled.waits_over_bound == 2  # r1 at 400 > 300, r2 at 460 > 310
    assert checker.pooled.rides_over_bound == 1  # r1: 1,100 s > 900 s
    assert "seats_exceeded" not in kinds(checker)
    crowded = pooled_two(vehicle_seats=2, seats2=2)
    crowded.add(R1, "Ride.DriverArrived", 90, driver_id=D)
    crowded.add(R1, "Ride.TripStarted", 100, driver_id=D)
    crowded.add(R2, "Ride.DriverArrived", 190, driver_id=D)
    crowded.add(R2, "Ride.TripStarted", 200, driver_id=D)
    assert kinds(crowded.checked()) == ["plan_over_seats", "seats_exceeded"]


def extended(log: Log, at: float, ride: str, plan: list[list[str]], times: list[float]) -> Log:
    return log.add(D, "Driver.PlanExtended", at, ride_id=ride, plan=plan,
                   times=[T0 + t for t in times])  # fmt: skip


def with_r3_pooled(shared: bool = True) -> Log:
    log = pooled_two()
    request(log, R3, 20, 1 if shared else None)
    log.add(R3, "Ride.Pooled", 21, driver_id=D)
    return log


P1, P2, P3 = [R1, "P"], [R2, "P"], [R3, "P"]
D1, D2_, D3 = [R1, "D"], [R2, "D"], [R3, "D"]


@pytest.mark.parametrize(
    ("plan", "detail"),
    [
        ([P1, P2, D3, P3, D1, D2_], "pickup and then its drop-off"),  # r3 dropped first
        ([P1, D1, P2, P3, D2_, D3], "keep its stops in their order"),  # r1 before r2 now
        ([P1, P2, P3, D1, D2_], "pickup and then its drop-off"),  # r3 never dropped
        ([P3, P1, P2, D1, D2_, D3], "is committed"),  # before the next stop
        ([P1, P2, P3, D1, D2_, D3, D3], "pickup and then its drop-off"),  # twice
    ],
)
def test_a_plan_that_is_not_the_last_one_with_its_ride_put_in_is_malformed(
    plan: list[list[str]], detail: str
) -> None:
    log = extended(with_r3_pooled(), 21, R3, plan, list(range(100, 100 + 10 * len(plan), 10)))
    checker = log.checked()
    assert kinds(checker) == ["plan_malformed"]
    assert detail in checker.violations[0].detail


def test_a_plan_naming_a_ride_not_pooled_to_its_driver_is_flagged() -> None:
    log = pooled_two()
    request(log, R3, 20, 1)  # requested, never pooled to d
    extended(log, 21, R3, [P1, P2, P3, D1, D2_, D3], [100, 200, 250, 800, 900, 950])
    assert kinds(log.checked()) == ["plan_names_ride_not_held"]


def test_a_ride_pooled_to_a_driver_serving_no_plan_is_flagged() -> None:
    log = Log()
    log.add(D, "Driver.Registered", 0, name="d",
            vehicle={"product": "standard", "seats": 4, "accessible": False})  # fmt: skip
    log.add(D, "Driver.WentOnline", 1)
    request(log, R1, 0, 1)
    log.add(R1, "Ride.Pooled", 2, driver_id=D)
    assert "plan_malformed" in kinds(log.checked())


@pytest.mark.parametrize(
    "times", [[100.0, math.nan, 800.0, 900.0], [100.0, 90.0, 800.0, 900.0], ["a", 1, 2, 3]]
)
def test_times_that_are_not_finite_and_in_order_are_flagged(times: list[Any]) -> None:
    log = pooled_two()
    log.events.pop()
    log.versions[D] -= 1
    log.add(D, "Driver.PlanExtended", 12, ride_id=R2, plan=[P1, P2, D1, D2_],
            times=[t if isinstance(t, str) else T0 + t for t in times])  # fmt: skip
    assert kinds(log.checked()) == ["plan_without_times"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("sharing", {"seats": 1}),
        ("sharing", {"seats": "two", "max_wait_s": 300, "detour_factor": 1.5, "direct_s": 60}),
        ("sharing", {"seats": 1, "max_wait_s": math.nan, "detour_factor": 1.5, "direct_s": 60}),
        ("plan", [[R1, "X"], [R1, "D"]]),
        ("plan", "P,D"),
    ],
)
def test_a_damaged_field_is_flagged_not_a_crash(field: str, value: Any) -> None:
    log = pooled_two()
    target = next(
        e for e in log.events
        if (field == "sharing" and e.topic.endswith("Ride.Requested") and e.aggregate_id == R1)
        or (field == "plan" and e.topic.endswith("Driver.OfferReceived"))
    )  # fmt: skip
    target.data[field] = value
    assert "pooled_event_damaged" in kinds(log.checked())


def test_a_ride_pooled_without_its_driver_is_flagged_not_a_crash() -> None:
    log = pooled_two()
    next(e for e in log.events if e.topic.endswith("Ride.Pooled")).data.pop("driver_id")
    assert "pooled_event_damaged" in kinds(log.checked())
