"""The matcher's folded state as plain values: what a shard checkpoint keeps of it.

``capture`` copies the state the matcher folded from the log (pending rides, open offers,
assigned rides, every driver's availability) at one log position; it is cheap (one copy of
the driver table, the rides are few) so a batch is not held up by it, and what it returns
is encoded later, a part at a time. ``load`` puts such a state into a fresh matcher, which
then folds the events after that position. Positions and the index are not in it: pings
are not events (a takeover warms the index from the locations topic), and when each ride
next searches is scheduling, not state (every loaded ride is ready at once).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from dispatch.domain.driver import Availability, DriverStatus, PlanState
from dispatch.domain.place_queues import PlaceRow
from dispatch.domain.pooling import Sharing
from dispatch.domain.products import Vehicle
from dispatch.matching.matcher import Matcher
from dispatch.matching.strategies import PendingRide
from dispatch.privacy import Opener, as_is, is_sealed

# id, pickup lat, pickup lng, requested at, request expires at, excluded driver ids, and
# the product (a row of a checkpoint taken before products has none: standard); with
# personal fields sealed (docs/PRIVACY.md), the pickup is one token ([lat, lng] under the
# rider's key) in place of lat, and lng is 0
# (None: the rider was erased, the ride has ended); a scheduled ride's row goes on with its
# time and whether it is overdue (format 5)
RideRow = tuple[str, float | str | None, float, float, float, list[str], *tuple[Any, ...]]
# a booked ride not yet dispatched, and whether it is asking for its rider's lock
ScheduledRow = tuple[RideRow, bool]
# ride, driver offered, offer expires at
OfferRow = tuple[RideRow, str, float]
# driver id, status, goes offline after its trip
DriverRow = tuple[str, str, bool]
# driver id, the product its vehicle is registered for, seats, accessible (only vehicles
# other than the default one: a driver with no row drives that)
VehicleRow = tuple[str, str, int, bool]
# a shared ride's terms: ride id, drop-off lat and lng (sealed: one token in place of lat,
# lng 0; None: erased), its sharing terms (``Sharing.to_data``), picked up at (None: not yet)
SharingRow = tuple[str, float | str | None, float, dict[str, Any], float | None]
# a driver's shared plan: driver id, serving it, its stops, the rides aboard, an open
# offer's plan (None: none)
PlanRow = tuple[str, bool, list[list[str]], list[str], list[list[str]] | None]


@dataclass(frozen=True, slots=True)
class Captured:
    """The matcher's folded state at one log position (rides copied, the rest immutable)."""

    pending: list[PendingRide]
    offers: list[tuple[PendingRide, UUID, float]]
    assigned: list[PendingRide]
    drivers: dict[UUID, Availability]
    # the surge window's requests (surge cell, time), None without surge
    surge: list[tuple[str, float]] | None = None
    # the vehicles of the drivers registered or arrived here (the default one left out)
    vehicles: dict[UUID, Vehicle] = field(default_factory=dict)
    # the drivers inside each geofenced place, each place's queue first in order
    places: list[PlaceRow] = field(default_factory=list)
    # the booked rides not yet dispatched, and whether each is asking for its rider's lock
    scheduled: list[tuple[PendingRide, bool]] = field(default_factory=list)
    # shared rides' terms, and the drivers' shared plans
    sharing: list[SharingRow] = field(default_factory=list)
    plans: list[PlanRow] = field(default_factory=list)


def capture(matcher: Matcher) -> Captured:
    return Captured(
        pending=[_copy(r) for r in matcher.pending.values()],
        offers=[(_copy(r), d, at) for d, at, r in matcher.offers.values()],
        assigned=[_copy(r) for r in matcher.assigned.values()],
        # the drivers the shard serves: other shards' are told again after a restore
        drivers={d: a for d, a in matcher.drivers.items() if d in matcher.own},
        surge=None if matcher.surge is None else matcher.surge.window(),
        vehicles=dict(matcher.vehicles),
        places=matcher.place_queues.rows(),
        scheduled=[
            (_copy(r), r.ride_id in matcher.scheduled.activating)
            for r in matcher.scheduled.booked.values()
        ],
        sharing=[
            (
                str(ride_id),
                None if dropoff is None else dropoff[0],
                0.0 if dropoff is None else dropoff[1],
                sharing.to_data(),
                matcher.pool.picked_up.get(ride_id),
            )
            for ride_id, (sharing, dropoff) in matcher.pool.terms.items()
        ],
        plans=[
            (
                str(d),
                s.pooled,
                [list(x) for x in s.plan],
                list(s.aboard),
                None if s.offer_plan is None else [list(x) for x in s.offer_plan],
            )
            for d, s in matcher.pool.plans.items()
        ],
    )


def ride_row(ride: PendingRide) -> RideRow:
    excluded = sorted(str(d) for d in ride.excluded)
    row: RideRow = (str(ride.ride_id), ride.lat, ride.lng, ride.requested_at, ride.expires_at,
                    excluded, ride.product)  # fmt: skip
    if ride.scheduled_for is not None:
        row = (*row, ride.scheduled_for, ride.overdue)
    return row


def scheduled_row(item: tuple[PendingRide, bool]) -> ScheduledRow:
    ride, activating = item
    return ride_row(ride), activating


def offer_row(offer: tuple[PendingRide, UUID, float]) -> OfferRow:
    ride, driver_id, expires_at = offer
    return ride_row(ride), str(driver_id), expires_at


def driver_row(item: tuple[UUID, Availability]) -> DriverRow:
    driver_id, (status, after_trip) = item
    return str(driver_id), str(status), after_trip


def vehicle_row(item: tuple[UUID, Vehicle]) -> VehicleRow:
    driver_id, v = item
    return str(driver_id), v.product, v.seats, v.accessible


def load(
    matcher: Matcher,
    pending: list[RideRow],
    offers: list[OfferRow],
    assigned: list[RideRow],
    drivers: list[DriverRow],
    surge: list[tuple[str, float]] | None = None,
    open: Opener = as_is,
    vehicles: Sequence[VehicleRow] = (),
    places: Sequence[PlaceRow] = (),
    scheduled: Sequence[ScheduledRow] = (),
    sharing: Sequence[SharingRow] = (),
    plans: Sequence[PlanRow] = (),
) -> None:
    """Put a captured state into ``matcher`` (fresh, nothing folded yet). ``surge``: the
    window's requests, when the checkpoint carries them; without (an older checkpoint) the
    window is rebuilt from the rides that had not ended, as before. ``vehicles``: the drivers'
    vehicles other than the default one (none from a checkpoint taken before vehicles,
    when every driver drove that). ``places``: who is inside each geofenced place and the
    queues (none from a checkpoint taken before places). ``sharing``, ``plans``: shared
    rides' terms and the drivers' shared plans (none before shared rides). ``open`` reads a
    sealed pickup, drop-off or place; a place row whose place reads as erased is left out,
    and so is a ride whose pickup is erased (its rider was
    erased after it ended, so the events after the checkpoint end it: the matcher ignores
    them)."""
    if matcher.pending or matcher.offers or matcher.assigned or matcher.drivers:
        raise ValueError("a matcher state is loaded into a fresh matcher only")
    demand = surge is None
    if surge is not None and matcher.surge is not None:
        matcher.surge.load_window([(str(cell), float(at)) for cell, at in surge])
    for driver_id, product, seats, accessible in vehicles:
        matcher.know_vehicle(UUID(driver_id), Vehicle(str(product), int(seats), bool(accessible)))
    for driver_id, status, after_trip in drivers:
        matcher.load_driver(UUID(driver_id), (DriverStatus(status), bool(after_trip)))
    opened = ((open(p, "place"), d, e, q) for p, d, e, q in places)  # sealed since 2026-12
    matcher.load_places([(p, str(d), float(e), None if q is None else float(q))
                         for p, d, e, q in opened if isinstance(p, str)])  # fmt: skip
    for row in pending:
        if (ride := _ride(row, open)) is not None:
            matcher.load_pending(ride, demand)
    for ride_row_, driver_id, expires_at in offers:
        if (ride := _ride(ride_row_, open)) is not None:
            matcher.load_offer(ride, UUID(driver_id), float(expires_at), demand)
    for row in assigned:
        if (ride := _ride(row, open)) is not None:
            matcher.load_assigned(ride, demand)
    for ride_row_, activating in scheduled:
        if (ride := _ride(ride_row_, open)) is not None and ride.scheduled_for is not None:
            matcher.scheduled.book(ride, bool(activating))
    for ride_id, lat, lng, terms, picked_up_at in sharing:
        dropoff = _place(lat, lng, "dropoff", open)  # None: erased (the ride ends later)
        matcher.pool.requested(UUID(ride_id), Sharing.from_data(terms), dropoff)
        if picked_up_at is not None:
            matcher.pool.started(UUID(ride_id), float(picked_up_at))
    for driver_id, pooled, plan, aboard, offer_plan in plans:
        matcher.pool.plans[UUID(driver_id)] = PlanState(
            bool(pooled), [[str(r), str(k)] for r, k in plan], [str(r) for r in aboard],
            None if offer_plan is None else [[str(r), str(k)] for r, k in offer_plan],
        )  # fmt: skip


def _place(
    lat: float | str | None, lng: float, field: str, open: Opener
) -> tuple[float, float] | None:
    """A row's place, opened when sealed; None when erased."""
    if lat is None:
        return None
    if is_sealed(lat):
        point = open(lat, field)
        if not isinstance(point, list):
            return None
        return float(point[0]), float(point[1])
    return float(lat), float(lng)


def _ride(row: RideRow, open: Opener = as_is) -> PendingRide | None:
    ride_id, lat, lng, requested_at, expires_at, excluded = row[:6]
    product = str(row[6]) if len(row) > 6 else "standard"
    scheduled_for = float(row[7]) if len(row) > 8 and row[7] is not None else None
    overdue = bool(row[8]) if len(row) > 8 else False
    if lat is None:
        return None
    if is_sealed(lat):
        pickup = open(lat, "pickup")
        if not isinstance(pickup, list):
            return None
        lat, lng = pickup
    return PendingRide(
        UUID(ride_id),
        float(lat),
        float(lng),
        float(requested_at),
        float(expires_at),
        {UUID(d) for d in excluded},
        product=product,
        scheduled_for=scheduled_for,
        overdue=overdue,
    )


def _copy(ride: PendingRide) -> PendingRide:
    return PendingRide(
        ride.ride_id, ride.lat, ride.lng, ride.requested_at, ride.expires_at,
        set(ride.excluded), ride.product, ride.scheduled_for, ride.overdue,
    )  # fmt: skip
