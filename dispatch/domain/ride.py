"""The Ride aggregate: one rider's request from dispatch to drop-off.

requested -> offered -> accepted -> driver_arrived -> in_progress -> completed.
A declined or expired offer, or a driver cancelling after accepting, sends the ride
back to ``requested`` with that driver excluded. The rider, or an operator who dispatches
(naming themselves in the event: the audit trail), may cancel any time before the trip
starts. A ride still unserved after its max wait expires.

A scheduled ride (docs/MARKETPLACE.md, "Scheduled rides") is booked ``scheduled``
(``Ride.Scheduled``, its own creation event: a reader that does not know it never takes it
for demand) and waits, not dispatched, until the matcher finds it due: ``DispatchDue``
(the expected pickup and margin it was found due by), then ``DispatchStarted`` once its
rider's lock is the ride's (it is ``requested`` from then on, as any other), or
``DispatchHeld`` while the rider has another ride active (it tries again). ``Overdue``
tells the rider that no driver was found by the time booked, whether the ride is searching
or still held (it keeps trying until it expires); it is a notice: the ride keeps its
status. A rider cancelling after the free cutoff is charged (``CancelledByRider.fee``).

``RIDE_TRANSITIONS`` (at the end) is the one table of these moves: the aggregate records
no event its table does not allow and takes its status from it; the matcher, the log
checker and the views read the same table and ``RIDE_ENDINGS``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, ClassVar
from uuid import UUID

from eventsourcing.domain import Aggregate

from dispatch.domain.errors import Forbidden, IllegalTransition
from dispatch.domain.fares import amount_text
from dispatch.domain.geo import Point
from dispatch.domain.ids import shard_of
from dispatch.domain.pooling import Sharing
from dispatch.domain.ride_fare import FareTerms, final_fare


class RideStatus(StrEnum):
    SCHEDULED = "scheduled"
    REQUESTED = "requested"
    OFFERED = "offered"
    ACCEPTED = "accepted"
    DRIVER_ARRIVED = "driver_arrived"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"

    # Hash as the string it equals (Enum hashes by member name, in Python): a status then
    # works as a dict key or set member at the speed of a str, and equal values hash equal.
    __hash__ = str.__hash__


TERMINAL = frozenset({RideStatus.COMPLETED, RideStatus.CANCELLED, RideStatus.EXPIRED})
RIDER_CANCELLABLE = frozenset(
    {
        RideStatus.SCHEDULED,
        RideStatus.REQUESTED,
        RideStatus.OFFERED,
        RideStatus.ACCEPTED,
        RideStatus.DRIVER_ARRIVED,
    }
)
OPERATOR_CANCELLABLE = RIDER_CANCELLABLE
DRIVER_CANCELLABLE = frozenset({RideStatus.ACCEPTED, RideStatus.DRIVER_ARRIVED})
ASSIGNED = frozenset({RideStatus.ACCEPTED, RideStatus.DRIVER_ARRIVED, RideStatus.IN_PROGRESS})


# Why an ask ended when the shard asked no longer serves the driver (``AskEnded.reason``).
MOVED = "moved"


class Ride(Aggregate):
    # For a ride rebuilt from a snapshot taken before hand-offs (see Driver.epoch).
    owner: int | None = None
    # For a ride rebuilt from a snapshot taken before fares: no terms, no trip start known.
    fare: dict[str, Any] | None = None
    trip_started_at: datetime | None = None
    # For a ride rebuilt from a snapshot taken before rides carried a product of their own.
    product: str = "standard"
    # For a ride rebuilt from a snapshot taken before scheduled rides: an immediate one.
    scheduled_for: datetime | None = None
    free_cancel_until: datetime | None = None
    activating = False
    is_overdue = False
    # For a ride rebuilt from a snapshot taken before shared rides: a single one.
    sharing: dict[str, Any] | None = None

    TOPIC = "dispatch.Ride"

    class Event(Aggregate.Event):
        TOPIC: ClassVar[str]

        def apply(self, ride: Ride) -> None:
            move = RIDE_TRANSITIONS.get(self.TOPIC)  # None for Created (metaclass-made Event)
            if move is not None and move[1] is not None:  # (None: a notice, status kept)
                ride.status = move[1]

    class Created(Aggregate.Created):
        """Stored as ``Requested`` (see TOPIC)."""

        TOPIC = "dispatch.Ride.Requested"
        class_version = 4
        rider_id: str
        # None: erased (the rider's key is gone, docs/PRIVACY.md); only ended rides are.
        pickup: list[float] | None
        dropoff: list[float] | None
        expires_at: datetime
        fare: dict[str, Any] | None  # FareTerms.to_data(); None: not priced
        # The product asked for (its own, priced or not: the matcher reads it, never the
        # fare's).
        product: str
        # A shared ride's terms (``pooling.Sharing.to_data()``); None: a single ride.
        sharing: dict[str, Any] | None

        @staticmethod
        def upcast_v1_v2(state: dict[str, object]) -> None:
            """Version 1 had no fare terms: a ride requested before fares is not priced."""
            state["fare"] = None

        @staticmethod
        def upcast_v2_v3(state: dict[str, Any]) -> None:
            """Version 2 carried the product only in its fare terms: theirs, or standard
            for a ride not priced (as it was matched then)."""
            fare = state.get("fare")
            state["product"] = "standard" if fare is None else fare["product"]

        @staticmethod
        def upcast_v3_v4(state: dict[str, Any]) -> None:
            """Version 3 had no shared rides: every ride was a single one."""
            state["sharing"] = None

    class Booked(Aggregate.Created):
        """A scheduled ride booked (stored as ``Scheduled``): not dispatched before its
        ``DispatchStarted``; searched for until ``expires_at`` (its time plus the late
        window); free to cancel until ``free_cancel_until``."""

        TOPIC = "dispatch.Ride.Scheduled"
        class_version = 1
        rider_id: str
        pickup: list[float] | None
        dropoff: list[float] | None
        expires_at: datetime
        fare: dict[str, Any] | None
        product: str
        scheduled_for: datetime
        free_cancel_until: datetime

    class DispatchDue(Event):
        """The matcher found the scheduled ride due: its time less the expected pickup
        (``expected_pickup_s``, from the ETA provider and current supply) and ``margin_s``;
        the rider's lock is asked for (at the rider's home shard, if another)."""

        TOPIC = "dispatch.Ride.DispatchDue"
        class_version = 1
        expected_pickup_s: float
        margin_s: float

        def apply(self, ride: Ride) -> None:
            super().apply(ride)
            ride.activating = True

    class DispatchStarted(Event):
        """The rider's lock is the ride's: it is dispatched from now on (``requested``)."""

        TOPIC = "dispatch.Ride.DispatchStarted"
        class_version = 1

        def apply(self, ride: Ride) -> None:
            super().apply(ride)
            ride.activating = False

    class DispatchHeld(Event):
        """The rider has another ride active (``busy_with``): the active one wins; the
        scheduled ride tries again (``reason`` ``rider_busy``) until it expires."""

        TOPIC = "dispatch.Ride.DispatchHeld"
        class_version = 1
        reason: str
        busy_with: str

        def apply(self, ride: Ride) -> None:
            super().apply(ride)
            ride.activating = False

    class Overdue(Event):
        """No driver was found by the scheduled time: the rider is told; the ride keeps
        searching until it expires."""

        TOPIC = "dispatch.Ride.Overdue"
        class_version = 1

        def apply(self, ride: Ride) -> None:
            super().apply(ride)
            ride.is_overdue = True

    class Offered(Event):
        TOPIC = "dispatch.Ride.Offered"
        class_version = 1
        driver_id: str
        offer_expires_at: datetime
        pickup_eta_s: float
        distance_m: float

        def apply(self, ride: Ride) -> None:
            super().apply(ride)
            if ride.asking != UUID(self.driver_id):
                ride.owner = None  # a driver of this shard's: no reservation elsewhere
            ride.offered_to = UUID(self.driver_id)
            ride.offer_expires_at = self.offer_expires_at
            ride.offers += 1
            ride.asking = None

    class OfferDeclined(Event):
        TOPIC = "dispatch.Ride.OfferDeclined"
        class_version = 1
        driver_id: str

        def apply(self, ride: Ride) -> None:
            super().apply(ride)
            ride.back_to_dispatch(UUID(self.driver_id))

    class OfferExpired(Event):
        TOPIC = "dispatch.Ride.OfferExpired"
        class_version = 1
        driver_id: str

        def apply(self, ride: Ride) -> None:
            super().apply(ride)
            ride.back_to_dispatch(UUID(self.driver_id))

    class DriverAsked(Event):
        """A driver owned by another shard is asked to hold for the ride (``resv``); the
        ride waits for the owner's answer (docs/ARCHITECTURE.md, "Offers across shards")."""

        TOPIC = "dispatch.Ride.DriverAsked"
        class_version = 1
        driver_id: str
        resv: str
        pickup_eta_s: float
        distance_m: float
        # The shard asked (the driver's owner as the ride's shard knew it); events from
        # before driver hand-offs have none: the driver's home shard (its id's).
        owner: int = -1

        def apply(self, ride: Ride) -> None:
            super().apply(ride)
            ride.asking = UUID(self.driver_id)
            ride.owner = self.owner if self.owner >= 0 else shard_of(ride.asking)
            ride.resv = self.resv
            ride.asked_eta_s, ride.asked_distance_m = self.pickup_eta_s, self.distance_m
            ride.asks += 1

    class AskEnded(Event):
        """The asked driver will not hold for the ride: refused, moved, or withdrawn by
        the ride; it searches again without that driver (but for "moved": the driver's
        new owner may be asked)."""

        TOPIC = "dispatch.Ride.AskEnded"
        class_version = 1
        driver_id: str
        reason: str
        moved_to: int = -1  # reason moved: the shard that serves the driver now, if known

        def apply(self, ride: Ride) -> None:
            super().apply(ride)
            ride.asking = None
            if self.reason == MOVED:  # it may be asked again where it went
                ride.offered_to = ride.offer_expires_at = None
            else:
                ride.back_to_dispatch(UUID(self.driver_id))

    class Accepted(Event):
        TOPIC = "dispatch.Ride.Accepted"
        class_version = 1
        driver_id: str

        def apply(self, ride: Ride) -> None:
            super().apply(ride)
            ride.driver_id = UUID(self.driver_id)
            ride.offered_to = None
            ride.offer_expires_at = None

    class Pooled(Event):
        """The shared ride was put into the plan of ``driver_id``, who serves shared rides
        (``Driver.PlanExtended`` records the plan): assigned without an offer."""

        TOPIC = "dispatch.Ride.Pooled"
        class_version = 1
        driver_id: str

        def apply(self, ride: Ride) -> None:
            super().apply(ride)
            ride.driver_id = UUID(self.driver_id)

    class DriverArrived(Event):
        TOPIC = "dispatch.Ride.DriverArrived"
        class_version = 1
        driver_id: str

    class TripStarted(Event):
        TOPIC = "dispatch.Ride.TripStarted"
        class_version = 1
        driver_id: str

        def apply(self, ride: Ride) -> None:
            super().apply(ride)
            ride.trip_started_at = self.timestamp

    class Completed(Event):
        """The trip driven (``distance_m`` and ``duration_s``, and how each was found) and
        the final fare (``FinalFare.to_data()``; None for a ride with no fare terms)."""

        TOPIC = "dispatch.Ride.Completed"
        class_version = 2
        driver_id: str
        distance_m: int | None
        duration_s: int | None
        trip_by: dict[str, str] | None
        fare: dict[str, Any] | None

        @staticmethod
        def upcast_v1_v2(state: dict[str, object]) -> None:
            """Version 1 recorded no trip and no fare: unknown."""
            state.update(distance_m=None, duration_s=None, trip_by=None, fare=None)

    class CancelledByRider(Event):
        """``fee``: what a scheduled ride cancelled after its free cutoff is charged (its
        fare rule's minimum, decimal text in the fare's currency); None: free."""

        TOPIC = "dispatch.Ride.CancelledByRider"
        class_version = 2
        reason: str
        fee: str | None

        @staticmethod
        def upcast_v1_v2(state: dict[str, object]) -> None:
            """Version 1 charged nothing (there were no scheduled rides)."""
            state["fee"] = None

        def apply(self, ride: Ride) -> None:
            super().apply(ride)
            ride.offered_to = None
            ride.offer_expires_at = None

    class CancelledByOperator(Event):
        """An operator cancelled the ride; the event names who (the audit trail)."""

        TOPIC = "dispatch.Ride.CancelledByOperator"
        class_version = 1
        operator_id: str
        operator_name: str
        operator_role: str
        reason: str

        def apply(self, ride: Ride) -> None:
            super().apply(ride)
            ride.offered_to = None
            ride.offer_expires_at = None

    class CancelledByDriver(Event):
        TOPIC = "dispatch.Ride.CancelledByDriver"
        class_version = 1
        driver_id: str
        reason: str

        def apply(self, ride: Ride) -> None:
            super().apply(ride)
            ride.driver_id = None
            ride.back_to_dispatch(UUID(self.driver_id))

    class Expired(Event):
        TOPIC = "dispatch.Ride.Expired"
        class_version = 1

    def __init__(
        self,
        rider_id: str,
        pickup: list[float] | None,
        dropoff: list[float] | None,
        expires_at: datetime,
        fare: dict[str, Any] | None,
        product: str,
        scheduled_for: datetime | None = None,
        free_cancel_until: datetime | None = None,
        sharing: dict[str, Any] | None = None,
    ) -> None:
        self.rider_id = UUID(rider_id)
        self.sharing = sharing
        self.scheduled_for = scheduled_for
        self.free_cancel_until = free_cancel_until
        self.activating = False
        self.fare = fare
        self.product = product
        self.trip_started_at = None
        self.pickup = None if pickup is None else Point.from_list(pickup)
        self.dropoff = None if dropoff is None else Point.from_list(dropoff)
        self.expires_at = expires_at
        self.status = RideStatus.REQUESTED if scheduled_for is None else RideStatus.SCHEDULED
        self.offered_to: UUID | None = None
        self.offer_expires_at: datetime | None = None
        self.driver_id: UUID | None = None
        self.excluded: list[UUID] = []
        self.offers = 0
        # A driver of another shard asked to hold for the ride, the reservation (kept while
        # that driver is offered or assigned), its ETA and distance, and how many asks.
        self.asking: UUID | None = None
        self.resv: str | None = None
        # The shard that owns the driver the ride asked, is offered or is assigned through
        # a reservation (None: a driver of this shard's, or none).
        self.owner: int | None = None
        self.asked_eta_s = 0.0
        self.asked_distance_m = 0.0
        self.asks = 0

    @classmethod
    def request(
        cls,
        ride_id: UUID,
        rider_id: UUID,
        pickup: Point,
        dropoff: Point,
        max_wait_s: float,
        at: datetime,
        fare: FareTerms | None = None,
        product: str | None = None,
        sharing: Sharing | None = None,
    ) -> Ride:
        """A ride of ``product`` requested at ``at``, priced on ``fare`` (None: not priced,
        no rule for it). ``product`` None: the fare's, or standard for a ride not priced;
        a product other than its fare's is refused. ``sharing``: a shared ride's terms."""
        if product is None:
            product = "standard" if fare is None else fare.product
        elif fare is not None and fare.product != product:
            raise ValueError(f"the ride's product {product!r} is not its fare's {fare.product!r}")
        return cls._create(
            cls.Created,
            id=ride_id,
            timestamp=at,
            rider_id=str(rider_id),
            pickup=pickup.as_list(),
            dropoff=dropoff.as_list(),
            expires_at=at + timedelta(seconds=max_wait_s),
            fare=None if fare is None else fare.to_data(),
            product=product,
            sharing=None if sharing is None else sharing.to_data(),
        )

    @classmethod
    def book(
        cls,
        ride_id: UUID,
        rider_id: UUID,
        pickup: Point,
        dropoff: Point,
        booking: Booking,
        at: datetime,
        fare: FareTerms | None,
        product: str,
    ) -> Ride:
        """A scheduled ride booked at ``at`` for ``booking.scheduled_for``."""
        if fare is not None and fare.product != product:
            raise ValueError(f"the ride's product {product!r} is not its fare's {fare.product!r}")
        return cls._create(
            cls.Booked,
            id=ride_id,
            timestamp=at,
            rider_id=str(rider_id),
            pickup=pickup.as_list(),
            dropoff=dropoff.as_list(),
            expires_at=booking.expires_at,
            fare=None if fare is None else fare.to_data(),
            product=product,
            scheduled_for=booking.scheduled_for,
            free_cancel_until=booking.free_cancel_until,
        )

    def dispatch_due(self, expected_pickup_s: float, margin_s: float, at: datetime) -> None:
        """The matcher found the ride due; the rider's lock is asked for next."""
        self._require(RideStatus.SCHEDULED, "start the dispatch of")
        if self.activating:
            raise IllegalTransition(f"ride {self.id} is already asking for its rider's lock")
        self._trigger(self.DispatchDue, at, expected_pickup_s=round(expected_pickup_s, 1),
                      margin_s=round(margin_s, 1))  # fmt: skip

    def start_dispatch(self, at: datetime) -> None:
        self._require(RideStatus.SCHEDULED, "start the dispatch of")
        if not self.activating:
            raise IllegalTransition(f"ride {self.id} has not asked for its rider's lock")
        self._trigger(self.DispatchStarted, at)

    def hold_dispatch(self, busy_with: UUID, at: datetime) -> None:
        self._require(RideStatus.SCHEDULED, "hold the dispatch of")
        if not self.activating:
            raise IllegalTransition(f"ride {self.id} has not asked for its rider's lock")
        self._trigger(self.DispatchHeld, at, reason=RIDER_BUSY, busy_with=str(busy_with))

    def overdue(self, at: datetime) -> None:
        """No driver found by the scheduled time (recorded once)."""
        if self.scheduled_for is None or at < self.scheduled_for:
            raise IllegalTransition(f"ride {self.id} is not past a scheduled time")
        if self.is_overdue:
            raise IllegalTransition(f"ride {self.id} is already overdue")
        self._trigger(self.Overdue, at)

    def cancellation_fee(self, at: datetime) -> str | None:
        """What a rider cancelling at ``at`` is charged: a scheduled ride past its free
        cutoff pays its fare rule's minimum (None: free, not priced, or overdue)."""
        cutoff = self.free_cancel_until
        terms = self.fare_terms
        if cutoff is None or at < cutoff or terms is None or self.is_overdue:
            return None  # (overdue: no driver came by its time, the failure is not theirs)
        return amount_text(terms.rule.minimum, terms.currency)

    @property
    def is_active(self) -> bool:
        return self.status not in TERMINAL

    def back_to_dispatch(self, driver_id: UUID) -> None:
        self.offered_to = None
        self.offer_expires_at = None
        if driver_id not in self.excluded:
            self.excluded.append(driver_id)

    # -- decisions ---------------------------------------------------------------
    def offer(
        self, driver_id: UUID, expires_at: datetime, eta_s: float, distance_m: float, at: datetime
    ) -> None:
        self._require(RideStatus.REQUESTED, "offer")
        if self.asking is not None and self.asking != driver_id:
            raise IllegalTransition(f"ride {self.id} is asking driver {self.asking}")
        if driver_id in self.excluded:
            raise IllegalTransition(f"driver {driver_id} is excluded from ride {self.id}")
        self._trigger(
            self.Offered,
            at,
            driver_id=str(driver_id),
            offer_expires_at=expires_at,
            pickup_eta_s=round(eta_s, 1),
            distance_m=round(distance_m, 1),
        )

    def ask(
        self, driver_id: UUID, owner: int, eta_s: float, distance_m: float, at: datetime
    ) -> str:
        """Ask a driver owned by shard ``owner`` to hold for the ride; returns the
        reservation."""
        self._require(RideStatus.REQUESTED, "ask a driver for")
        if self.asking is not None:
            raise IllegalTransition(f"ride {self.id} is already asking driver {self.asking}")
        if driver_id in self.excluded:
            raise IllegalTransition(f"driver {driver_id} is excluded from ride {self.id}")
        resv = f"{self.id}/{self.asks + 1}"
        self._trigger(self.DriverAsked, at, driver_id=str(driver_id), resv=resv, owner=owner,
                      pickup_eta_s=round(eta_s, 1), distance_m=round(distance_m, 1))  # fmt: skip
        return resv

    def through_owner(self, driver_id: UUID) -> int | None:
        """The shard that holds ``driver_id`` for the ride through a reservation, if the
        ride's current ask, offer or assignment is that driver's there (None: here)."""
        if self.owner is None or driver_id not in (self.asking, self.offered_to, self.driver_id):
            return None
        return self.owner

    def is_current(self, resv: str, driver_id: UUID) -> bool:
        """Whether an owner's answer about ``resv`` and ``driver_id`` is about the ride's
        current ask, offer or assignment (any other is late: the ride let go of it)."""
        return self.resv == resv and driver_id in (self.asking, self.offered_to, self.driver_id)

    def end_ask(
        self, driver_id: UUID, reason: str, at: datetime, moved_to: int | None = None
    ) -> None:
        if self.asking != driver_id:
            raise IllegalTransition(f"ride {self.id} is not asking driver {driver_id}")
        extra = {"moved_to": moved_to} if moved_to is not None else {}
        self._trigger(self.AskEnded, at, driver_id=str(driver_id), reason=reason, **extra)

    def granted(self, driver_id: UUID, expires_at: datetime, at: datetime) -> None:
        """The asked driver's owner holds it for the ride until ``expires_at`` (its clock)."""
        if self.asking != driver_id:
            raise IllegalTransition(f"ride {self.id} is not asking driver {driver_id}")
        self.offer(driver_id, expires_at, self.asked_eta_s, self.asked_distance_m, at)

    def confirmed(self, driver_id: UUID, at: datetime) -> None:
        """The offered driver's owner assigned it (the owner's clock decided the expiry)."""
        self._require(RideStatus.OFFERED, "confirm")
        if self.offered_to != driver_id:
            raise Forbidden(f"ride {self.id} is not offered to driver {driver_id}")
        self._trigger(self.Accepted, at, driver_id=str(driver_id))

    def offer_lost(self, driver_id: UUID, at: datetime) -> None:
        """The offered driver's owner let its hold go (expired on its clock)."""
        self._require(RideStatus.OFFERED, "lose the offer of")
        if self.offered_to != driver_id:
            raise Forbidden(f"ride {self.id} is not offered to driver {driver_id}")
        self._trigger(self.OfferExpired, at, driver_id=str(driver_id))

    def check_offer_response(self, driver_id: UUID, at: datetime) -> None:
        self._require(RideStatus.OFFERED, "answer an offer for")
        if self.offered_to != driver_id:
            raise Forbidden(f"ride {self.id} is not offered to driver {driver_id}")
        assert self.offer_expires_at is not None
        if at >= self.offer_expires_at:
            raise IllegalTransition(f"the offer of ride {self.id} expired")

    def decline(self, driver_id: UUID, at: datetime) -> None:
        self._require(RideStatus.OFFERED, "decline")
        if self.offered_to != driver_id:
            raise Forbidden(f"ride {self.id} is not offered to driver {driver_id}")
        self._trigger(self.OfferDeclined, at, driver_id=str(driver_id))

    def expire_offer(self, at: datetime) -> UUID:
        self._require(RideStatus.OFFERED, "expire the offer of")
        assert self.offered_to is not None and self.offer_expires_at is not None
        if at < self.offer_expires_at:
            raise IllegalTransition(f"the offer of ride {self.id} has not expired yet")
        driver_id = self.offered_to
        self._trigger(self.OfferExpired, at, driver_id=str(driver_id))
        return driver_id

    def accept(self, driver_id: UUID, at: datetime) -> None:
        self.check_offer_response(driver_id, at)
        self._trigger(self.Accepted, at, driver_id=str(driver_id))

    @property
    def terms_of_sharing(self) -> Sharing | None:
        return None if self.sharing is None else Sharing.from_data(self.sharing)

    def pool(self, driver_id: UUID, at: datetime) -> None:
        """Put the shared ride into the plan of a driver already serving shared rides (it
        agreed to pooling with its first: no offer)."""
        if self.sharing is None:
            raise IllegalTransition(f"ride {self.id} is not shared: it is offered, not pooled")
        self._require(RideStatus.REQUESTED, "pool")
        if self.asking is not None:
            raise IllegalTransition(f"ride {self.id} is asking driver {self.asking}")
        if driver_id in self.excluded:
            raise IllegalTransition(f"driver {driver_id} is excluded from ride {self.id}")
        self._trigger(self.Pooled, at, driver_id=str(driver_id))

    def arrive(self, driver_id: UUID, at: datetime) -> None:
        self._require_driver(driver_id, RideStatus.ACCEPTED, "mark arrival for")
        self._trigger(self.DriverArrived, at, driver_id=str(driver_id))

    def start_trip(self, driver_id: UUID, at: datetime) -> None:
        self._require_driver(driver_id, RideStatus.DRIVER_ARRIVED, "start")
        self._trigger(self.TripStarted, at, driver_id=str(driver_id))

    def complete(self, driver_id: UUID, at: datetime, trip: DrivenTrip) -> None:
        """Complete the trip driven (``trip``), priced on the ride's terms, if it has any."""
        self._require_driver(driver_id, RideStatus.IN_PROGRESS, "complete")
        terms = self.fare_terms
        final = None
        if terms is not None:
            final = final_fare(terms, trip.distance_m, trip.duration_s).to_data()
        self._trigger(self.Completed, at, driver_id=str(driver_id), distance_m=trip.distance_m,
                      duration_s=trip.duration_s, trip_by=dict(trip.found_by),
                      fare=final)  # fmt: skip

    @property
    def fare_terms(self) -> FareTerms | None:
        return None if self.fare is None else FareTerms.from_data(self.fare)

    def cancel_by_rider(self, rider_id: UUID, reason: str, at: datetime) -> UUID | None:
        """Cancel for the rider; returns the driver to release (offered or assigned), if any."""
        if rider_id != self.rider_id:
            raise Forbidden(f"ride {self.id} belongs to another rider")
        if self.status not in RIDER_CANCELLABLE:
            raise IllegalTransition(
                f"ride {self.id} is {self.status}: a rider can cancel only before the trip starts"
            )
        driver = self.offered_to or self.driver_id
        self._trigger(self.CancelledByRider, at, reason=reason, fee=self.cancellation_fee(at))
        return driver

    def cancel_by_operator(
        self, operator_id: UUID, operator_name: str, operator_role: str, reason: str, at: datetime
    ) -> UUID | None:
        """Cancel for an operator, who is named in the event with the role they acted in;
        returns the driver to release (offered or assigned), if any."""
        if self.status not in OPERATOR_CANCELLABLE:
            raise IllegalTransition(
                f"ride {self.id} is {self.status}: an operator can cancel only before the trip "
                "starts"
            )
        driver = self.offered_to or self.driver_id
        self._trigger(self.CancelledByOperator, at, operator_id=str(operator_id),
                      operator_name=operator_name, operator_role=operator_role,
                      reason=reason)  # fmt: skip
        return driver

    def cancel_by_driver(self, driver_id: UUID, reason: str, at: datetime) -> None:
        self.check_driver_cancel(driver_id)
        self._trigger(self.CancelledByDriver, at, driver_id=str(driver_id), reason=reason)

    def expire(self, at: datetime) -> None:
        if self.status != RideStatus.SCHEDULED:
            self._require(RideStatus.REQUESTED, "expire")
        if at < self.expires_at:
            raise IllegalTransition(f"ride {self.id} has not reached its max wait yet")
        self._trigger(self.Expired, at)

    def check_driver(self, driver_id: UUID, status: RideStatus, action: str) -> None:
        """Would ``driver_id`` be allowed to ``action`` the ride now? (raises if not)"""
        self._require_driver(driver_id, status, action)

    def check_driver_cancel(self, driver_id: UUID) -> None:
        if driver_id not in (self.driver_id, self.offered_to):
            raise Forbidden(f"driver {driver_id} is not assigned to ride {self.id}")
        if self.status not in DRIVER_CANCELLABLE:
            raise IllegalTransition(
                f"ride {self.id} is {self.status}: a driver can cancel only before the trip starts"
            )

    # -- helpers -----------------------------------------------------------------
    def _require(self, status: RideStatus, action: str) -> None:
        if self.status != status:
            raise IllegalTransition(f"cannot {action} ride {self.id}: it is {self.status}")

    def _require_driver(self, driver_id: UUID, status: RideStatus, action: str) -> None:
        """Strangers are forbidden; the ride's own driver (or the one it is offered to)
        asking at the wrong moment is an illegal transition."""
        if driver_id not in (self.driver_id, self.offered_to):
            raise Forbidden(f"driver {driver_id} is not assigned to ride {self.id}")
        self._require(status, action)

    def _trigger(self, event_class: type[Ride.Event], at: datetime, **kwargs: Any) -> None:
        allowed, _ = RIDE_TRANSITIONS[event_class.TOPIC]
        if self.status not in allowed:  # the decisions above say why in their own words
            raise IllegalTransition(f"ride {self.id} is {self.status}: no {event_class.__name__}")
        self.trigger_event(event_class, timestamp=at, **kwargs)


# Why a scheduled ride's dispatch is held (``DispatchHeld.reason``).
RIDER_BUSY = "rider_busy"


@dataclass(frozen=True, slots=True)
class Booking:
    """When a scheduled ride is for, until when it is free to cancel, and when its search
    ends (its time plus the late window)."""

    scheduled_for: datetime
    free_cancel_until: datetime
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class DrivenTrip:
    """A completed trip's distance and duration, and how each was found
    (``found_by``: ``{"distance": ..., "duration": ...}``)."""

    distance_m: int
    duration_s: int
    found_by: Mapping[str, str]


R = RideStatus
# Every event that moves a ride: the statuses it may follow, and the status it leaves
# (None: a notice, the ride keeps the status it had).
RIDE_TRANSITIONS: dict[str, tuple[frozenset[RideStatus], RideStatus | None]] = {
    Ride.DispatchDue.TOPIC: (frozenset({R.SCHEDULED}), R.SCHEDULED),
    Ride.DispatchStarted.TOPIC: (frozenset({R.SCHEDULED}), R.REQUESTED),
    Ride.DispatchHeld.TOPIC: (frozenset({R.SCHEDULED}), R.SCHEDULED),
    # told while still booked (held: its rider busy) or while searching
    Ride.Overdue.TOPIC: (frozenset({R.SCHEDULED, R.REQUESTED}), None),
    Ride.Offered.TOPIC: (frozenset({R.REQUESTED}), R.OFFERED),
    Ride.DriverAsked.TOPIC: (frozenset({R.REQUESTED}), R.REQUESTED),
    Ride.AskEnded.TOPIC: (frozenset({R.REQUESTED}), R.REQUESTED),
    Ride.OfferDeclined.TOPIC: (frozenset({R.OFFERED}), R.REQUESTED),
    Ride.OfferExpired.TOPIC: (frozenset({R.OFFERED}), R.REQUESTED),
    Ride.Accepted.TOPIC: (frozenset({R.OFFERED}), R.ACCEPTED),
    Ride.Pooled.TOPIC: (frozenset({R.REQUESTED}), R.ACCEPTED),
    Ride.DriverArrived.TOPIC: (frozenset({R.ACCEPTED}), R.DRIVER_ARRIVED),
    Ride.TripStarted.TOPIC: (frozenset({R.DRIVER_ARRIVED}), R.IN_PROGRESS),
    Ride.Completed.TOPIC: (frozenset({R.IN_PROGRESS}), R.COMPLETED),
    Ride.CancelledByRider.TOPIC: (RIDER_CANCELLABLE, R.CANCELLED),
    Ride.CancelledByOperator.TOPIC: (OPERATOR_CANCELLABLE, R.CANCELLED),
    Ride.CancelledByDriver.TOPIC: (DRIVER_CANCELLABLE, R.REQUESTED),
    Ride.Expired.TOPIC: (frozenset({R.SCHEDULED, R.REQUESTED}), R.EXPIRED),
}
# The events that end a ride, with the outcome the rider is told (Rider.RideEnded): the
# terminal status each leaves.
RIDE_ENDINGS: dict[str, RideStatus] = {
    topic: after
    for topic, (_, after) in RIDE_TRANSITIONS.items()
    if after is not None and after in TERMINAL
}
# The events that tell, and move no ride: the statuses each may follow.
RIDE_NOTICES: dict[str, frozenset[RideStatus]] = {
    topic: allowed for topic, (allowed, after) in RIDE_TRANSITIONS.items() if after is None
}
# A ride in one of these statuses waits for a driver (demand, in the heatmap).
WAITING_FOR_DRIVER = frozenset({R.REQUESTED, R.OFFERED})
# A ride in one of these statuses holds no driver (its driver, if any, was let go).
HOLDS_NO_DRIVER = frozenset({R.SCHEDULED, R.REQUESTED, *TERMINAL})
# A ride's status after its creation event: immediate rides are requested, booked ones
# scheduled.
CREATED_STATUS: dict[str, RideStatus] = {
    Ride.Created.TOPIC: R.REQUESTED,
    Ride.Booked.TOPIC: R.SCHEDULED,
}
