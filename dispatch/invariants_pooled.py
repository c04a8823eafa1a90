"""The log checker's part for shared rides (docs/ARCHITECTURE.md, "Shared rides").

Every plan a driver recorded (``Driver.OfferReceived.plan``, ``Driver.PlanExtended``) is
walked with the times it was judged with and the riders' terms recorded at their requests:
- every ride in a plan, and every ride ``Ride.Pooled``, is a shared one
  (``pooled_single_ride``);
- a plan has a time for each stop (``plan_without_times``);
- no pickup after its rider's latest pickup, no time in the vehicle over its rider's bound,
  counted from the planned pickup or, for a rider aboard, the recorded one
  (``plan_breaks_bounds``);
- the riders aboard and those the plan picks up never need more seats than the vehicle
  has, at any stop (``plan_over_seats``), nor do the riders actually aboard
  (``seats_exceeded``: pickups and drop-offs as recorded).

What happened on the road is a service figure, not a violation: a rider picked up later
than their latest pickup (``waits_over_bound``) or longer in the vehicle than their bound
(``rides_over_bound``), traffic the estimate did not foresee.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dispatch.domain.driver import Driver
from dispatch.domain.pooling import PICKUP
from dispatch.domain.products import DEFAULT_VEHICLE
from dispatch.domain.ride import RIDE_ENDINGS, Ride
from dispatch.log import LogEvent

# Times in plans are recorded to a tenth of a second.
SLACK_S = 0.1
_REQUESTED, _POOLED = Ride.Created.TOPIC, Ride.Pooled.TOPIC
_STARTED, _COMPLETED = Ride.TripStarted.TOPIC, Ride.Completed.TOPIC
_OFFER, _EXTENDED = Driver.OfferReceived.TOPIC, Driver.PlanExtended.TOPIC
_VEHICLE = frozenset({Driver.Created.TOPIC, Driver.Arrived.TOPIC})
TOPICS = frozenset({_REQUESTED, _POOLED, _STARTED, _COMPLETED, _OFFER, _EXTENDED, *_VEHICLE,
                    *RIDE_ENDINGS})  # fmt: skip
Found = tuple[str, str, str, str]  # where, aggregate id, kind, detail


@dataclass(frozen=True, slots=True)
class _Terms:
    seats: int
    requested_at: float
    latest_pickup_at: float
    max_ride_s: float


@dataclass
class PooledChecks:
    terms: dict[str, _Terms] = field(default_factory=dict)  # live shared rides
    seats: dict[str, int] = field(default_factory=dict)  # driver -> its vehicle's seats
    # driver -> the shared rides aboard (ride -> picked up at); ride -> its driver
    aboard: dict[str, dict[str, float]] = field(default_factory=dict)
    carried_by: dict[str, str] = field(default_factory=dict)
    waits_over_bound: int = 0
    rides_over_bound: int = 0

    def check(self, e: LogEvent) -> list[Found]:
        topic = e.topic
        if topic == _REQUESTED:
            sharing = e.data.get("sharing")
            if sharing is not None:
                self.terms[e.aggregate_id] = _Terms(
                    int(sharing["seats"]), e.at, e.at + float(sharing["max_wait_s"]),
                    float(sharing["direct_s"]) * float(sharing["detour_factor"]),
                )  # fmt: skip
        elif topic in _VEHICLE:
            vehicle = e.data.get("vehicle") or DEFAULT_VEHICLE.to_data()
            self.seats[e.aggregate_id] = int(vehicle["seats"])
        elif topic in (_OFFER, _EXTENDED):
            if e.data.get("plan") is not None:
                return self._plan(e, e.aggregate_id, e.data["plan"], e.data.get("times"))
        elif topic == _POOLED and e.aggregate_id not in self.terms:
            return [
                (
                    e.where,
                    e.aggregate_id,
                    "pooled_single_ride",
                    f"ride pooled to driver {e.data['driver_id']} is not a shared ride",
                )
            ]
        elif topic == _STARTED and e.aggregate_id in self.terms:
            return self._picked_up(e)
        elif topic in RIDE_ENDINGS:
            self._ended(e)
        return []

    def _plan(self, e: LogEvent, driver: str, plan: list[Any], times: Any) -> list[Found]:
        single = [ride for ride, _ in plan if ride not in self.terms]
        if single:
            return [(e.where, driver, "pooled_single_ride",
                     f"the plan holds rides that are not shared: {', '.join(single)}")]  # fmt: skip
        if not isinstance(times, list) or len(times) != len(plan):
            return [(e.where, driver, "plan_without_times", "a plan needs a time for each stop")]
        aboard = self.aboard.get(driver, {})
        load = sum(self.terms[r].seats for r in aboard if r in self.terms)
        picked = dict(aboard)
        seats = self.seats.get(driver, DEFAULT_VEHICLE.seats)
        for (ride, kind), at in zip(plan, times, strict=True):
            terms = self.terms[ride]
            if kind == PICKUP:
                if at > terms.latest_pickup_at + SLACK_S:
                    return [
                        self._broken(
                            e,
                            driver,
                            ride,
                            f"picked up at {at:.1f}, after its "
                            f"latest pickup {terms.latest_pickup_at:.1f}",
                        )
                    ]
                picked[ride] = at
                load += terms.seats
                if load > seats:
                    return [
                        (
                            e.where,
                            driver,
                            "plan_over_seats",
                            f"{load} seats after picking up {ride}, the vehicle has {seats}",
                        )
                    ]
            else:
                since = picked.pop(ride, None)
                if since is not None and at - since > terms.max_ride_s + SLACK_S:
                    return [self._broken(e, driver, ride, f"{at - since:.1f} s in the vehicle, "
                                         f"its bound is {terms.max_ride_s:.1f} s")]  # fmt: skip
                load -= terms.seats
        return []

    @staticmethod
    def _broken(e: LogEvent, driver: str, ride: str, detail: str) -> Found:
        return (e.where, driver, "plan_breaks_bounds", f"ride {ride}: {detail}")

    def _picked_up(self, e: LogEvent) -> list[Found]:
        ride, driver = e.aggregate_id, str(e.data["driver_id"])
        terms = self.terms[ride]
        if e.at > terms.latest_pickup_at + SLACK_S:
            self.waits_over_bound += 1
        aboard = self.aboard.setdefault(driver, {})
        aboard[ride] = e.at
        self.carried_by[ride] = driver
        load = sum(self.terms[r].seats for r in aboard if r in self.terms)
        seats = self.seats.get(driver, DEFAULT_VEHICLE.seats)
        if load > seats:
            return [
                (
                    e.where,
                    driver,
                    "seats_exceeded",
                    f"{load} seats aboard after picking up {ride}, the vehicle has {seats}",
                )
            ]
        return []

    def _ended(self, e: LogEvent) -> None:
        ride = e.aggregate_id
        terms = self.terms.pop(ride, None)
        driver = self.carried_by.pop(ride, None)
        if terms is None or driver is None:
            return
        since = self.aboard.get(driver, {}).pop(ride, None)
        if (
            e.topic == _COMPLETED
            and since is not None
            and e.at - since > terms.max_ride_s + SLACK_S
        ):
            self.rides_over_bound += 1
