"""The log checker's part for shared rides (docs/ARCHITECTURE.md, "Shared rides").

It follows each driver's plan as the aggregates do (the offer's plan once assigned, each
extension, each pickup and each ride's end) and the shared rides each driver holds (offered
and accepted, or pooled to it), and checks every plan a driver records
(``Driver.OfferReceived.plan``, ``Driver.PlanExtended``):
- its shape: an offer's plan is the offered ride's pickup and then drop-off; an extension
  is the plan followed so far with its own ride's pickup and then drop-off put in, every
  other stop in its order and a pickup next still first; each ride's stops once, a pickup
  before its drop-off, none for a rider aboard, every rider aboard or picked up dropped off
  (``plan_malformed``);
- its rides: every one shared (``pooled_single_ride``), requested, live and held by the
  driver (``plan_names_ride_not_held``); a ride pooled to a driver is a shared one
  (``pooled_single_ride``);
- its times: one per stop, finite and in order (``plan_without_times``); no pickup after
  its rider's latest pickup, no time in the vehicle over its rider's bound, counted from
  the planned pickup or, for a rider aboard, the recorded one (``plan_breaks_bounds``);
- its seats: the riders aboard and those it picks up never need more than the vehicle has
  at any stop (``plan_over_seats``); nor do the riders actually aboard, from the recorded
  pickups and drop-offs (``seats_exceeded``). A driver whose vehicle is not in the log is
  not checked for seats.
A field these checks need that is missing or of the wrong kind is ``pooled_event_damaged``
(the event is skipped, not a crash).

What happened on the road is a service figure, not a violation: a rider picked up later
than their latest pickup (``waits_over_bound``) or longer in the vehicle than their bound
(``rides_over_bound``), traffic the estimate did not foresee.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any

from dispatch.domain.driver import RELEASE_REASONS, Driver, PlanState, fold_plan
from dispatch.domain.pooling import SLACK_S as RULE_SLACK_S
from dispatch.domain.pooling import Sharing, Stop, extension_problem
from dispatch.domain.ride import RIDE_ENDINGS, Ride
from dispatch.log import LogEvent

# Times in plans are recorded to a tenth of a second: a difference of two may be off by
# that much, on top of the rule's own slack.
SLACK_S = 0.1 + RULE_SLACK_S + 1e-6
_REQUESTED, _POOLED = Ride.Created.TOPIC, Ride.Pooled.TOPIC
_ACCEPTED = Ride.Accepted.TOPIC
_STARTED, _COMPLETED = Ride.TripStarted.TOPIC, Ride.Completed.TOPIC
_BACK = frozenset({Ride.CancelledByDriver.TOPIC})  # back to dispatch: no driver holds it
_OFFER, _EXTENDED = Driver.OfferReceived.TOPIC, Driver.PlanExtended.TOPIC
_ASSIGNED, _CLOSED = Driver.Assigned.TOPIC, Driver.OfferClosed.TOPIC
_PICKED = frozenset({Driver.TripStarted.TOPIC, Driver.PoolPickedUp.TOPIC})
_ENDED = frozenset({Driver.PoolRideEnded.TOPIC, Driver.AboardEmptied.TOPIC, Driver.Released.TOPIC})
_VEHICLE = frozenset({Driver.Created.TOPIC, Driver.Arrived.TOPIC})
TOPICS = frozenset(
    {_REQUESTED, _POOLED, _ACCEPTED, _STARTED, _COMPLETED, _OFFER, _EXTENDED,
     _ASSIGNED, _CLOSED, *_BACK, *_PICKED, *_ENDED, *_VEHICLE, *RIDE_ENDINGS}
)  # fmt: skip
Found = tuple[str, str, str, str]  # where, aggregate id, kind, detail
StopRow = tuple[str, str]  # ride id, "P" or "D"


class _Damaged(Exception):
    pass


@dataclass(frozen=True, slots=True)
class _Terms:
    seats: int
    requested_at: float
    latest_pickup_at: float
    max_ride_s: float


@dataclass
class _Vehicle:
    """A driver as the checks follow it: its shared plan (folded as the aggregate folds
    it) and the shared rides aboard, with when each was picked up (recorded)."""

    state: PlanState = field(default_factory=PlanState)
    aboard: dict[str, float] = field(default_factory=dict)


@dataclass
class PooledChecks:
    terms: dict[str, _Terms] = field(default_factory=dict)  # live shared rides
    singles: set[str] = field(default_factory=set)  # live single rides
    seats: dict[str, int] = field(default_factory=dict)  # driver -> its vehicle's seats
    vehicles: dict[str, _Vehicle] = field(default_factory=dict)
    holder: dict[str, str] = field(default_factory=dict)  # shared ride -> driver holding it
    waits_over_bound: int = 0
    rides_over_bound: int = 0

    def check(self, e: LogEvent) -> list[Found]:
        try:
            return self._check(e)
        except (_Damaged, KeyError, TypeError, ValueError, AttributeError) as error:
            detail = f"{e.kind}: {error}" if str(error) else f"{e.kind} does not read"
            return [(e.where, e.aggregate_id, "pooled_event_damaged", detail)]

    def _check(self, e: LogEvent) -> list[Found]:
        topic, data = e.topic, e.data
        if topic == _REQUESTED:
            if data.get("sharing") is None:
                self.singles.add(e.aggregate_id)
            else:
                terms = Sharing.from_data(data["sharing"])
                self.terms[e.aggregate_id] = _Terms(
                    terms.seats, e.at, e.at + terms.max_wait_s,
                    terms.direct_s * terms.detour_factor,
                )  # fmt: skip
        elif topic in _VEHICLE:
            vehicle = data.get("vehicle")
            if vehicle is not None:
                self.seats[e.aggregate_id] = _count(vehicle["seats"])
        elif topic in (_POOLED, _ACCEPTED, _STARTED, *_BACK, *RIDE_ENDINGS):
            return self._ride(e)
        elif topic in (_OFFER, _EXTENDED, _ASSIGNED, _CLOSED, *_PICKED, *_ENDED):
            return self._driver(e)
        return []

    # -- rides ------------------------------------------------------------------------
    def _ride(self, e: LogEvent) -> list[Found]:
        ride, topic = e.aggregate_id, e.topic
        terms = self.terms.get(ride)
        if topic in RIDE_ENDINGS or topic in _BACK:
            self._ride_left(e, terms)
            return []
        if terms is None:
            if topic == _POOLED:
                return [
                    (
                        e.where,
                        ride,
                        "pooled_single_ride",
                        f"ride pooled to driver {_id(e.data, 'driver_id')} is not a shared ride",
                    )
                ]
            return []
        driver = _id(e.data, "driver_id")
        if topic == _POOLED and not self._serving(driver):
            self.holder[ride] = driver
            return [(e.where, ride, "plan_malformed",
                     f"ride pooled to driver {driver}, which serves no plan")]  # fmt: skip
        if topic in (_POOLED, _ACCEPTED):
            self.holder[ride] = driver
        elif topic == _STARTED:
            return self._picked_up(e, ride, driver, terms)
        return []

    def _ride_left(self, e: LogEvent, terms: _Terms | None) -> None:
        """The ride ended, or went back to dispatch: no driver holds it now."""
        ride = e.aggregate_id
        driver = self.holder.pop(ride, None)
        since = self.vehicles[driver].aboard.pop(ride, None) if driver in self.vehicles else None
        if e.topic in RIDE_ENDINGS:
            self.terms.pop(ride, None)
            self.singles.discard(ride)
        late = since is not None and terms is not None and e.at - since > terms.max_ride_s + SLACK_S
        if e.topic == _COMPLETED and late:
            self.rides_over_bound += 1

    def _picked_up(self, e: LogEvent, ride: str, driver: str, terms: _Terms) -> list[Found]:
        if e.at > terms.latest_pickup_at + SLACK_S:
            self.waits_over_bound += 1
        aboard = self.vehicles.setdefault(driver, _Vehicle()).aboard
        aboard[ride] = e.at
        load = sum(self.terms[r].seats for r in aboard if r in self.terms)
        seats = self.seats.get(driver)
        if seats is not None and load > seats:
            return [
                (
                    e.where,
                    driver,
                    "seats_exceeded",
                    f"{load} seats aboard after picking up {ride}, the vehicle has {seats}",
                )
            ]
        return []

    # -- drivers ----------------------------------------------------------------------
    def _driver(self, e: LogEvent) -> list[Found]:
        """Fold the driver's plan as the aggregate does (``fold_plan``), judging each plan
        it records against the plan it followed until then."""
        driver, topic, data = e.aggregate_id, e.topic, e.data
        vehicle = self.vehicles.setdefault(driver, _Vehicle())
        state = vehicle.state
        ride = _id(data, "ride_id")
        if topic == _OFFER:
            if data.get("plan") is None:
                fold_plan(state, topic, ride)
                return []
            plan = _plan(data["plan"])
            serving = state.pooled
            fold_plan(state, topic, ride, [list(s) for s in plan])
            if plan != [(ride, "P"), (ride, "D")] or serving:
                return [(e.where, driver, "plan_malformed", "an offer's plan is its ride's "
                         "pickup and then drop-off, to a driver serving no plan")]  # fmt: skip
            return self._judge(e, driver, vehicle, plan, data.get("times"), offered=ride)
        if topic == _EXTENDED:
            plan = _plan(data["plan"])
            if not state.pooled:
                return [(e.where, driver, "plan_malformed",
                         "a plan is extended only for a driver serving one")]  # fmt: skip
            before = tuple(Stop(r, k == "P") for r, k in state.plan)
            after = tuple(Stop(r, k == "P") for r, k in plan)
            fold_plan(state, topic, ride, [list(s) for s in plan])
            problem = extension_problem(before, after, ride)
            if problem is not None:
                return [(e.where, driver, "plan_malformed", problem)]
            return self._judge(e, driver, vehicle, plan, data.get("times"))
        pooled_end = topic in _ENDED and topic != Driver.Released.TOPIC
        if pooled_end and data.get("reason") not in RELEASE_REASONS:
            raise _Damaged(f"reason {data.get('reason')!r} is not a release reason")
        fold_plan(state, topic, ride)
        return []

    def _serving(self, driver: str) -> bool:
        """Whether the driver serves a plan (from its offer's assignment to its last ride's
        end, as the aggregate has it)."""
        vehicle = self.vehicles.get(driver)
        return vehicle is not None and vehicle.state.pooled

    def _judge(
        self,
        e: LogEvent,
        driver: str,
        vehicle: _Vehicle,
        plan: list[StopRow],
        times: Any,
        offered: str | None = None,
    ) -> list[Found]:
        not_shared = sorted({r for r, _ in plan if r in self.singles})
        foreign = [
            r for r, _ in plan
            if r not in self.singles and r != offered
            and (r not in self.terms or self.holder.get(r) != driver)
        ]  # fmt: skip
        if offered is not None and offered not in self.terms and offered not in self.singles:
            foreign.append(offered)
        found: list[Found] = []
        if not_shared:
            found.append(
                (
                    e.where,
                    driver,
                    "pooled_single_ride",
                    f"the plan holds rides that are not shared: {', '.join(not_shared)}",
                )
            )
        if foreign:
            names = ", ".join(sorted(set(foreign)))
            found.append(
                (
                    e.where,
                    driver,
                    "plan_names_ride_not_held",
                    f"the plan holds rides the driver was not given, or that ended: {names}",
                )
            )
        if found:
            return found
        shape = _shape_problem(plan, vehicle.aboard)
        if shape is not None:
            return [(e.where, driver, "plan_malformed", shape)]
        if not _times_ok(times, len(plan)):
            return [(e.where, driver, "plan_without_times",
                     "a plan needs a finite time for each stop, in order")]  # fmt: skip
        return self._walk(e, driver, vehicle, plan, times)

    def _walk(
        self, e: LogEvent, driver: str, vehicle: _Vehicle, plan: list[StopRow], times: list[Any]
    ) -> list[Found]:
        picked = dict(vehicle.aboard)
        load = sum(self.terms[r].seats for r in picked if r in self.terms)
        seats = self.seats.get(driver)
        for (ride, kind), at in zip(plan, times, strict=True):
            terms = self.terms[ride]
            if kind == "P":
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
                if seats is not None and load > seats:
                    return [
                        (
                            e.where,
                            driver,
                            "plan_over_seats",
                            f"{load} seats after picking up {ride}, the vehicle has {seats}",
                        )
                    ]
            else:
                since = picked.pop(ride)
                if at - since > terms.max_ride_s + SLACK_S:
                    return [self._broken(e, driver, ride, f"{at - since:.1f} s in the vehicle, "
                                         f"its bound is {terms.max_ride_s:.1f} s")]  # fmt: skip
                load -= terms.seats
        return []

    @staticmethod
    def _broken(e: LogEvent, driver: str, ride: str, detail: str) -> Found:
        return (e.where, driver, "plan_breaks_bounds", f"ride {ride}: {detail}")


def _shape_problem(plan: list[StopRow], aboard: dict[str, float]) -> str | None:
    """Why the plan's stops are not each ride's once, pickup before drop-off, none for a
    rider aboard but their drop-off, every rider aboard or picked up dropped off; or None."""
    seen: set[StopRow] = set()
    riding = set(aboard)
    for ride, kind in plan:
        if (ride, kind) in seen:
            return f"ride {ride}'s {'pickup' if kind == 'P' else 'drop-off'} is in the plan twice"
        seen.add((ride, kind))
        if kind == "P":
            if ride in aboard:
                return f"ride {ride} is aboard: the plan picks it up again"
            riding.add(ride)
        elif ride not in riding:
            return f"ride {ride} is dropped off before it is picked up"
        else:
            riding.discard(ride)
    if riding:
        return f"rides never dropped off: {', '.join(sorted(riding))}"
    return None


def _plan(value: Any) -> list[StopRow]:
    if not isinstance(value, list):
        raise _Damaged("plan is not a list of stops")
    rows: list[StopRow] = []
    for stop in value:
        if not (isinstance(stop, list | tuple) and len(stop) == 2 and isinstance(stop[0], str)
                and stop[1] in ("P", "D")):  # fmt: skip
            raise _Damaged(f"a stop {stop!r} is not [ride id, 'P' or 'D']")
        rows.append((stop[0], stop[1]))
    return rows


def _times_ok(times: Any, n: int) -> bool:
    if not isinstance(times, list) or len(times) != n:
        return False
    if not all(isinstance(t, int | float) and not isinstance(t, bool) for t in times):
        return False
    return all(math.isfinite(t) for t in times) and all(
        a <= b for a, b in itertools.pairwise(times)
    )


def _id(data: dict[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str):
        raise _Damaged(f"{name} is missing")
    return value


def _count(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise _Damaged(f"seats {value!r} is not a count")
    return value
