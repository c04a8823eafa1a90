"""The Driver aggregate: offline <-> available -> offered -> en_route -> on_trip -> available.

A driver holds at most one ride at a time (offered, en route or on trip): that is the
invariant that makes double assignment impossible. Going offline is refused while a ride
is held, unless the driver asks to go offline after the current trip. A driver serving
shared rides (``pooled``, issue #21) holds the rides of its plan instead, served in its
order, a pickup next committed; that a plan never seats more than the vehicle has nor
breaks a rider's bounds is judged by whoever proposes it (``dispatch.domain.pooling``,
``walk``), which has the riders' places and terms (docs/ARCHITECTURE.md, "Shared rides").
``ride_id`` is then the ride of the plan's next stop.

``DRIVER_TRANSITIONS`` and ``next_availability`` (at the end) are the one copy of these
rules: the aggregate folds its status with them, and so do the matcher, the log checker
and every view that shows a driver's status or availability.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar, Literal, Protocol, get_args
from uuid import UUID

from eventsourcing.domain import Aggregate

from dispatch.domain.errors import DriverMoved, Erased, Forbidden, IllegalTransition
from dispatch.domain.operators import AUDIT_FIELDS
from dispatch.domain.pooling import (
    DROPOFF,
    PICKUP,
    Plan,
    Stop,
    StopData,
    extension_problem,
    plan_data,
    plan_of,
    times_problem,
)
from dispatch.domain.products import DEFAULT_VEHICLE, Vehicle
from dispatch.domain.rider import Operator, upcast_erased


class DriverStatus(StrEnum):
    OFFLINE = "offline"
    AVAILABLE = "available"
    OFFERED = "offered"
    EN_ROUTE = "en_route"
    ON_TRIP = "on_trip"
    # Its availability is now another shard's (a hand-off: docs/ARCHITECTURE.md, "Driver
    # hand-off"); this shard keeps where it went until the driver comes back.
    HANDED_OFF = "handed_off"

    # Hash as the string it equals (Enum hashes by member name, in Python): a status then
    # works as a dict key or set member at the speed of a str, and equal values hash equal.
    __hash__ = str.__hash__


# How an offer ends without an assignment (``OfferClosed``'s outcome).
OfferOutcome = Literal["declined", "expired", "withdrawn"]
OFFER_OUTCOMES: tuple[OfferOutcome, ...] = get_args(OfferOutcome)
# Why a driver's ride ended (``Released``'s reason).
# ``withdrawn``: a ride of another shard let the driver go after its owner had assigned it
# (the ride's offer ran out on its clock, or it was declined, before the confirmation came).
ReleaseReason = Literal[
    "completed", "cancelled_by_rider", "cancelled_by_driver", "withdrawn", "cancelled_by_operator"
]
RELEASE_REASONS: tuple[ReleaseReason, ...] = get_args(ReleaseReason)


class Driver(Aggregate):
    TOPIC = "dispatch.Driver"
    # Defaults for a driver rebuilt from a snapshot taken before hand-offs (a snapshot
    # restores the attributes it has, without running __init__).
    epoch = 0
    handed_to: int | None = None
    erased = False  # for a driver rebuilt from a snapshot taken before erasure existed
    # The geofenced places the driver is inside, as its pings said (docs/MARKETPLACE.md,
    # "Places: geofences and queues"); a snapshot taken before places has none. Kept as a
    # list (what a snapshot's JSON gives back) and only set on a driver that entered one.
    places: list[str] | tuple[()] = ()
    # A driver serving shared rides (docs/ARCHITECTURE.md, "Shared rides"): ``pooled``
    # from the assignment of its first shared ride until its last ride ends; its plan of
    # stops ([ride id, "P" or "D"]), the rides aboard, and the plan an open offer of a
    # shared ride proposes. A snapshot taken before shared rides has none of them.
    pooled = False
    plan: list[StopData] | tuple[()] = ()
    aboard: list[str] | tuple[()] = ()
    offer_plan: list[StopData] | None = None

    class Event(Aggregate.Event):
        TOPIC: ClassVar[str]

        def apply(self, driver: Driver) -> None:
            state = (driver.status, driver.offline_after_trip)
            driver.status, driver.offline_after_trip = next_availability(state, self.TOPIC)
            if driver.status == DriverStatus.OFFLINE and driver.places:
                driver.places = []  # offline: out of every place (found again by pings)

    class Created(Aggregate.Created):
        """Stored as ``Registered`` (see TOPIC)."""

        TOPIC = "dispatch.Driver.Registered"
        class_version = 2
        name: str
        vehicle: dict[str, Any]  # ``Vehicle.to_data()``

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            """Version 1 had no vehicle: a driver registered then drives the default one."""
            state["vehicle"] = DEFAULT_VEHICLE.to_data()

    class WentOnline(Event):
        TOPIC = "dispatch.Driver.WentOnline"
        class_version = 1

    class WentOffline(Event):
        TOPIC = "dispatch.Driver.WentOffline"
        class_version = 1

    class OfflineAfterTripRequested(Event):
        TOPIC = "dispatch.Driver.OfflineAfterTripRequested"
        class_version = 1

    class OfferReceived(Event):
        TOPIC = "dispatch.Driver.OfferReceived"
        class_version = 1
        ride_id: str
        expires_at: datetime
        # The reservation of a ride in another shard ("" for a ride of this shard; events
        # from before cross-shard offers have none and read as "").
        resv: str = ""
        # A shared ride's offer: the plan the driver would serve (None: a single ride), and
        # each stop's estimated time (epoch s) as the plan was judged.
        plan: list[StopData] | None = None
        times: list[float] | None = None

        def apply(self, driver: Driver) -> None:
            super().apply(driver)
            driver.ride_id = UUID(self.ride_id)
            driver.resv = self.resv
            driver.offer_expires_at = self.expires_at
            fold_plan(driver, self.TOPIC, self.ride_id, self.plan)

    class OfferClosed(Event):
        """The offer ended without an assignment: declined, expired or withdrawn."""

        TOPIC = "dispatch.Driver.OfferClosed"
        class_version = 1
        ride_id: str
        outcome: OfferOutcome

        def apply(self, driver: Driver) -> None:
            super().apply(driver)
            driver.ride_id = None
            fold_plan(driver, self.TOPIC, self.ride_id)

    class Assigned(Event):
        """The offered ride is the driver's; a shared ride's offer starts its plan."""

        TOPIC = "dispatch.Driver.Assigned"
        class_version = 1
        ride_id: str

        def apply(self, driver: Driver) -> None:
            super().apply(driver)
            if fold_plan(driver, self.TOPIC, self.ride_id):
                _next_ride(driver)

    class TripStarted(Event):
        """A rider is aboard: the driver's only one, or a shared plan's first aboard."""

        TOPIC = "dispatch.Driver.TripStarted"
        class_version = 1
        ride_id: str

        def apply(self, driver: Driver) -> None:
            super().apply(driver)
            if fold_plan(driver, self.TOPIC, self.ride_id):
                _next_ride(driver)

    class PlanExtended(Event):
        """A shared ride was put into the plan of the driver serving shared rides (no
        offer: it agreed to pooling with its first); ``plan``, the plan from now on."""

        TOPIC = "dispatch.Driver.PlanExtended"
        class_version = 1
        ride_id: str
        plan: list[StopData]
        times: list[float]  # each stop's estimated time (epoch s), as the plan was judged

        def apply(self, driver: Driver) -> None:
            super().apply(driver)
            fold_plan(driver, self.TOPIC, self.ride_id, self.plan)
            _next_ride(driver)

    class PoolPickedUp(Event):
        """Another rider of the shared plan is aboard (someone already was)."""

        TOPIC = "dispatch.Driver.PoolPickedUp"
        class_version = 1
        ride_id: str

        def apply(self, driver: Driver) -> None:
            super().apply(driver)
            fold_plan(driver, self.TOPIC, self.ride_id)
            _next_ride(driver)

    class PoolRideEnded(Event):
        """One of the shared plan's rides ended (dropped off, or cancelled), others are
        left, and whoever was aboard still is (or was nobody)."""

        TOPIC = "dispatch.Driver.PoolRideEnded"
        class_version = 1
        ride_id: str
        reason: ReleaseReason

        def apply(self, driver: Driver) -> None:
            super().apply(driver)
            fold_plan(driver, self.TOPIC, self.ride_id)
            if self.reason == "completed":
                driver.trips += 1
            _next_ride(driver)

    class AboardEmptied(PoolRideEnded):
        """The last rider aboard was dropped off (or left) and the plan has pickups ahead:
        on trip -> en route."""

        TOPIC = "dispatch.Driver.AboardEmptied"
        class_version = 1

    class Released(Event):
        """The driver's ride ended (completed or cancelled); the driver is free again."""

        TOPIC = "dispatch.Driver.Released"
        class_version = 1
        ride_id: str
        reason: ReleaseReason

        def apply(self, driver: Driver) -> None:
            super().apply(driver)
            driver.ride_id = None
            if self.reason == "completed":
                driver.trips += 1
            fold_plan(driver, self.TOPIC, self.ride_id)

    class HandedOff(Event):
        """A free driver's availability went to shard ``to_shard`` (its region's), which
        starts tenure ``epoch`` (this shard's ended)."""

        TOPIC = "dispatch.Driver.HandedOff"
        class_version = 1
        to_shard: int
        epoch: int

        def apply(self, driver: Driver) -> None:
            super().apply(driver)
            driver.handed_to = self.to_shard
            if driver.places:
                driver.places = []  # its places are the next shard's to find from its pings

    class Arrived(Aggregate.Created):
        """A driver handed off from ``from_shard`` to this shard, which never had it before:
        its first event here (tenure ``epoch``), available, with its live ``commands``."""

        TOPIC = "dispatch.Driver.Arrived"
        class_version = 3
        name: str
        epoch: int
        from_shard: int
        trips: int
        commands: dict[str, list[float]]
        vehicle: dict[str, Any]  # ``Vehicle.to_data()``

        @staticmethod
        def upcast_v1_v2(state: dict[str, object]) -> None:
            """Version 1 carried no command records."""
            state["commands"] = {}

        @staticmethod
        def upcast_v2_v3(state: dict[str, object]) -> None:
            """Version 2 carried no vehicle: the default one (as registration's upcast)."""
            state["vehicle"] = DEFAULT_VEHICLE.to_data()

    class CommandNoted(Aggregate.Event):
        """One of the driver's commands was handled here and recorded (the record travels
        with the driver while it is live: ``window_s``, the record's window)."""

        TOPIC = "dispatch.Driver.CommandNoted"
        class_version = 1
        command_id: str
        window_s: float

        def apply(self, driver: Driver) -> None:
            at = self.timestamp.timestamp()
            commands = {**live_commands(driver, at), self.command_id: [at, self.window_s]}
            driver.commands = commands

    class Returned(Event):
        """A driver this shard handed off before is handed back to it (tenure ``epoch``),
        with the trips it has completed in all (some at other shards)."""

        TOPIC = "dispatch.Driver.Returned"
        class_version = 2
        epoch: int
        from_shard: int
        trips: int
        commands: dict[str, list[float]]

        @staticmethod
        def upcast_v1_v2(state: dict[str, object]) -> None:
            """Version 1 carried no command records."""
            state["commands"] = {}

        def apply(self, driver: Driver) -> None:
            super().apply(driver)
            driver.epoch, driver.handed_to, driver.trips = self.epoch, None, self.trips
            driver.commands = dict(self.commands)

    class EnteredPlace(Aggregate.Event):
        """The driver's pings put it inside the geofenced ``place`` (debounced: the
        matcher's ``dispatch.matching.places``). Not an availability event."""

        TOPIC = "dispatch.Driver.EnteredPlace"
        class_version = 1
        place: str  # sealed under the driver's key (docs/PRIVACY.md); None once erased

        def apply(self, driver: Driver) -> None:
            if self.place is not None:  # None: the driver was erased (its Erased follows)
                driver.places = [*driver.places, self.place]

    class LeftPlace(Aggregate.Event):
        """The driver's pings put it outside ``place`` (past the place's exit margin)."""

        TOPIC = "dispatch.Driver.LeftPlace"
        class_version = 1
        place: str

        def apply(self, driver: Driver) -> None:
            driver.places = [p for p in driver.places if p != self.place]

    class Hinted(Aggregate.Event):
        """The idle driver was told where demand outruns supply (a repositioning hint,
        ``dispatch.matching.hints``): the H3 ``cell`` and its centre, its waiting rides and
        available drivers then, and the driver's ETA there. Advice: it changes no state."""

        TOPIC = "dispatch.Driver.Hinted"
        class_version = 1
        cell: str  # these three sealed under the driver's key (docs/PRIVACY.md); None once
        lat: float  # erased
        lng: float
        demand: int
        supply: int
        eta_s: float

        def apply(self, driver: Driver) -> None:
            pass

    class Erased(Aggregate.Event):
        """The driver's personal data was erased: their key is deleted in the same batch
        (docs/PRIVACY.md), and every later command of theirs is refused. Not an
        availability event: the driver stays offline."""

        TOPIC = "dispatch.Driver.Erased"
        class_version = 2
        by: str  # "self" (``rider.ERASED_BY``); "operator" in ``ErasedByOperator``

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            upcast_erased(state)

        def apply(self, driver: Driver) -> None:
            driver.erased, driver.name = True, "erased"
            if driver.places:
                driver.places = []

    class ErasedByOperator(Erased):
        """An admin erased the driver: the event names who (``AUDIT_FIELDS``)."""

        TOPIC = "dispatch.Driver.ErasedByOperator"
        class_version = 1
        operator_id: str
        operator_name: str
        operator_role: str

    def __init__(
        self,
        name: str,
        epoch: int = 0,
        from_shard: int | None = None,
        trips: int = 0,
        commands: dict[str, list[float]] | None = None,
        vehicle: dict[str, Any] | None = None,
    ) -> None:
        """``epoch`` and the rest: a driver that ``Arrived`` from another shard."""
        self.name = name
        self.vehicle: dict[str, Any] = dict(vehicle or DEFAULT_VEHICLE.to_data())
        # The driver's commands recorded at this shard or carried to it, while their records
        # may be live: command id -> [time (POSIX s), the record's window (s)].
        self.commands: dict[str, list[float]] = dict(commands or {})
        self.status = DriverStatus.OFFLINE if from_shard is None else DriverStatus.AVAILABLE
        self.epoch = epoch  # the driver's tenure here: 0 from registration, +1 a hand-off
        self.handed_to: int | None = None  # where a HANDED_OFF driver went
        self.ride_id: UUID | None = None
        self.resv = ""  # the reservation of a ride in another shard it holds
        self.offer_expires_at: datetime | None = None
        self.offline_after_trip = False
        self.trips = trips

    @classmethod
    def register(
        cls, driver_id: UUID, name: str, at: datetime, vehicle: Vehicle = DEFAULT_VEHICLE
    ) -> Driver:
        """A new driver with ``vehicle`` (checked against the catalog by the caller)."""
        return cls._create(
            cls.Created, id=driver_id, timestamp=at, name=name, vehicle=vehicle.to_data()
        )

    @classmethod
    def arrive(
        cls,
        driver_id: UUID,
        name: str,
        epoch: int,
        from_shard: int,
        trips: int,
        commands: dict[str, list[float]],
        at: datetime,
        vehicle: Vehicle = DEFAULT_VEHICLE,
    ) -> Driver:
        """A driver handed off to this shard, which has never had it."""
        return cls._create(cls.Arrived, id=driver_id, timestamp=at, name=name, epoch=epoch,
                           from_shard=from_shard, trips=trips, commands=commands,
                           vehicle=vehicle.to_data())  # fmt: skip

    def note_command(self, command_id: str, window_s: float, at: datetime) -> None:
        """Keep the id of a command of this driver handled here (its record is written in
        the same batch), so that a hand-off can carry the record."""
        self.trigger_event(self.CommandNoted, timestamp=at, command_id=command_id,
                           window_s=window_s)  # fmt: skip

    def hand_off(self, to_shard: int, at: datetime) -> int:
        """Give a free driver to ``to_shard``; returns the tenure it starts there."""
        if self.offline_after_trip:
            raise IllegalTransition(f"driver {self.id} is going offline")
        self._trigger(self.HandedOff, at, to_shard=to_shard, epoch=self.epoch + 1)
        return self.epoch + 1

    def come_back(
        self,
        epoch: int,
        from_shard: int,
        trips: int,
        commands: dict[str, list[float]],
        at: datetime,
    ) -> None:
        """A driver handed off from here before is handed back (a later tenure)."""
        if epoch <= self.epoch:
            raise IllegalTransition(f"driver {self.id}: tenure {epoch} is not after {self.epoch}")
        self._trigger(self.Returned, at, epoch=epoch, from_shard=from_shard, trips=trips,
                      commands=commands)  # fmt: skip

    def locate(self, places: frozenset[str], at: datetime) -> None:
        """The driver is now inside exactly ``places``: a ``LeftPlace`` for each place it is
        no longer in, then an ``EnteredPlace`` for each new one (sorted); nothing when they
        are the ones it is in (a repeated decision records nothing)."""
        self.check_here()
        current = set(self.places)
        for place in sorted(current - places):
            self.trigger_event(self.LeftPlace, timestamp=at, place=place)
        for place in sorted(places - current):
            self.trigger_event(self.EnteredPlace, timestamp=at, place=place)

    def hint(self, cell: str, lat: float, lng: float, demand: int, supply: int, eta_s: float,
             at: datetime) -> None:  # fmt: skip
        """Record a repositioning hint for an available driver served here (refused
        otherwise: the hint no longer applies)."""
        self.check_here()
        if self.status != DriverStatus.AVAILABLE:
            raise IllegalTransition(f"driver {self.id} is {self.status}, not available")
        self.trigger_event(self.Hinted, timestamp=at, cell=cell, lat=lat, lng=lng,
                           demand=demand, supply=supply, eta_s=eta_s)  # fmt: skip

    def check_here(self) -> None:
        """Refuse a driver's command at a shard that handed the driver off, and every
        command of an erased driver."""
        if self.erased:
            raise Erased(f"driver {self.id} is erased")
        if self.status == DriverStatus.HANDED_OFF:
            raise DriverMoved(self.id, self.handed_to)

    def erase(self, operator: Operator | None, at: datetime) -> bool:
        """Erase the driver (once: False when they already are). Only an offline driver
        served here: one that holds an offer or a ride, or is available, goes offline
        first; one served by another shard comes back first."""
        if self.erased:
            return False
        if self.status == DriverStatus.HANDED_OFF:
            # The serving shard keeps the driver's status (offline there or not); home
            # erases only a driver it serves (docs/PRIVACY.md, "What remains").
            raise IllegalTransition(
                f"driver {self.id} is served by shard {self.handed_to} (handed off to "
                "another market), which home cannot erase from yet: the driver comes back "
                "when free and pinging in their home market; nothing erased"
            )
        if self.status != DriverStatus.OFFLINE:
            raise IllegalTransition(f"driver {self.id} is {self.status}: go offline first")
        if operator is None:
            self.trigger_event(self.Erased, timestamp=at, by="self")
        else:
            fields = dict(zip(AUDIT_FIELDS, operator, strict=True))
            self.trigger_event(self.ErasedByOperator, timestamp=at, by="operator", **fields)
        return True

    def go_online(self, at: datetime) -> None:
        if self.status != DriverStatus.OFFLINE:
            raise IllegalTransition(f"driver {self.id} is already online ({self.status})")
        self._trigger(self.WentOnline, at)

    def go_offline(self, after_trip: bool, at: datetime) -> None:
        if self.status == DriverStatus.OFFLINE:
            raise IllegalTransition(f"driver {self.id} is already offline")
        if self.status == DriverStatus.AVAILABLE:
            self._trigger(self.WentOffline, at)
        elif self.status == DriverStatus.OFFERED:
            raise IllegalTransition(
                f"driver {self.id} has an open offer: accept or decline it before going offline"
            )
        elif not after_trip:
            raise IllegalTransition(
                f"driver {self.id} is {self.status}: finish the ride or ask to go offline after it"
            )
        elif not self.offline_after_trip:
            self._trigger(self.OfflineAfterTripRequested, at)

    def receive_offer(
        self,
        ride_id: UUID,
        expires_at: datetime,
        at: datetime,
        resv: str = "",
        plan: Plan | None = None,
        times: list[float] | None = None,
    ) -> None:
        """An offer of ``ride_id``; ``plan``: a shared ride's, the plan the driver would
        serve (its pickup and then its drop-off; shared rides are not offered across
        shards), with each stop's estimated ``times``."""
        if self.status != DriverStatus.AVAILABLE:
            raise IllegalTransition(f"driver {self.id} is {self.status}, not available")
        extra: dict[str, Any] = {"resv": resv} if resv else {}
        if plan is not None:
            plan = _keyed(plan)
            problem = extension_problem((), plan, str(ride_id)) or times_problem(plan, times or [])
            if resv or problem is not None:
                raise IllegalTransition(problem or "a shared ride is not offered across shards")
            extra["plan"], extra["times"] = plan_data(plan), _rounded(times or [])
        self._trigger(self.OfferReceived, at, ride_id=str(ride_id), expires_at=expires_at, **extra)

    def holds(self, ride_id: UUID) -> bool:
        """Whether the ride is the driver's (offered, assigned or aboard)."""
        if self.pooled:
            key = str(ride_id)
            return key in self.aboard or any(r == key for r, _ in self.plan)
        return self.ride_id == ride_id

    def check_holds(self, ride_id: UUID, status: DriverStatus) -> None:
        if not self.holds(ride_id):
            raise Forbidden(f"ride {ride_id} is not held by driver {self.id}")
        if self.pooled and status in (DriverStatus.EN_ROUTE, DriverStatus.ON_TRIP):
            if self.status not in (DriverStatus.EN_ROUTE, DriverStatus.ON_TRIP):
                raise IllegalTransition(f"driver {self.id} is {self.status}, expected {status}")
            return  # a shared plan's rides are picked up and dropped off in either status
        if self.status != status:
            raise IllegalTransition(f"driver {self.id} is {self.status}, expected {status}")

    def extend_plan(self, ride_id: UUID, plan: Plan, times: list[float], at: datetime) -> None:
        """Put a shared ride into the plan of the driver serving shared rides: ``plan`` is
        the current one with the ride's pickup and drop-off put in (the caller has judged
        it by the pooled plans' rule, with the riders' positions and bounds)."""
        if not self.pooled:
            raise IllegalTransition(f"driver {self.id} serves no shared rides")
        if self.offline_after_trip:
            raise IllegalTransition(f"driver {self.id} goes offline after its trips")
        if self.holds(ride_id):
            raise IllegalTransition(f"ride {ride_id} is already in driver {self.id}'s plan")
        plan = _keyed(plan)
        problem = extension_problem(plan_of(self.plan), plan, str(ride_id))
        problem = problem or times_problem(plan, times)
        if problem is not None:
            raise IllegalTransition(problem)
        self._trigger(self.PlanExtended, at, ride_id=str(ride_id), plan=plan_data(plan),
                      times=_rounded(times))  # fmt: skip

    def close_offer(self, ride_id: UUID, outcome: OfferOutcome, at: datetime) -> None:
        self.check_holds(ride_id, DriverStatus.OFFERED)
        self._trigger(self.OfferClosed, at, ride_id=str(ride_id), outcome=outcome)

    def assign(self, ride_id: UUID, at: datetime) -> None:
        self.check_holds(ride_id, DriverStatus.OFFERED)
        self._trigger(self.Assigned, at, ride_id=str(ride_id))

    def start_trip(self, ride_id: UUID, at: datetime) -> None:
        """The rider is aboard (for a shared plan, its pickup must be the next stop)."""
        self.check_holds(ride_id, DriverStatus.EN_ROUTE)
        if not self.pooled:
            self._trigger(self.TripStarted, at, ride_id=str(ride_id))
            return
        _check_next(self, str(ride_id), PICKUP)
        if self.aboard:
            self._trigger(self.PoolPickedUp, at, ride_id=str(ride_id))
        else:
            self._trigger(self.TripStarted, at, ride_id=str(ride_id))

    def release(self, ride_id: UUID, reason: ReleaseReason, at: datetime) -> None:
        """The ride ended for the driver (dropped off, or cancelled). A shared plan's ride
        ends with ``Released`` when it is the plan's last, else with an event that keeps the
        status or, when it leaves nobody aboard and pickups ahead, goes en route."""
        if not self.holds(ride_id) or self.status not in (
            DriverStatus.EN_ROUTE,
            DriverStatus.ON_TRIP,
        ):
            raise IllegalTransition(f"driver {self.id} does not hold ride {ride_id}")
        key = str(ride_id)
        if reason == "completed" and self.pooled:
            _check_next(self, key, DROPOFF)
        if not self.pooled or _rides_left(self, key) == 0:
            self._trigger(self.Released, at, ride_id=key, reason=reason)
        elif key in self.aboard and len(self.aboard) == 1:
            self._trigger(self.AboardEmptied, at, ride_id=key, reason=reason)
        else:
            self._trigger(self.PoolRideEnded, at, ride_id=key, reason=reason)

    def _trigger(self, event_class: type[Driver.Event], at: datetime, **kwargs: Any) -> None:
        allowed, _ = DRIVER_TRANSITIONS[event_class.TOPIC]
        if self.status not in allowed:  # the decisions above say why in their own words
            raise IllegalTransition(f"driver {self.id} is {self.status}: no {event_class.__name__}")
        self.trigger_event(event_class, timestamp=at, **kwargs)


def _rounded(times: list[float]) -> list[float]:
    return [round(t, 1) for t in times]


def _keyed(plan: Plan) -> Plan:
    """The plan with its rides named as the driver's state names them (text)."""
    return tuple(Stop(str(stop.ride_id), stop.pickup) for stop in plan)


class PlanHolder(Protocol):
    """What folds a driver's shared plan: the aggregate, and any reader of its events."""

    pooled: bool
    plan: list[StopData] | tuple[()]
    aboard: list[str] | tuple[()]
    offer_plan: list[StopData] | None


@dataclass
class PlanState:
    """A driver's shared plan as a reader folds it (``fold_plan``)."""

    pooled: bool = False
    plan: list[StopData] | tuple[()] = ()
    aboard: list[str] | tuple[()] = ()
    offer_plan: list[StopData] | None = None


def fold_plan(
    state: PlanHolder, topic: str, ride_id: str, plan: list[StopData] | None = None
) -> bool:
    """Move a driver's shared plan with one of its events (``plan``: the event's, for an
    offer or an extension); the one copy of these moves, for the aggregate, the log checker
    and the matcher. Returns whether the driver serves a plan after it. A single ride's
    events leave the state as it was."""
    if topic == Driver.OfferReceived.TOPIC:
        if plan is not None or state.offer_plan is not None:
            state.offer_plan = plan
    elif topic == Driver.OfferClosed.TOPIC:
        if state.offer_plan is not None:
            state.offer_plan = None
    elif topic == Driver.Assigned.TOPIC:
        if state.offer_plan is not None:
            state.pooled, state.plan, state.aboard = True, state.offer_plan, []
            state.offer_plan = None
    elif not state.pooled:
        return False
    elif topic in (Driver.TripStarted.TOPIC, Driver.PoolPickedUp.TOPIC):
        state.plan = [stop for stop in state.plan if stop != [ride_id, PICKUP]]
        state.aboard = [*state.aboard, ride_id]
    elif topic == Driver.PlanExtended.TOPIC:
        state.plan = list(plan or [])
    elif topic in (Driver.PoolRideEnded.TOPIC, Driver.AboardEmptied.TOPIC):
        state.plan = [stop for stop in state.plan if stop[0] != ride_id]
        state.aboard = [r for r in state.aboard if r != ride_id]
    elif topic == Driver.Released.TOPIC:
        state.pooled, state.plan, state.aboard = False, [], []
    return state.pooled


def _check_next(driver: Driver, ride_id: str, kind: str) -> None:
    """A shared plan is served in its order (each plan it recorded keeps the seats and the
    riders' bounds in that order): a pickup or drop-off must be the plan's next stop."""
    if not driver.plan or driver.plan[0] != [ride_id, kind]:
        what = "pickup" if kind == PICKUP else "drop-off"
        nxt = f"{driver.plan[0][1]} of ride {driver.plan[0][0]}" if driver.plan else "none"
        raise IllegalTransition(
            f"ride {ride_id}'s {what} is not driver {driver.id}'s next stop (next: {nxt})"
        )


def _next_ride(driver: Driver) -> None:
    """A pooled driver's ``ride_id``: the ride of its plan's next stop."""
    driver.ride_id = UUID(driver.plan[0][0]) if driver.plan else None


def _rides_left(driver: Driver, ending: str) -> int:
    """The driver's shared rides other than ``ending``."""
    rides = {r for r, _ in driver.plan} | set(driver.aboard)
    rides.discard(ending)
    return len(rides)


def vehicle_of(driver: Driver) -> Vehicle:
    """The driver's vehicle (the default one for a driver rebuilt from a snapshot taken
    before vehicles were registered)."""
    data: dict[str, Any] | None = driver.__dict__.get("vehicle")
    return DEFAULT_VEHICLE if data is None else Vehicle.from_data(data)


def live_commands(driver: Driver, at: float) -> dict[str, list[float]]:
    """The driver's noted commands whose records are live at ``at`` (POSIX s). A driver
    rebuilt from a snapshot taken before commands were noted has none."""
    noted: dict[str, list[float]] = driver.__dict__.get("commands", {})
    return {
        command_id: [when, window]
        for command_id, (when, window) in noted.items()
        if at - when < window
    }


D = DriverStatus
# Every event that moves a driver: the statuses it may follow, and the status it leaves
# (None: the status stays; Released leaves available, or offline after a requested trip).
DRIVER_TRANSITIONS: dict[str, tuple[frozenset[DriverStatus], DriverStatus | None]] = {
    Driver.WentOnline.TOPIC: (frozenset({D.OFFLINE}), D.AVAILABLE),
    Driver.WentOffline.TOPIC: (frozenset({D.AVAILABLE}), D.OFFLINE),
    Driver.OfflineAfterTripRequested.TOPIC: (frozenset({D.EN_ROUTE, D.ON_TRIP}), None),
    Driver.OfferReceived.TOPIC: (frozenset({D.AVAILABLE}), D.OFFERED),
    Driver.OfferClosed.TOPIC: (frozenset({D.OFFERED}), D.AVAILABLE),
    Driver.Assigned.TOPIC: (frozenset({D.OFFERED}), D.EN_ROUTE),
    Driver.TripStarted.TOPIC: (frozenset({D.EN_ROUTE}), D.ON_TRIP),
    Driver.Released.TOPIC: (frozenset({D.EN_ROUTE, D.ON_TRIP}), D.AVAILABLE),
    # A shared plan's moves (docs/ARCHITECTURE.md, "Shared rides"): the status is kept,
    # but for the last rider aboard leaving with pickups ahead.
    Driver.PlanExtended.TOPIC: (frozenset({D.EN_ROUTE, D.ON_TRIP}), None),
    Driver.PoolPickedUp.TOPIC: (frozenset({D.ON_TRIP}), None),
    Driver.PoolRideEnded.TOPIC: (frozenset({D.EN_ROUTE, D.ON_TRIP}), None),
    Driver.AboardEmptied.TOPIC: (frozenset({D.ON_TRIP}), D.EN_ROUTE),
    Driver.HandedOff.TOPIC: (frozenset({D.AVAILABLE}), D.HANDED_OFF),
    Driver.Returned.TOPIC: (frozenset({D.HANDED_OFF}), D.AVAILABLE),
}

# A driver's availability: its status, and whether it goes offline when its trip ends.
Availability = tuple[DriverStatus, bool]
REGISTERED: Availability = (D.OFFLINE, False)
# The events that change an availability (registration starts one at REGISTERED).
AVAILABILITY_TOPICS = frozenset({Driver.Created.TOPIC, Driver.Arrived.TOPIC, *DRIVER_TRANSITIONS})


def _after(state: Availability, topic: str) -> Availability:
    status, after_trip = state
    if topic == Driver.Created.TOPIC:
        return REGISTERED
    if topic == Driver.Arrived.TOPIC:
        return D.AVAILABLE, False
    if topic == Driver.OfflineAfterTripRequested.TOPIC:
        return status, True
    if topic == Driver.Released.TOPIC:
        return (D.OFFLINE if after_trip else D.AVAILABLE), False
    after = DRIVER_TRANSITIONS[topic][1]
    if after is None:  # a shared plan's move that keeps the status
        return status, after_trip
    going_on_or_off = topic in (Driver.WentOnline.TOPIC, Driver.WentOffline.TOPIC)
    return after, after_trip and not going_on_or_off


_NEXT: dict[tuple[tuple[str, bool], str], Availability] = {
    ((status, flag), topic): _after((status, flag), topic)
    for status in DriverStatus
    for flag in (False, True)
    for topic in AVAILABILITY_TOPICS
}


def next_availability(state: tuple[str, bool], topic: str) -> Availability:
    """The availability after an event of ``topic`` (the same for a topic that changes
    none). A fold every reader shares, over statuses as enum members or their strings; it
    tolerates events out of place, which the aggregate never records and the log checker
    reports."""
    found = _NEXT.get((state, topic))
    return found if found is not None else (DriverStatus(state[0]), state[1])
