"""``next_availability`` tolerates events out of place (a damaged or hand-made log, which
the aggregate never records and the log checker reports): every reader of a driver's
availability must still fold such a log the same way, so the views and the matcher never
disagree with one another on what the checker flags."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from dispatch.domain.driver import REGISTERED, Driver, DriverStatus, next_availability
from dispatch.domain.products import DEFAULT_VEHICLE
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
RIDE = str(uuid.uuid4())
# Every event that moves a driver, with the fields it carries.
EVENTS: list[tuple[type[Any], dict[str, Any]]] = [
    (Driver.WentOnline, {}),
    (Driver.WentOffline, {}),
    (Driver.OfflineAfterTripRequested, {}),
    (Driver.OfferReceived, {"ride_id": RIDE, "expires_at": T0}),
    (Driver.OfferClosed, {"ride_id": RIDE, "outcome": "declined"}),
    (Driver.Assigned, {"ride_id": RIDE}),
    (Driver.TripStarted, {"ride_id": RIDE}),
    (Driver.Released, {"ride_id": RIDE, "reason": "completed"}),
]


def fold_everywhere(driver_id: uuid.UUID, picks: list[int]) -> dict[str, Any]:
    """Registration, then the picked events in any order; what each reader ends with."""
    events: list[Any] = [
        Driver.Created(
            originator_id=driver_id,
            originator_version=1,
            timestamp=T0,
            originator_topic="dispatch.domain.driver:Driver",
            name="Dee",
            vehicle=DEFAULT_VEHICLE.to_data(),
        )
    ]
    for n, pick in enumerate(picks):
        cls, fields = EVENTS[pick]
        at = T0 + timedelta(seconds=n + 1)
        events.append(
            cls(originator_id=driver_id, originator_version=n + 2, timestamp=at, **fields)
        )
    checker, drivers, locations, heatmap = (
        InvariantChecker(),
        DriversProjection(),
        LocationsProjection(),
        HeatmapProjection(),
    )
    d_view, l_view, h_view = drivers.initial(), locations.initial(), heatmap.initial()
    matcher = Matcher(DriverIndex[uuid.UUID](9, 30.0), StraightLineEta(), Greedy(),
                      MatcherConfig())  # fmt: skip
    for n, event in enumerate(events):
        data = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in
                vars(event).items() if k not in _ENVELOPE}  # fmt: skip
        e = LogEvent(0, n + 1, str(driver_id), n + 1, event.TOPIC, float(n), data)
        checker.check(e)
        d_view = drivers.apply(d_view, e)
        l_view = locations.apply(l_view, e)
        h_view = heatmap.apply(h_view, e)
        matcher.observe(event)
    key = str(driver_id)
    return {
        "checker": checker.drivers[key],
        "drivers": (d_view.rows[key].status, d_view.rows[key].offline_after_trip),
        "locations": (
            l_view.status.get(key, DriverStatus.OFFLINE),
            key in l_view.offline_after_trip,
        ),
        "heatmap": h_view.drivers[key],
        "heatmap_available": key in h_view.available,
        "matcher": matcher.drivers.get(driver_id, REGISTERED),  # it skips registration
        "matcher_available": driver_id in matcher.available,
    }


def test_a_trip_end_after_a_misplaced_offline_request_leaves_the_driver_offline_everywhere():
    driver_id = uuid.uuid4()
    # Asked to go offline after a trip while offline, then a trip end: both out of place.
    seen = fold_everywhere(driver_id, [2, 7])
    assert seen["drivers"] == (DriverStatus.OFFLINE, False)
    assert seen["locations"] == (DriverStatus.OFFLINE, False)  # was shown available
    assert not seen["heatmap_available"] and not seen["matcher_available"]


@given(st.lists(st.integers(min_value=0, max_value=len(EVENTS) - 1), max_size=30))
@settings(max_examples=300, deadline=None)
def test_every_reader_folds_any_sequence_alike(picks: list[int]) -> None:
    driver_id = uuid.uuid4()
    expected = REGISTERED
    for pick in picks:
        expected = next_availability(expected, EVENTS[pick][0].TOPIC)
    seen = fold_everywhere(driver_id, picks)
    available = expected[0] == DriverStatus.AVAILABLE
    for reader in ("checker", "drivers", "locations", "heatmap", "matcher"):
        assert seen[reader] == expected, reader
    assert seen["heatmap_available"] == available
    assert seen["matcher_available"] == available


_ENVELOPE = {"originator_id", "originator_version", "timestamp", "originator_topic"}
