"""The Rider aggregate: a rider has at most one active ride."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from eventsourcing.domain import Aggregate

from dispatch.domain.errors import IllegalTransition
from dispatch.domain.ride import RideStatus

# How a ride ended, as its rider is told: the terminal status its ending left
# (``RIDE_ENDINGS``), or that status's value. The values are also accepted because the shard
# application still passes one for an expiry; a test holds them equal to the endings.


class Rider(Aggregate):
    TOPIC = "dispatch.Rider"

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

    class RideEnded(Event):
        TOPIC = "dispatch.Rider.RideEnded"
        class_version = 1
        ride_id: str
        outcome: str

        def apply(self, rider: Rider) -> None:
            rider.active_ride = None

    def __init__(self, name: str) -> None:
        self.name = name
        self.active_ride: UUID | None = None
        self.rides = 0

    @classmethod
    def register(cls, rider_id: UUID, name: str, at: datetime) -> Rider:
        return cls._create(cls.Created, id=rider_id, timestamp=at, name=name)

    def check_can_request(self) -> None:
        if self.active_ride is not None:
            raise IllegalTransition(
                f"rider {self.id} already has an active ride {self.active_ride}"
            )

    def request_ride(self, ride_id: UUID, at: datetime) -> None:
        self.check_can_request()
        self.trigger_event(self.RideRequested, timestamp=at, ride_id=str(ride_id))

    def end_ride(self, ride_id: UUID, outcome: RideStatus, at: datetime) -> None:
        if self.active_ride != ride_id:
            raise IllegalTransition(f"ride {ride_id} is not rider {self.id}'s active ride")
        ended = RideStatus(outcome).value  # the event holds the word, as it always has
        self.trigger_event(self.RideEnded, timestamp=at, ride_id=str(ride_id), outcome=ended)
