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
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from dispatch.domain.driver import Driver, DriverStatus, ReleaseReason, vehicle_of
from dispatch.domain.errors import IllegalTransition
from dispatch.domain.geo import Point
from dispatch.domain.ids import shard_of
from dispatch.domain.products import DEFAULT_VEHICLE, Vehicle
from dispatch.domain.ride import MOVED, Ride, RideStatus
from dispatch.domain.ride_fare import FareTerms
from dispatch.domain.rider import Rider
from dispatch.shard.carried import keep_carried, records_to_carry
from dispatch.shard.crossshard.messages import (
    ActivateRide,
    Confirmed,
    Envelope,
    Granted,
    HandOff,
    Moved,
    OpenRide,
    Refused,
    Release,
    Reserve,
    RideActivated,
    Started,
    UnlockRider,
)
from dispatch.shard.links import send
from dispatch.shard.policy import Policy
from dispatch.shard.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)

# What the rider is told when the ride's shard could not open the ride (its id is taken).
REFUSED_OUTCOME = RideStatus.CANCELLED


def open_elsewhere(
    uow: UnitOfWork,
    ride_id: UUID,
    rider_id: UUID,
    pickup: Point,
    dropoff: Point,
    at: datetime,
    fare: FareTerms | None = None,
    product: str | None = None,
    scheduled_for: datetime | None = None,
) -> None:
    """Ask the pickup's shard to open a ride whose rider's lock was just taken here (with
    its fare terms and product: the ride records them there), or, ``scheduled_for`` given,
    to book a ride the rider just booked here."""
    terms = None if fare is None else fare.to_data()
    when = None if scheduled_for is None else scheduled_for.timestamp()
    body = OpenRide(str(ride_id), str(rider_id), pickup.lat, pickup.lng, dropoff.lat,
                    dropoff.lng, at.timestamp(), terms, product, when)  # fmt: skip
    send(uow, shard_of(rider_id), shard_of(ride_id), body, at)


def end_for_rider(uow: UnitOfWork, ride: Ride, at: datetime) -> None:
    """The ride ended (its status says how): end it for its rider, here or at home."""
    home = shard_of(ride.rider_id)
    if home == shard_of(ride.id):
        uow.get(Rider, ride.rider_id).end_ride(ride.id, ride.status, at)
    else:
        body = UnlockRider(str(ride.rider_id), str(ride.id), RideStatus(ride.status).value)
        send(uow, shard_of(ride.id), home, body, at)


def on_open_ride(uow: UnitOfWork, sender: int, msg: OpenRide, at: datetime, p: Policy) -> None:
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
    fare = None if msg.fare is None else FareTerms.from_data(msg.fare)
    if msg.scheduled_for is not None:  # checked at H, on its clock, when it was booked
        booking = p.scheduling.booking(datetime.fromtimestamp(msg.scheduled_for, UTC), at)
        product = msg.product or ("standard" if fare is None else fare.product)
        uow.add(Ride.book(ride_id, UUID(msg.rider), pickup, dropoff, booking, at, fare, product))
        return
    uow.add(
        Ride.request(ride_id, UUID(msg.rider), pickup, dropoff, p.max_wait_s, at, fare, msg.product)
    )


def start_scheduled(uow: UnitOfWork, ride: Ride, at: datetime) -> None:
    """At R: a scheduled ride found due (``Ride.DispatchDue`` just recorded) asks for its
    rider's lock: here, in the same transaction, or at the rider's home shard."""
    home = shard_of(ride.rider_id)
    if home != shard_of(ride.id):
        send(uow, shard_of(ride.id), home, ActivateRide(str(ride.rider_id), str(ride.id)), at)
        return
    busy = uow.get(Rider, ride.rider_id).activate(ride.id, at)
    _activated(ride, busy, at)


def _activated(ride: Ride, busy_with: UUID | None, at: datetime) -> None:
    if busy_with is None:
        ride.start_dispatch(at)
    else:
        ride.hold_dispatch(busy_with, at)


def on_activate_ride(
    uow: UnitOfWork, sender: int, msg: ActivateRide, at: datetime, p: Policy
) -> None:
    """At H: make the scheduled ride the rider's active ride, unless another is (it wins);
    answer either way. A ride the rider no longer holds (ended: its ``UnlockRider``, sent
    after this message, is on its way) gets no answer: it has ended at R."""
    rider = uow.find(Rider, UUID(msg.rider))
    ride_id = UUID(msg.ride)
    if rider is None or not rider.holds(ride_id):
        log.warning("activation of ride %s for rider %s from shard %s: not the rider's",
                    msg.ride, msg.rider, sender)  # fmt: skip
        return
    busy = rider.activate(ride_id, at)
    body = RideActivated(msg.rider, msg.ride, None if busy is None else str(busy))
    send(uow, uow.shard, sender, body, at)


def on_ride_activated(
    uow: UnitOfWork, sender: int, msg: RideActivated, at: datetime, p: Policy
) -> None:
    """At R: the rider's home shard answered a scheduled ride's activation (a ride that
    has ended or stopped asking meanwhile ignores it)."""
    ride = uow.find(Ride, UUID(msg.ride))
    if ride is None or ride.status != RideStatus.SCHEDULED or not ride.activating:
        return
    _activated(ride, None if msg.busy_with is None else UUID(msg.busy_with), at)


def on_unlock_rider(
    uow: UnitOfWork, sender: int, msg: UnlockRider, at: datetime, p: Policy
) -> None:
    """At H: the ride ended at R; end it for the rider if it is still the rider's ride
    (active or scheduled)."""
    rider = uow.find(Rider, UUID(msg.rider))
    if rider is None or not rider.holds(UUID(msg.ride)):
        log.warning("unlock of rider %s for ride %s from shard %s: not its active ride",
                    msg.rider, msg.ride, sender)  # fmt: skip
        return
    rider.end_ride(UUID(msg.ride), RideStatus(msg.outcome), at)


# -- offers across shards: the ride's shard R asks the driver's owner O ---------------------
def is_foreign(ride: Ride, driver_id: UUID) -> bool:
    """Whether the ride holds ``driver_id`` (asked, offered or assigned) through a
    reservation at another shard, the driver's owner (ask before changing the ride)."""
    return ride.through_owner(driver_id) is not None


def owned_here(uow: UnitOfWork, driver_id: UUID) -> Driver | None:
    """The driver, if this shard serves it now (not handed off, not another's)."""
    driver = uow.find(Driver, driver_id)
    return driver if driver is not None and driver.status != DriverStatus.HANDED_OFF else None


def ask(uow: UnitOfWork, ride: Ride, driver_id: UUID, owner: int, eta_s: float,
        distance_m: float, at: datetime) -> None:  # fmt: skip
    """At R: ask the driver's owner (as R knows it) to hold it for the ride."""
    resv = ride.ask(driver_id, owner, eta_s, distance_m, at)
    send(uow, uow.shard, owner, Reserve(resv, str(ride.id), str(driver_id)), at)


def let_go(uow: UnitOfWork, ride: Ride, driver_id: UUID, reason: str, at: datetime) -> None:
    """At R: the ride no longer counts on a driver of another shard (its ask, offer or
    assignment): the owner it asked frees it when the message arrives."""
    assert ride.resv is not None
    owner = ride.owner if ride.owner is not None else shard_of(driver_id)
    body = Release(ride.resv, str(ride.id), str(driver_id), reason)
    send(uow, uow.shard, owner, body, at)


def tell_started(uow: UnitOfWork, ride: Ride, driver_id: UUID, at: datetime) -> None:
    """At R: the trip of a ride whose driver another shard serves has started; its owner
    is told, so that it shows the driver on its trip."""
    assert ride.resv is not None
    owner = ride.owner if ride.owner is not None else shard_of(driver_id)
    send(uow, uow.shard, owner, Started(ride.resv, str(ride.id), str(driver_id)), at)


def on_started(uow: UnitOfWork, sender: int, msg: Started, at: datetime, p: Policy) -> None:
    """At O: the driver assigned under this reservation is on its trip (if it still holds
    the ride: a Release may have overtaken nothing, as one channel keeps order)."""
    driver = uow.find(Driver, UUID(msg.driver))
    if driver is None or driver.ride_id != UUID(msg.ride) or driver.resv != msg.resv:
        return
    if driver.status == DriverStatus.EN_ROUTE:
        driver.start_trip(driver.ride_id, at)


def hand_off(uow: UnitOfWork, driver: Driver, to: int, at: datetime) -> None:
    """At O: a free driver's availability goes to shard ``to`` (the region it is in)."""
    records = records_to_carry(uow, driver, at)
    epoch = driver.hand_off(to, at)
    v = vehicle_of(driver)
    body = HandOff(str(driver.id), epoch, driver.name, driver.trips, records, v.product, v.seats,
                   v.accessible)  # fmt: skip
    send(uow, uow.shard, to, body, at)


def on_hand_off(uow: UnitOfWork, sender: int, msg: HandOff, at: datetime, p: Policy) -> None:
    """At O': serve the driver from now on (a later tenure than any this shard had), with
    the live records of its commands that the hand-off carried."""
    driver_id = UUID(msg.driver)
    driver = uow.find(Driver, driver_id)
    if driver is not None and not (
        driver.status == DriverStatus.HANDED_OFF and msg.epoch > driver.epoch
    ):  # one owner at a time: a hand-off to a shard that serves the driver is a bug
        log.error("hand-off of driver %s (tenure %s) from shard %s: shard %s serves it "
                  "(%s, tenure %s); ignored", driver_id, msg.epoch, sender, uow.shard,
                  driver.status, driver.epoch)  # fmt: skip
        return
    commands = keep_carried(uow, msg.records, sender, p.idempotency_window_s, at)
    if driver is None:
        vehicle = DEFAULT_VEHICLE
        if msg.product:
            vehicle = Vehicle(msg.product, msg.seats, msg.accessible)
        uow.add(
            Driver.arrive(driver_id, msg.name, msg.epoch, sender, msg.trips, commands, at, vehicle)
        )
    else:
        driver.come_back(msg.epoch, sender, msg.trips, commands, at)


def on_reserve(uow: UnitOfWork, sender: int, msg: Reserve, at: datetime, p: Policy) -> None:
    """At O: hold the driver if it is free (the compare-and-set of the protocol), until the
    offer timeout on this shard's clock; answer either way (``Moved`` where it went, when
    this shard does not serve it)."""
    here = uow.shard
    driver = uow.find(Driver, UUID(msg.driver))
    if driver is None or driver.status == DriverStatus.HANDED_OFF:
        to = driver.handed_to if driver is not None else None
        send(uow, here, sender, Moved(msg.resv, msg.ride, msg.driver, to), at)
        return
    if driver.status != DriverStatus.AVAILABLE:
        send(uow, here, sender, Refused(msg.resv, msg.ride, msg.driver, driver.status.value), at)
        return
    expires = at + timedelta(seconds=p.offer_timeout_s)
    driver.receive_offer(UUID(msg.ride), expires, at, resv=msg.resv)
    send(uow, here, sender, Granted(msg.resv, msg.ride, msg.driver, expires.timestamp()), at)


_CLOSED = {"declined": "declined", "expired": "expired"}
_RELEASED: dict[str, ReleaseReason] = {
    "completed": "completed",
    "cancelled_by_driver": "cancelled_by_driver",
    "cancelled_by_rider": "cancelled_by_rider",
    "cancelled_by_operator": "cancelled_by_operator",
}


def on_release(uow: UnitOfWork, sender: int, msg: Release, at: datetime, p: Policy) -> None:
    """At O: free the driver if it still holds the ride under this reservation."""
    driver = uow.find(Driver, UUID(msg.driver))
    if driver is None or driver.ride_id != UUID(msg.ride) or driver.resv != msg.resv:
        return  # already free, or holding another ride: nothing of this reservation is left
    if driver.status == DriverStatus.OFFERED:
        outcome = _CLOSED.get(msg.reason, "withdrawn")
        driver.close_offer(driver.ride_id, outcome, at)  # type: ignore[arg-type]
    else:
        reason = _RELEASED.get(msg.reason, "withdrawn")
        driver.release(driver.ride_id, reason, at)


def confirm_at_owner(uow: UnitOfWork, driver: Driver, ride_id: UUID, at: datetime) -> None:
    """At O, the commit point: the driver accepted a hold for a ride of another shard."""
    driver.check_holds(ride_id, DriverStatus.OFFERED)
    if driver.offer_expires_at is not None and at >= driver.offer_expires_at:
        raise IllegalTransition(f"the offer of ride {ride_id} expired")
    driver.assign(ride_id, at)
    body = Confirmed(driver.resv, str(ride_id), str(driver.id))
    send(uow, uow.shard, shard_of(ride_id), body, at)


def _current(uow: UnitOfWork, resv: str, ride: str, driver: str) -> Ride | None:
    found = uow.find(Ride, UUID(ride))
    if found is None or not found.is_active or not found.is_current(resv, UUID(driver)):
        return None  # late: the ride let go of this reservation (its Release is on its way)
    return found


def on_granted(uow: UnitOfWork, sender: int, msg: Granted, at: datetime, p: Policy) -> None:
    ride = _current(uow, msg.resv, msg.ride, msg.driver)
    if ride is not None and ride.asking == UUID(msg.driver):
        ride.granted(UUID(msg.driver), datetime.fromtimestamp(msg.expires_at, UTC), at)


def on_refused(uow: UnitOfWork, sender: int, msg: Refused | Moved, at: datetime,
               p: Policy) -> None:  # fmt: skip
    ride = _current(uow, msg.resv, msg.ride, msg.driver)
    if ride is not None and ride.asking == UUID(msg.driver):
        if isinstance(msg, Refused):
            ride.end_ask(UUID(msg.driver), msg.reason, at)
        else:  # where it went, if known: the ride's shard asks there next
            ride.end_ask(UUID(msg.driver), MOVED, at, moved_to=msg.owner)


def on_confirmed(uow: UnitOfWork, sender: int, msg: Confirmed, at: datetime, p: Policy) -> None:
    ride = _current(uow, msg.resv, msg.ride, msg.driver)
    if ride is not None and ride.status == RideStatus.OFFERED:
        ride.confirmed(UUID(msg.driver), at)


def undo_failed(uow: UnitOfWork, envelope: Envelope, at: datetime) -> None:
    """A message that could not be applied (a bug, a damaged record): undo what it stood
    for where that matters. An ``OpenRide`` not opened lets the rider's lock go; the others
    are answered by their senders' own timers (an ask withdrawn, a hold expired)."""
    body = envelope.body
    if isinstance(body, OpenRide):
        unlock = UnlockRider(body.rider, body.ride, REFUSED_OUTCOME.value)
        send(uow, envelope.receiver, envelope.sender, unlock, at)


MessageHandler = Callable[[UnitOfWork, int, Any, datetime, Policy], None]

MESSAGE_HANDLERS: dict[type, MessageHandler] = {
    OpenRide: on_open_ride,
    UnlockRider: on_unlock_rider,
    ActivateRide: on_activate_ride,
    RideActivated: on_ride_activated,
    Reserve: on_reserve,
    Release: on_release,
    Started: on_started,
    Granted: on_granted,
    Refused: on_refused,
    Moved: on_refused,
    Confirmed: on_confirmed,
    HandOff: on_hand_off,
}
