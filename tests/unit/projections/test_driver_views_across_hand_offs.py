"""The views of a driver handed off between shards (issue #14): the streams of the shards
that served it reach a view in any order between shards, and the view shows what the
shard serving it now says, whatever the order."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from dispatch.domain.driver import Driver, DriverStatus
from dispatch.domain.ids import new_id
from dispatch.log import LogEvent
from projections.drivers import DriversProjection
from projections.heatmap import HeatmapProjection
from projections.locations import LocationsProjection

DRIVER = str(new_id(0))
RIDE = str(new_id(1))


def event(shard: int, version: int, topic: str, **data: Any) -> LogEvent:
    return LogEvent(shard, version, DRIVER, version, topic, 100.0 + version, data)


# Home shard 0 registers it (with its vehicle) and hands it to shard 1, which hands it back
# (tenure 2); shard 0 then offers it a ride.
XL = {"product": "xl", "seats": 6, "accessible": False}
HOME = [
    event(0, 1, Driver.Created.TOPIC, name="Dee", vehicle=XL),
    event(0, 2, Driver.WentOnline.TOPIC),
    event(0, 3, Driver.HandedOff.TOPIC, to_shard=1, epoch=1),
    event(0, 4, Driver.Returned.TOPIC, epoch=2, from_shard=1, trips=1),
    event(0, 5, Driver.OfferReceived.TOPIC, ride_id=RIDE, expires_at="2026-01-01T00:00:00"),
]
AWAY = [
    event(1, 1, Driver.Arrived.TOPIC, name="Dee", epoch=1, from_shard=0, trips=0, vehicle=XL),
    event(1, 2, Driver.Released.TOPIC, ride_id=str(new_id(1)), reason="completed"),
    event(1, 3, Driver.HandedOff.TOPIC, to_shard=0, epoch=2),
]


def interleavings() -> list[list[LogEvent]]:
    """Every order that keeps each shard's own order."""
    out = []
    for picks in set(itertools.permutations([0] * len(HOME) + [1] * len(AWAY))):
        streams = [iter(HOME), iter(AWAY)]
        out.append([next(streams[p]) for p in picks])
    return out


@pytest.mark.parametrize("order", interleavings()[:: max(1, len(interleavings()) // 40)])
def test_every_order_of_the_shards_streams_shows_the_latest_tenures_word(
    order: list[LogEvent],
) -> None:
    drivers, locations, heatmap = DriversProjection(), LocationsProjection(), HeatmapProjection()
    views = (drivers.initial(), locations.initial(), heatmap.initial())
    for e in order:
        drivers.apply(views[0], e)
        locations.apply(views[1], e)
        heatmap.apply(views[2], e)

    row = views[0].rows[DRIVER]
    assert (row.status, row.ride_id) == (DriverStatus.OFFERED.value, RIDE)
    assert (row.offers, row.trips) == (1, 1), "counts from every shard that served it"
    assert row.vehicle == XL
    assert +views[0].by_status == {DriverStatus.OFFERED.value: 1}
    assert views[1].status[DRIVER] == DriverStatus.OFFERED.value
    assert DRIVER not in views[2].available
    assert views[0].tenures.serving(DRIVER) is None, "served at home again"


def test_a_driver_served_away_from_home_is_routed_there() -> None:
    drivers = DriversProjection()
    view = drivers.initial()
    for e in [*HOME[:3], AWAY[0]]:
        drivers.apply(view, e)

    assert view.tenures.serving(DRIVER) == 1
    assert view.rows[DRIVER].status == DriverStatus.AVAILABLE.value


def test_a_ride_of_a_tenure_that_ended_is_not_shown_once_the_next_began() -> None:
    """Shard 0 offered the driver a ride, closed the offer and handed the driver off; the
    view reads shard 1's arrival before shard 0's closing: the driver shows no ride."""
    home = [
        event(0, 1, Driver.Created.TOPIC, name="Dee"),
        event(0, 2, Driver.WentOnline.TOPIC),
        event(0, 3, Driver.OfferReceived.TOPIC, ride_id=RIDE, expires_at="2026-01-01T00:00:00"),
        event(0, 4, Driver.OfferClosed.TOPIC, ride_id=RIDE, outcome="declined"),
        event(0, 5, Driver.HandedOff.TOPIC, to_shard=1, epoch=1),
    ]
    arrived = event(1, 1, Driver.Arrived.TOPIC, name="Dee", epoch=1, from_shard=0, trips=0)
    drivers = DriversProjection()
    view = drivers.initial()
    for e in [*home[:3], arrived, *home[3:]]:
        drivers.apply(view, e)

    row = view.rows[DRIVER]
    assert (row.status, row.ride_id) == (DriverStatus.AVAILABLE.value, None)
    assert +view.by_status == {DriverStatus.AVAILABLE.value: 1}
