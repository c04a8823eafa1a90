"""What a shard does with a message from another shard, and what it sends when a ride
crosses shards (docs/ARCHITECTURE.md, "Cross-shard matching").

A ride lives in the shard of its pickup (R); its rider's one-active-ride lock lives in the
rider's home shard (H). The request is handled at H, which takes the lock (the rider's
``RideRequested``) and, when R is another shard, sends ``OpenRide`` to R in the same
transaction; R opens the ride when the message arrives. When the ride ends, R sends
``UnlockRider`` to H, which ends it for the rider. When R == H all of it happens in one
transaction, as in a single shard.

Each function here is one message's effect, applied by the shard's single writer in the
batch's unit of work; the channel (``links.Link``) has already made sure it is applied
once and in order.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any
from uuid import UUID

from dispatch.domain.geo import Point
from dispatch.domain.ids import shard_of
from dispatch.domain.ride import Ride, RideStatus
from dispatch.domain.rider import Rider
from dispatch.shard.crossshard.messages import OpenRide, UnlockRider
from dispatch.shard.links import send
from dispatch.shard.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)

# What the rider is told when the ride's shard could not open the ride (its id is taken).
REFUSED_OUTCOME = RideStatus.CANCELLED


def open_elsewhere(
    uow: UnitOfWork, ride_id: UUID, rider_id: UUID, pickup: Point, dropoff: Point, at: datetime
) -> None:
    """Ask the pickup's shard to open a ride whose rider's lock was just taken here."""
    body = OpenRide(str(ride_id), str(rider_id), pickup.lat, pickup.lng, dropoff.lat,
                    dropoff.lng, at.timestamp())  # fmt: skip
    send(uow, shard_of(rider_id), shard_of(ride_id), body, at)


def end_for_rider(uow: UnitOfWork, ride: Ride, at: datetime) -> None:
    """The ride ended (its status says how): end it for its rider, here or at home."""
    home = shard_of(ride.rider_id)
    if home == shard_of(ride.id):
        uow.get(Rider, ride.rider_id).end_ride(ride.id, ride.status, at)
    else:
        body = UnlockRider(str(ride.rider_id), str(ride.id), RideStatus(ride.status).value)
        send(uow, shard_of(ride.id), home, body, at)


def on_open_ride(
    uow: UnitOfWork, sender: int, msg: OpenRide, at: datetime, max_wait_s: float
) -> None:
    """At R: open the ride (its max wait runs from now, on this shard's clock)."""
    ride_id = UUID(msg.ride)
    if uow.exists(ride_id):
        # Never a repeat (the channel applies each message once): an id already taken here.
        log.warning("ride %s from shard %s: the id is taken; the rider's lock is let go",
                    ride_id, sender)  # fmt: skip
        body = UnlockRider(msg.rider, msg.ride, REFUSED_OUTCOME.value)
        send(uow, shard_of(ride_id), sender, body, at)
        return
    pickup, dropoff = Point(msg.pickup_lat, msg.pickup_lng), Point(msg.dropoff_lat, msg.dropoff_lng)
    uow.add(Ride.request(ride_id, UUID(msg.rider), pickup, dropoff, max_wait_s, at))


def on_unlock_rider(
    uow: UnitOfWork, sender: int, msg: UnlockRider, at: datetime, max_wait_s: float
) -> None:
    """At H: the ride ended at R; end it for the rider if it is still the rider's ride."""
    rider = uow.find(Rider, UUID(msg.rider))
    if rider is None or rider.active_ride != UUID(msg.ride):
        log.warning("unlock of rider %s for ride %s from shard %s: not its active ride",
                    msg.rider, msg.ride, sender)  # fmt: skip
        return
    rider.end_ride(UUID(msg.ride), RideStatus(msg.outcome), at)


MessageHandler = Callable[[UnitOfWork, int, Any, datetime, float], None]

MESSAGE_HANDLERS: dict[type, MessageHandler] = {
    OpenRide: on_open_ride,
    UnlockRider: on_unlock_rider,
}
