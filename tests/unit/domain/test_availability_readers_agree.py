"""Every reader of a driver's availability folds the domain's one rule: after any sequence
of events the aggregate can record, the log checker, the drivers, locations and heatmap
views and the matcher agree with the aggregate (going offline after the trip included)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from dispatch.domain.driver import Driver, DriverStatus
from dispatch.domain.errors import DomainError
from dispatch.invariants import InvariantChecker
from dispatch.log import LogEvent
from dispatch.matching.eta import StraightLineEta
from dispatch.matching.index import DriverIndex
from dispatch.matching.matcher import Matcher, MatcherConfig
from dispatch.matching.strategies import Greedy
from projections.drivers import DriversProjection
from projections.heatmap import HeatmapProjection
from projections.locations import LocationsProjection

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
# What a driver can do in each status (one of them is picked at every step, so every step
# records an event: random actions would mostly be refused and rarely reach a whole trip).
CAN = {
    DriverStatus.OFFLINE: ("online",),
    DriverStatus.AVAILABLE: ("offline", "offer"),
    DriverStatus.OFFERED: ("decline", "accept"),
    DriverStatus.EN_ROUTE: ("start", "end", "offline_after_trip"),
    DriverStatus.ON_TRIP: ("end", "offline_after_trip"),
}


def act(driver: Driver, action: str, ride: uuid.UUID, at: datetime) -> None:
    """Do ``action`` if the aggregate allows it now (a refusal records nothing)."""
    try:
        if action == "online":
            driver.go_online(at)
        elif action == "offline":
            driver.go_offline(False, at)
        elif action == "offline_after_trip":
            driver.go_offline(True, at)
        elif action == "offer":
            driver.receive_offer(ride, at + timedelta(seconds=15), at)
        elif action == "decline":
            driver.close_offer(ride, "declined", at)
        elif action == "accept":
            driver.assign(ride, at)
        elif action == "start":
            driver.start_trip(ride, at)
        else:
            driver.release(ride, "completed", at)
    except DomainError:
        return


@given(st.lists(st.integers(min_value=0, max_value=5), max_size=40))
@settings(max_examples=200, deadline=None)
def test_every_reader_folds_the_aggregates_availability(choices: list[int]) -> None:
    driver_id, ride = uuid.uuid4(), uuid.uuid4()
    driver = Driver.register(driver_id, "Dee", T0)
    for i, choice in enumerate(choices):
        can = CAN[driver.status]
        act(driver, can[choice % len(can)], ride, T0 + timedelta(seconds=i + 1))
    events = driver.collect_events()
    log = [
        LogEvent(0, n + 1, str(driver_id), e.originator_version, e.TOPIC, float(n), _data(e))
        for n, e in enumerate(events)
    ]

    checker, drivers, locations, heatmap = (
        InvariantChecker(),
        DriversProjection(),
        (LocationsProjection()),
        HeatmapProjection(),
    )
    d_view, l_view, h_view = drivers.initial(), locations.initial(), heatmap.initial()
    matcher = Matcher(DriverIndex[uuid.UUID](9, 30.0), StraightLineEta(), Greedy(),
                      MatcherConfig())  # fmt: skip
    for event, e in zip(events, log, strict=True):
        checker.check(e)
        d_view = drivers.apply(d_view, e)
        l_view = locations.apply(l_view, e)
        h_view = heatmap.apply(h_view, e)
        matcher.observe(event)

    expected = (driver.status, driver.offline_after_trip)
    assert checker.violations == []
    assert checker.drivers[str(driver_id)] == expected
    row = d_view.rows[str(driver_id)]
    assert (row.status, row.offline_after_trip) == expected
    shown = l_view.status.get(str(driver_id), DriverStatus.OFFLINE)
    assert shown == driver.status
    available = driver.status == DriverStatus.AVAILABLE
    assert (str(driver_id) in h_view.available) == available
    assert (driver_id in matcher.available) == available


def _data(event: Driver.Event) -> dict[str, object]:
    data = {k: v for k, v in vars(event).items() if k not in _ENVELOPE}
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in data.items()}


_ENVELOPE = {"originator_id", "originator_version", "timestamp", "originator_topic"}
