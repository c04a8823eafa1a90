"""Shared rides in the views (docs/ARCHITECTURE.md, "Shared rides"): a ride pooled to a
driver shows that driver, and a driver's trips and cancellations count the rides of its plan
that ended while others remained, as the aggregate counts them."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

from dispatch.adapters.sqlite.viewstore import SqliteViewStore
from dispatch.domain.driver import Driver
from dispatch.domain.geo import Point
from dispatch.domain.pooling import Sharing, Stop
from dispatch.domain.ride import DrivenTrip, Ride
from dispatch.log import LogEvent
from projections.drivers import DriversProjection
from projections.rides import RidesProjection
from projections.store import StoredViews, decode, encode, encode_changes
from projections.views import ViewSet, default_projections

T0 = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
TRIP = DrivenTrip(2_000, 400, {"distance": "test", "duration": "test"})
_ENVELOPE = {"originator_id", "originator_version", "timestamp", "originator_topic"}


def as_log(events: list[Any]) -> list[LogEvent]:
    out = []
    for n, e in enumerate(events, start=1):
        data = {k: (v.isoformat() if isinstance(v, datetime) else v)
                for k, v in vars(e).items() if k not in _ENVELOPE}  # fmt: skip
        out.append(LogEvent(0, n, str(e.originator_id), e.originator_version, e.TOPIC,
                            e.timestamp.timestamp(), data))  # fmt: skip
    return out


def pooled() -> tuple[Driver, Ride, Ride, Iterator[datetime], datetime]:
    """A driver on ride a, offered with a plan, and ride b pooled to it (its plan not yet
    extended): the driver, the rides, the clock and its last time."""
    at = iter(T0 + timedelta(seconds=s) for s in range(1, 100))
    terms = Sharing(1, 600.0, 1.5, 300.0)
    d = Driver.register(UUID(int=1), "d", T0)
    d.go_online(next(at))
    a = Ride.request(UUID(int=2), UUID(int=3), Point(37.77, -122.42), Point(37.8, -122.4), 900,
                     T0, sharing=terms)  # fmt: skip
    b = Ride.request(UUID(int=4), UUID(int=5), Point(37.77, -122.41), Point(37.8, -122.4), 900,
                     T0, sharing=terms)  # fmt: skip
    now = next(at)
    a.offer(d.id, now + timedelta(seconds=15), 60.0, 400.0, now)
    d.receive_offer(a.id, now + timedelta(seconds=15), now, plan=single_plan(a), times=[1.0, 2.0])
    now = next(at)
    a.accept(d.id, now)
    d.assign(a.id, now)
    now = next(at)
    b.pool(d.id, now)
    return d, a, b, at, now


def single_plan(a: Ride) -> tuple[Stop, Stop]:
    """Ride a's own stops: its pickup, then its drop-off."""
    return Stop(str(a.id), True), Stop(str(a.id), False)


def extended(a: Ride, b: Ride) -> tuple[Stop, ...]:
    """Both rides' stops: a's pickup, b's, a's drop-off, b's."""
    return (Stop(str(a.id), True), Stop(str(b.id), True), Stop(str(a.id), False),
            Stop(str(b.id), False))  # fmt: skip


def test_a_pooled_ride_shows_its_driver_and_the_plans_trips_are_counted() -> None:
    d, a, b, at, now = pooled()
    d.extend_plan(b.id, extended(a, b), [1.0, 2.0, 3.0, 4.0], now)
    for ride in (a, b):
        now = next(at)
        ride.arrive(d.id, now)
        ride.start_trip(d.id, now)
        d.start_trip(ride.id, now)
    now = next(at)
    a.complete(d.id, now, TRIP)
    d.release(a.id, "completed", now)  # b still aboard: PoolRideEnded
    mid = as_log([*a.collect_events(), *b.collect_events(), *d.collect_events()])
    mid.sort(key=lambda e: (e.at, e.position))
    rides, drivers = RidesProjection(), DriversProjection()
    r_view, d_view = rides.initial(), drivers.initial()
    for e in mid:
        r_view = rides.apply(r_view, e)
        d_view = drivers.apply(d_view, e)
    assert r_view[str(b.id)].driver_id == str(d.id)
    assert r_view[str(b.id)].status == "in_progress"
    row = d_view.rows[str(d.id)]
    assert (row.status, row.trips, row.ride_id) == ("on_trip", 1, None)
    assert [e.topic for e in mid if e.topic.startswith("dispatch.Driver.Pool")] == [
        Driver.PoolPickedUp.TOPIC,
        Driver.PoolRideEnded.TOPIC,
    ]
    # each rider sees their own stops' planned times (the extension's), nobody else's
    assert (r_view[str(a.id)].planned_pickup_at, r_view[str(a.id)].planned_dropoff_at) == (
        1.0,
        3.0,
    )
    assert (r_view[str(b.id)].planned_pickup_at, r_view[str(b.id)].planned_dropoff_at) == (
        2.0,
        4.0,
    )
    # the riders' active rides: a's ended, b's goes on
    assert r_view.active == {str(b.rider_id): str(b.id)}


def test_a_single_rides_offer_plans_nothing_and_its_end_frees_its_rider() -> None:
    d = Driver.register(UUID(int=1), "d", T0)
    d.go_online(T0)
    r = Ride.request(UUID(int=2), UUID(int=3), Point(37.77, -122.42), Point(37.8, -122.4), 900,
                     T0)  # fmt: skip
    now = T0 + timedelta(seconds=1)
    r.offer(d.id, now + timedelta(seconds=15), 60.0, 400.0, now)
    d.receive_offer(r.id, now + timedelta(seconds=15), now)
    log = as_log([*r.collect_events(), *d.collect_events()])
    rides = RidesProjection()
    view = rides.initial()
    for e in sorted(log, key=lambda e: (e.at, e.position)):
        view = rides.apply(view, e)
    row = view[str(r.id)]
    assert (row.planned_pickup_at, row.planned_dropoff_at) == (None, None)
    assert view.active == {str(r.rider_id): str(r.id)}
    r.cancel_by_rider(r.rider_id, "changed my mind", T0 + timedelta(seconds=5))
    for e in as_log(r.collect_events()):
        view = rides.apply(view, e)
    assert view.active == {}


def test_a_plan_extended_keeps_the_other_rides_planned_times(tmp_path: Path) -> None:
    """A driver's event changes the rows of its plan's rides (not its own aggregate): they
    are kept as changed, and the views taken up show their new planned times."""
    d, a, b, _, now = pooled()
    events = as_log([*a.collect_events(), *b.collect_events(), *d.collect_events()])
    d.extend_plan(b.id, extended(a, b), [1.0, 2.0, 3.0, 4.0], now)
    (plan_extended,) = as_log(d.collect_events())
    plan_extended = dataclasses.replace(plan_extended, position=len(events) + 1)
    views = ViewSet(default_projections())
    views.apply_page(sorted(events, key=lambda e: e.position))
    store = SqliteViewStore(tmp_path / "views.sqlite")
    store.save(encode(views.projections, views.states, "embedded", "g1"))
    views.take_changed()
    views.apply_page([plan_extended])
    changed = views.take_changed()
    assert str(a.id) in changed["rides"]  # the driver's event changed ride a's row
    store.keep_changes(
        encode_changes(views.projections, views.states, changed, "embedded", "g1", "g2")
    )
    kept = decode(store.load() or StoredViews("", {}))["rides"].view
    assert (kept[str(a.id)].planned_pickup_at, kept[str(a.id)].planned_dropoff_at) == (1.0, 3.0)
    assert kept == views.rides
