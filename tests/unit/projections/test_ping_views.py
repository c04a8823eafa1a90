"""The location and heatmap views keep the newest ping per driver, whatever the order and
however often a ping arrives (a process re-reads the pings it applied itself on Kafka)."""

from __future__ import annotations

import uuid

import h3

from dispatch.domain.driver import Driver
from dispatch.log import LogEvent
from dispatch.messages import Ping
from projections.heatmap import BASE_RESOLUTION, HeatmapProjection
from projections.locations import LocationsProjection

DRIVER = uuid.uuid4()
OLD = Ping(DRIVER, 37.7749, -122.4194, 100.0)
NEW = Ping(DRIVER, 37.8044, -122.2712, 104.0)  # Oakland: another heatmap cell


def online(driver_id: uuid.UUID) -> LogEvent:
    return LogEvent(0, 1, str(driver_id), 2, Driver.WentOnline.TOPIC, 99.0, {})


def test_an_older_or_repeated_ping_does_not_move_a_driver_in_the_location_view() -> None:
    p = LocationsProjection()
    view = p.apply(p.initial(), online(DRIVER))
    for ping in (NEW, OLD, NEW):
        view = p.apply_ping(view, ping)
    where = view.where(str(DRIVER), now=105.0)
    assert where is not None
    assert (where.lat, where.lng, where.at) == (NEW.lat, NEW.lng, NEW.at)
    assert [d for d, _ in view.index.nearest(NEW.lat, NEW.lng, 5, 500.0)] == [str(DRIVER)]
    assert view.index.nearest(OLD.lat, OLD.lng, 5, 500.0) == []
    assert view.index.position(str(DRIVER)) == (NEW.lat, NEW.lng, NEW.at)


def test_an_older_or_repeated_ping_does_not_move_supply_in_the_heatmap() -> None:
    p = HeatmapProjection()
    view = p.apply(p.initial(), online(DRIVER))
    for ping in (NEW, OLD, NEW, OLD):
        view = p.apply_ping(view, ping)
    new_cell = h3.latlng_to_cell(NEW.lat, NEW.lng, BASE_RESOLUTION)
    assert view.cells(BASE_RESOLUTION) == {new_cell: (1, 0)}


def test_a_ping_that_overtakes_the_going_online_event_places_the_driver_once_online() -> None:
    p = LocationsProjection()
    view = p.apply_ping(p.initial(), NEW)
    assert view.where(str(DRIVER), now=105.0) is None  # not online here yet: not shown
    view = p.apply(view, online(DRIVER))
    where = view.where(str(DRIVER), now=105.0)
    assert where is not None and (where.status, where.lat, where.lng) == (
        "available",
        NEW.lat,
        NEW.lng,
    )
    assert [d for d, _ in view.nearest(NEW.lat, NEW.lng, 5, 500.0, now=105.0)] == [where]
