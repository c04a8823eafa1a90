"""The Rider aggregate: a rider has at most one active ride, and some scheduled ones.

A scheduled ride (docs/MARKETPLACE.md, "Scheduled rides") is booked (``RideBooked``) and
becomes the rider's active ride when its dispatch starts (``ScheduledRideActivated``),
only if the rider has no other active ride then: the ride already active wins.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate

from dispatch.domain.errors import Erased, IllegalTransition, TooManyScheduled
from dispatch.domain.operators import AUDIT_FIELDS
from dispatch.domain.ride import RideStatus

# How a ride ended, as its rider is told: the terminal status its ending left
# (``RIDE_ENDINGS``), or that status's value. The values are also accepted because the shard
# application still passes one for an expiry; a test holds them equal to the endings.


# Who erased a subject (``Erased.by``): the subject themself, or an operator (an admin).
ERASED_BY = ("self", "operator")
# What an erased subject's name reads as, in memory (stored, it was sealed: the key is gone).
ERASED_NAME = "erased"
# The admin who erased a subject: their id, name and role (``AUDIT_FIELDS``).
Operator = tuple[str, str, str]


def upcast_erased(state: dict[str, Any]) -> None:
    """An ``Erased`` event of class version 1 carried ``operator_id`` ("" for the subject
    themself); a self-erasure now carries no operator field. An admin's version-1 erasure
    keeps its id (with no name or role: the audit trail shows them empty)."""
    if not state.get("operator_id"):
        state.pop("operator_id", None)


class Rider(Aggregate):
    TOPIC = "dispatch.Rider"
    erased = False  # for a rider rebuilt from a snapshot taken before erasure existed
    # booked rides not yet dispatched (for a rider rebuilt from a snapshot taken before
    # scheduled rides: none)
    scheduled: list[str] | tuple[()] = ()  # replaced, never changed in place

    class Event(Aggregate.Event):
        pass

    class Created(Aggregate.Created):
        """Stored as ``Registered`` (see TOPIC)."""

        TOPIC = "dispatch.Rider.Registered"
        class_version = 1
        name: str

    class RideRequested(Event):
        TOPIC = "dispatch.Rider.RideRequested"
        class_version = 1
        ride_id: str

        def apply(self, rider: Rider) -> None:
            rider.active_ride = UUID(self.ride_id)
            rider.rides += 1

    class RideBooked(Event):
        """A scheduled ride booked: the rider holds it among their scheduled ones."""

        TOPIC = "dispatch.Rider.RideBooked"
        class_version = 1
        ride_id: str
        scheduled_for: datetime

        def apply(self, rider: Rider) -> None:
            rider.scheduled = [*rider.scheduled, self.ride_id]
            rider.rides += 1

    class ScheduledRideActivated(Event):
        """A scheduled ride's dispatch started: it is the rider's active ride."""

        TOPIC = "dispatch.Rider.ScheduledRideActivated"
        class_version = 1
        ride_id: str

        def apply(self, rider: Rider) -> None:
            rider.scheduled = [r for r in rider.scheduled if r != self.ride_id]
            rider.active_ride = UUID(self.ride_id)

    class RideEnded(Event):
        TOPIC = "dispatch.Rider.RideEnded"
        class_version = 1
        ride_id: str
        outcome: str

        def apply(self, rider: Rider) -> None:
            if rider.active_ride == UUID(self.ride_id):
                rider.active_ride = None
            rider.scheduled = [r for r in rider.scheduled if r != self.ride_id]

    class Erased(Event):
        """The rider's personal data was erased (docs/PRIVACY.md), by the rider themself:
        no operator fields. Every later command of theirs is refused."""

        TOPIC = "dispatch.Rider.Erased"
        class_version = 2
        by: str  # ERASED_BY

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            upcast_erased(state)

        def apply(self, rider: Rider) -> None:
            rider.erased, rider.name = True, ERASED_NAME

    class ErasedByOperator(Erased):
        """An admin erased the rider: the event names who (``AUDIT_FIELDS``, the audit
        trail), as an operator's cancellation does."""

        TOPIC = "dispatch.Rider.ErasedByOperator"
        class_version = 1
        operator_id: str
        operator_name: str
        operator_role: str

    def __init__(self, name: str) -> None:
        self.name = name
        self.active_ride: UUID | None = None
        self.scheduled = []
        self.rides = 0

    @classmethod
    def register(cls, rider_id: UUID, name: str, at: datetime) -> Rider:
        return cls._create(cls.Created, id=rider_id, timestamp=at, name=name)

    def check_not_erased(self) -> None:
        if self.erased:
            raise Erased(f"rider {self.id} is erased")

    def erase(self, operator: Operator | None, at: datetime) -> bool:
        """Erase the rider (once: False when they already are), by themself (``operator``
        None) or by an admin (``(id, name, role)``). Refused while a ride is active: its
        pickup is needed until it ends (the rider cancels first)."""
        if self.erased:
            return False
        if self.active_ride is not None:
            raise IllegalTransition(
                f"rider {self.id} has an active ride {self.active_ride}: cancel it first"
            )
        if self.scheduled:
            raise IllegalTransition(
                f"rider {self.id} has {len(self.scheduled)} scheduled ride(s) "
                f"({', '.join(self.scheduled)}): cancel them first"
            )
        if operator is None:
            self.trigger_event(self.Erased, timestamp=at, by="self")
        else:
            fields = dict(zip(AUDIT_FIELDS, operator, strict=True))
            self.trigger_event(self.ErasedByOperator, timestamp=at, by="operator", **fields)
        return True

    def check_can_request(self) -> None:
        self.check_not_erased()
        if self.active_ride is not None:
            raise IllegalTransition(
                f"rider {self.id} already has an active ride {self.active_ride}"
            )

    def request_ride(self, ride_id: UUID, at: datetime) -> None:
        self.check_can_request()
        self.trigger_event(self.RideRequested, timestamp=at, ride_id=str(ride_id))

    def book_ride(self, ride_id: UUID, scheduled_for: datetime, most: int, at: datetime) -> None:
        """Book a scheduled ride (at most ``most`` held at a time)."""
        self.check_not_erased()
        if len(self.scheduled) >= most:
            raise TooManyScheduled(
                f"rider {self.id} already has {len(self.scheduled)} scheduled rides, the "
                f"most a rider may hold: cancel one, or wait for one to start"
            )
        self.trigger_event(self.RideBooked, timestamp=at, ride_id=str(ride_id),
                           scheduled_for=scheduled_for)  # fmt: skip

    def holds(self, ride_id: UUID) -> bool:
        """Whether the ride is the rider's active ride or one of their scheduled ones."""
        return self.active_ride == ride_id or str(ride_id) in self.scheduled

    def activate(self, ride_id: UUID, at: datetime) -> UUID | None:
        """Make a scheduled ride the active one; returns the other ride that is active
        instead (nothing recorded: the active ride wins), or None once it is done. A ride
        already active is left so (None)."""
        if self.active_ride == ride_id:
            return None
        if str(ride_id) not in self.scheduled:
            raise IllegalTransition(f"ride {ride_id} is not a scheduled ride of rider {self.id}")
        if self.active_ride is not None:
            return self.active_ride
        self.trigger_event(self.ScheduledRideActivated, timestamp=at, ride_id=str(ride_id))
        return None

    def end_ride(self, ride_id: UUID, outcome: RideStatus, at: datetime) -> None:
        if not self.holds(ride_id):
            raise IllegalTransition(f"ride {ride_id} is not rider {self.id}'s active ride")
        ended = RideStatus(outcome).value  # the event holds the word, as it always has
        self.trigger_event(self.RideEnded, timestamp=at, ride_id=str(ride_id), outcome=ended)
