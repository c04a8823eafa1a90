"""Command handlers: load state, decide, record events. One function per command type.

Each handler checks every aggregate it will touch before changing any, and returns the ids
of the aggregates it changed. A ``DomainError`` means the command is refused.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any
from uuid import UUID

from dispatch.domain.credentials import Credentials, PrincipalRole, credentials_id
from dispatch.domain.driver import Driver, DriverStatus, ReleaseReason
from dispatch.domain.errors import (
    AlreadyExists,
    BusyElsewhere,
    Forbidden,
    IllegalTransition,
    InvalidCommand,
    NotFound,
    NotHereYet,
    NotOpenedYet,
    QuoteExpired,
)
from dispatch.domain.geo import Point
from dispatch.domain.ids import shard_of
from dispatch.domain.pooling import Sharing
from dispatch.domain.products import DEFAULT_VEHICLE
from dispatch.domain.ride import Ride, RideStatus
from dispatch.domain.ride_fare import FareTerms
from dispatch.domain.rider import Rider
from dispatch.matching.geo import haversine_m
from dispatch.shard.crossing import (
    confirm_at_owner,
    end_for_rider,
    is_foreign,
    let_go,
    open_elsewhere,
    tell_started,
)
from dispatch.shard.policy import Policy
from dispatch.shard.trips import driven_trip
from dispatch.shard.unit_of_work import UnitOfWork
from dispatch.tokens import LEEWAY_S
from schemas import commands as c


def register_driver(uow: UnitOfWork, cmd: c.RegisterDriver, now: datetime, p: Policy) -> list[UUID]:
    if uow.exists(cmd.driver_id):
        raise AlreadyExists(f"id {cmd.driver_id} is already registered")
    vehicle = DEFAULT_VEHICLE if cmd.vehicle is None else cmd.vehicle.as_vehicle()
    try:
        p.catalog.check(vehicle)
    except ValueError as error:
        raise InvalidCommand(str(error)) from None
    uow.add(Driver.register(cmd.driver_id, cmd.name, now, vehicle))
    return [cmd.driver_id]


def register_rider(uow: UnitOfWork, cmd: c.RegisterRider, now: datetime, p: Policy) -> list[UUID]:
    if uow.exists(cmd.rider_id):
        raise AlreadyExists(f"id {cmd.rider_id} is already registered")
    uow.add(Rider.register(cmd.rider_id, cmd.name, now))
    return [cmd.rider_id]


def served_driver(uow: UnitOfWork, driver_id: UUID) -> Driver:
    """The driver, at the shard that serves it now; refused where it is not (``moved``, to
    where it went), and not yet known at a shard it is being handed to (not final)."""
    driver = uow.find(Driver, driver_id)
    if driver is None and shard_of(driver_id) != uow.shard:
        raise NotHereYet(
            f"driver {driver_id} is not served here (yet): a driver handed off to this "
            "shard is known here once the hand-off arrives; retry"
        )
    if driver is None:
        raise NotFound(f"driver {driver_id} not found")
    driver.check_here()
    return driver


def go_online(uow: UnitOfWork, cmd: c.GoOnline, now: datetime, p: Policy) -> list[UUID]:
    served_driver(uow, cmd.driver_id).go_online(now)
    return [cmd.driver_id]


def go_offline(uow: UnitOfWork, cmd: c.GoOffline, now: datetime, p: Policy) -> list[UUID]:
    served_driver(uow, cmd.driver_id).go_offline(cmd.after_trip, now)
    return [cmd.driver_id]


def request_ride(uow: UnitOfWork, cmd: c.RequestRide, now: datetime, p: Policy) -> list[UUID]:
    """At the rider's home shard: take the rider's one-active-ride lock for the ride (or,
    for a scheduled ride, book it among the rider's scheduled ones), and open the ride
    here, or ask the pickup's shard to (``crossing.open_elsewhere``)."""
    rider = uow.get(Rider, cmd.rider_id)
    here = shard_of(cmd.ride_id) == shard_of(cmd.rider_id)
    if here and uow.exists(cmd.ride_id):
        raise AlreadyExists(f"ride {cmd.ride_id} already exists")
    scheduled_for = cmd.scheduled_for
    if scheduled_for is not None:
        p.scheduling.check(scheduled_for, now)
        rider.check_not_erased()
    active = rider.active_ride
    if scheduled_for is None and active is not None and shard_of(active) != shard_of(cmd.rider_id):
        raise BusyElsewhere(
            f"rider {cmd.rider_id} already has an active ride {active} (in another market; "
            "if it has just ended, its end is on its way here: retry)"
        )
    if scheduled_for is None:
        rider.check_can_request()
    pickup = Point(cmd.pickup.lat, cmd.pickup.lng)
    dropoff = Point(cmd.dropoff.lat, cmd.dropoff.lng)
    if p.check_stops is not None:  # the authority: commands may come from any producer
        p.check_stops((pickup.lat, pickup.lng), (dropoff.lat, dropoff.lng))
    terms = fare_terms(cmd.fare.model_dump(mode="json") if cmd.fare is not None else None)
    check_quote_live(terms, now)
    product = cmd.product
    if product is None:  # a command sent before rides carried their own product
        product = "standard" if terms is None else terms.product
    if terms is not None and terms.product != product:
        raise InvalidCommand(
            f"the request's product {product!r} is not its fare terms' {terms.product!r}"
        )
    try:
        p.catalog.check_product(product)
    except ValueError as error:
        raise InvalidCommand(str(error)) from None
    if scheduled_for is not None:
        rider.book_ride(cmd.ride_id, scheduled_for, p.scheduling.max_per_rider, now)
        if here:
            booking = p.scheduling.booking(scheduled_for, now)
            uow.add(Ride.book(cmd.ride_id, cmd.rider_id, pickup, dropoff, booking, now, terms,
                              product))  # fmt: skip
        else:
            open_elsewhere(uow, cmd.ride_id, cmd.rider_id, pickup, dropoff, now, terms, product,
                           scheduled_for)  # fmt: skip
        return [cmd.ride_id, cmd.rider_id]
    sharing = sharing_of(cmd, pickup, dropoff, p) if cmd.shared else None
    if sharing is not None and not here:
        raise InvalidCommand(
            "shared: a shared ride's pickup must be in its rider's home market for now "
            "(shared rides stay in one shard)"
        )
    if here:
        # a shared ride expires at its latest pickup, when it is sooner: no vehicle could
        # pick it up within its wait bound after it
        wait_s = p.max_wait_s if sharing is None else min(p.max_wait_s, sharing.max_wait_s)
        ride = Ride.request(cmd.ride_id, cmd.rider_id, pickup, dropoff, wait_s, now, terms,
                            product, sharing)  # fmt: skip
        uow.add(ride)
    else:
        open_elsewhere(uow, cmd.ride_id, cmd.rider_id, pickup, dropoff, now, terms, product)
    rider.request_ride(cmd.ride_id, now)
    return [cmd.ride_id, cmd.rider_id]  # the ride first: the API answers a retry with it


def sharing_of(cmd: c.RequestRide, pickup: Point, dropoff: Point, p: Policy) -> Sharing:
    """A shared request's terms: its seats, the deployment's bounds, and the direct trip's
    seconds by the straight-line estimate."""
    if p.pool is None:
        raise InvalidCommand(
            "shared: shared rides are not enabled on this deployment (DISPATCH_POOL)"
        )
    direct_s = haversine_m(pickup.lat, pickup.lng, dropoff.lat, dropoff.lng) * p.seconds_per_m
    return Sharing.of(cmd.seats, p.pool, round(direct_s, 1))


def fare_terms(data: dict[str, Any] | None) -> FareTerms | None:
    """The fare terms of a request (or of an ``OpenRide``), if it carries any."""
    if data is None:
        return None
    try:
        return FareTerms.from_data(data)
    except (KeyError, TypeError, ValueError, ArithmeticError) as error:
        raise InvalidCommand(f"the request's fare terms are malformed: {error}") from None


def check_quote_live(terms: FareTerms | None, now: datetime) -> None:
    """``QuoteExpired`` if the request's quote had expired by ``now`` (the shard's clock,
    with the tokens' leeway, as the API checks it)."""
    expires_at = terms.quote.expires_at if terms is not None and terms.quote else None
    if expires_at is not None and expires_at <= now.timestamp() - LEEWAY_S:
        raise QuoteExpired("quote expired: ask for a new one (POST /fares/estimate)")


def cancel_ride(uow: UnitOfWork, cmd: c.CancelRide, now: datetime, p: Policy) -> list[UUID]:
    ride = uow.find(Ride, cmd.ride_id)
    if ride is None and shard_of(cmd.rider_id) != shard_of(cmd.ride_id):
        raise NotOpenedYet(
            f"ride {cmd.ride_id} is not open here (yet): a ride requested from another "
            "market opens at its pickup's shard shortly; retry"
        )
    if ride is None:
        raise NotFound(f"ride {cmd.ride_id} not found")
    if ride.rider_id != cmd.rider_id:
        raise Forbidden(f"ride {cmd.ride_id} belongs to another rider")
    return _cancel(
        uow, ride, "cancelled_by_rider", now,
        lambda: ride.cancel_by_rider(cmd.rider_id, cmd.reason, now),
    )  # fmt: skip


def operator_cancel_ride(
    uow: UnitOfWork, cmd: c.OperatorCancelRide, now: datetime, p: Policy
) -> list[UUID]:
    """A dispatcher (or admin) cancels a ride; its event names them and their role (the
    audit trail)."""
    ride = uow.find(Ride, cmd.ride_id)
    if ride is None:
        raise NotFound(f"ride {cmd.ride_id} not found")
    return _cancel(
        uow, ride, "cancelled_by_operator", now,
        lambda: ride.cancel_by_operator(
            cmd.operator_id, cmd.operator_name, cmd.operator_role, cmd.reason, now
        ),
    )  # fmt: skip


def _cancel(
    uow: UnitOfWork,
    ride: Ride,
    reason: ReleaseReason,
    now: datetime,
    decide: Callable[[], UUID | None],
) -> list[UUID]:
    """Cancel ``ride`` (``decide`` records the cancellation and returns the driver it
    held, if any), let its driver go (here or at the driver's owner) and end it for the
    rider."""
    status, asking = ride.status, ride.asking
    held = ride.offered_to or ride.driver_id
    elsewhere = held is not None and is_foreign(ride, held)
    driver_id = decide()
    changed = [ride.id]
    if asking is not None:
        let_go(uow, ride, asking, "withdrawn", now)
    if driver_id is not None and elsewhere:
        let_go(uow, ride, driver_id, "withdrawn" if status == RideStatus.OFFERED else reason, now)
    elif driver_id is not None:
        driver = uow.get(Driver, driver_id)
        if status == RideStatus.OFFERED:
            driver.close_offer(ride.id, "withdrawn", now)
        else:
            driver.release(ride.id, reason, now)
        changed.append(driver_id)
    end_for_rider(uow, ride, now)  # the status its ending left
    if shard_of(ride.rider_id) == shard_of(ride.id):
        changed.insert(1, ride.rider_id)
    return changed


def accept_offer(uow: UnitOfWork, cmd: c.AcceptOffer, now: datetime, p: Policy) -> list[UUID]:
    """At the shard that serves the driver, the single commit point of its assignment. A
    ride of another shard is told by message (``Confirmed``) and records the acceptance
    when it arrives."""
    if shard_of(cmd.ride_id) != uow.shard:
        confirm_at_owner(uow, served_driver(uow, cmd.driver_id), cmd.ride_id, now)
        return [cmd.driver_id]
    ride = uow.get(Ride, cmd.ride_id)
    driver = served_driver(uow, cmd.driver_id)
    ride.check_offer_response(driver.id, now)
    driver.check_holds(ride.id, DriverStatus.OFFERED)
    ride.accept(driver.id, now)
    driver.assign(ride.id, now)
    return [ride.id, driver.id]


def decline_offer(uow: UnitOfWork, cmd: c.DeclineOffer, now: datetime, p: Policy) -> list[UUID]:
    ride = uow.get(Ride, cmd.ride_id)
    if is_foreign(ride, cmd.driver_id):  # the owner frees the driver when told
        ride.decline(cmd.driver_id, now)
        let_go(uow, ride, cmd.driver_id, "declined", now)
        return [ride.id]
    driver = uow.get(Driver, cmd.driver_id)
    ride.check_offer_response(driver.id, now)
    driver.check_holds(ride.id, DriverStatus.OFFERED)
    ride.decline(driver.id, now)
    driver.close_offer(ride.id, "declined", now)
    return [ride.id, driver.id]


def mark_arrived(uow: UnitOfWork, cmd: c.MarkArrived, now: datetime, p: Policy) -> list[UUID]:
    ride = uow.get(Ride, cmd.ride_id)
    if not is_foreign(ride, cmd.driver_id):
        uow.get(Driver, cmd.driver_id)
    ride.arrive(cmd.driver_id, now)
    return [cmd.ride_id]


def start_trip(uow: UnitOfWork, cmd: c.StartTrip, now: datetime, p: Policy) -> list[UUID]:
    ride = uow.get(Ride, cmd.ride_id)
    if is_foreign(ride, cmd.driver_id):  # the owner is told: it shows the driver on its trip
        ride.start_trip(cmd.driver_id, now)
        tell_started(uow, ride, cmd.driver_id, now)
        return [ride.id]
    driver = uow.get(Driver, cmd.driver_id)
    ride.check_driver(driver.id, RideStatus.DRIVER_ARRIVED, "start")
    driver.check_holds(ride.id, DriverStatus.EN_ROUTE)
    ride.start_trip(driver.id, now)
    driver.start_trip(ride.id, now)
    return [ride.id, driver.id]


def complete_trip(uow: UnitOfWork, cmd: c.CompleteTrip, now: datetime, p: Policy) -> list[UUID]:
    ride = uow.get(Ride, cmd.ride_id)
    changed = [ride.id]
    trip = driven_trip(ride, now, p)
    if is_foreign(ride, cmd.driver_id):
        ride.complete(cmd.driver_id, now, trip)
        let_go(uow, ride, cmd.driver_id, "completed", now)
    else:
        driver = uow.get(Driver, cmd.driver_id)
        ride.check_driver(driver.id, RideStatus.IN_PROGRESS, "complete")
        driver.check_holds(ride.id, DriverStatus.ON_TRIP)
        ride.complete(driver.id, now, trip)
        driver.release(ride.id, "completed", now)
        changed.append(driver.id)
    end_for_rider(uow, ride, now)
    if shard_of(ride.rider_id) == shard_of(ride.id):
        changed.append(ride.rider_id)
    return changed


def driver_cancel(uow: UnitOfWork, cmd: c.DriverCancel, now: datetime, p: Policy) -> list[UUID]:
    ride = uow.get(Ride, cmd.ride_id)
    if is_foreign(ride, cmd.driver_id):
        ride.cancel_by_driver(cmd.driver_id, cmd.reason, now)
        let_go(uow, ride, cmd.driver_id, "cancelled_by_driver", now)
        return [ride.id]
    driver = uow.get(Driver, cmd.driver_id)
    ride.check_driver_cancel(driver.id)
    driver.check_holds(ride.id, DriverStatus.EN_ROUTE)
    ride.cancel_by_driver(driver.id, cmd.reason, now)
    driver.release(ride.id, "cancelled_by_driver", now)
    return [ride.id, driver.id]


def erase_rider(uow: UnitOfWork, cmd: c.EraseRider, now: datetime, p: Policy) -> list[UUID]:
    """At the rider's home shard (docs/PRIVACY.md): ``Rider.Erased``; the application
    deletes the rider's key with the batch (``ShardApplication.commit``). The rider's
    tokens are revoked in the same batch (``_revoke_erased``). Erasing twice changes
    nothing and is accepted."""
    _check_erasable(p)
    rider = uow.get(Rider, cmd.rider_id)
    if not rider.erase(_operator(cmd), now):
        return []
    return [rider.id, _revoke_erased(uow, cmd, "rider", rider.id, now)]


def erase_driver(uow: UnitOfWork, cmd: c.EraseDriver, now: datetime, p: Policy) -> list[UUID]:
    """At the driver's home shard, which serves the driver (docs/PRIVACY.md): as
    ``erase_rider``, for an offline driver."""
    _check_erasable(p)
    driver = uow.get(Driver, cmd.driver_id)
    if not driver.erase(_operator(cmd), now):
        return []
    return [driver.id, _revoke_erased(uow, cmd, "driver", driver.id, now)]


ERASED_REASON = "erased"  # the reason of the revocation an erasure records


def _revoke_erased(
    uow: UnitOfWork,
    cmd: c.EraseRider | c.EraseDriver,
    role: PrincipalRole,
    subject: UUID,
    now: datetime,
) -> UUID:
    """Revoke every token of an erased subject, in the erasing batch: their credentials
    live in their home shard, where the erasure is decided, so the erasure and the
    revocation are saved (Kafka: committed) together or not at all. By the subject (no
    caller version: the API took their token as current) or by the admin who erased."""
    credentials = uow.find(Credentials, credentials_id(role, subject))
    if credentials is None:
        credentials = Credentials.open(role, subject, now)
        uow.add(credentials)
    operator = _operator(cmd)
    by = None if operator is None else (UUID(operator[0]), operator[1], operator[2])
    credentials.revoke(None, ERASED_REASON, now, by)
    return credentials.id


def _operator(cmd: c.EraseRider | c.EraseDriver) -> tuple[str, str, str] | None:
    """The admin who erases (id, name, role: the audit fields), or None (the subject)."""
    if cmd.by == "self":
        return None
    assert cmd.operator_id is not None and cmd.operator_name and cmd.operator_role
    return str(cmd.operator_id), cmd.operator_name, cmd.operator_role


def _check_erasable(p: Policy) -> None:
    if not p.erasable:
        raise IllegalTransition(
            "erasure needs personal fields sealed, which this shard's application does not "
            "do (docs/PRIVACY.md): nothing erased"
        )


def revoke_tokens(uow: UnitOfWork, cmd: c.RevokeTokens, now: datetime, p: Policy) -> list[UUID]:
    """Raise a principal's token version, at the shard that keeps it (a driver's or rider's
    home, which knows whether it exists; an operator's in shard 0, as operators are not
    registered)."""
    role, principal = cmd.principal_role, cmd.principal_id
    if (role == "driver" and uow.find(Driver, principal) is None) or (
        role == "rider" and uow.find(Rider, principal) is None
    ):
        raise NotFound(f"{role} {principal} not found")
    credentials = uow.find(Credentials, cmd.credentials_id)
    if credentials is None:
        credentials = Credentials.open(cmd.principal_role, cmd.principal_id, now)
        uow.add(credentials)
    operator = None
    if cmd.operator_id is not None:
        if cmd.operator_name is None or cmd.operator_role is None:  # the schema refuses it
            raise InvalidCommand("an operator's revocation names the operator and role")
        operator = (cmd.operator_id, cmd.operator_name, cmd.operator_role)
    credentials.revoke(cmd.caller_token_version, cmd.reason, now, operator)
    return [credentials.id]


Handler = Callable[[UnitOfWork, Any, datetime, Policy], list[UUID]]

HANDLERS: dict[str, Handler] = {
    "register_driver": register_driver,
    "register_rider": register_rider,
    "go_online": go_online,
    "go_offline": go_offline,
    "request_ride": request_ride,
    "cancel_ride": cancel_ride,
    "operator_cancel_ride": operator_cancel_ride,
    "accept_offer": accept_offer,
    "decline_offer": decline_offer,
    "mark_arrived": mark_arrived,
    "start_trip": start_trip,
    "complete_trip": complete_trip,
    "driver_cancel": driver_cancel,
    "erase_rider": erase_rider,
    "erase_driver": erase_driver,
    "revoke_tokens": revoke_tokens,
}
