"""The heatmap's fold meets ``KeyNotYetKnown`` (a ride's sealed pickup whose key is not yet
readable here, on Kafka: docs/PRIVACY.md): it neither stops the projection runner nor
gives the ride up; the ride is placed and counted at its next event or the next pass."""

from __future__ import annotations

from typing import Any

import h3
from memory_log import MemoryLog

from dispatch.domain.ids import new_id
from dispatch.domain.ride import Ride
from dispatch.log import LogEvent
from dispatch.privacy import KeyNotYetKnown
from projections.heatmap import BASE_RESOLUTION, HeatmapProjection
from projections.runner import ProjectionRunner
from projections.views import ViewSet, default_projections

PICKUP = [37.77, -122.42]
CELL = h3.latlng_to_cell(*PICKUP, BASE_RESOLUTION)
SEALED = "pf1.not-a-real-token"  # what the opener below is asked to open


class LateKey:
    """An opener whose key becomes known only once ``known`` is set."""

    def __init__(self) -> None:
        self.known = False
        self.asked = 0

    def __call__(self, value: Any, field_name: str) -> Any:
        if value != SEALED:
            return value
        self.asked += 1
        if not self.known:
            raise KeyNotYetKnown(new_id(0), 0.0)
        return list(PICKUP)


def _event(position: int, ride: str, version: int, topic: str, **data: Any) -> LogEvent:
    return LogEvent(0, position, ride, version, topic, 100.0 + position, data)


def _requested(position: int, ride: str) -> LogEvent:
    data = {"rider_id": str(new_id(0)), "pickup": SEALED, "dropoff": SEALED,
            "expires_at": "2026-01-05T08:05:00+00:00", "fare": None}  # fmt: skip
    return _event(position, ride, 1, Ride.Created.TOPIC, **data)


def test_a_ride_whose_key_is_not_yet_known_is_counted_once_the_next_pass_opens_it() -> None:
    opener = LateKey()
    heatmap = HeatmapProjection(opener)
    ride = str(new_id(0))
    view = heatmap.apply(heatmap.initial(), _requested(1, ride))  # no exception
    assert view.cells(BASE_RESOLUTION) == {} and ride in view.unplaced
    heatmap.settle(view)  # still unknown: kept for later
    assert view.cells(BASE_RESOLUTION) == {} and ride in view.unplaced
    opener.known = True
    heatmap.settle(view)
    assert view.cells(BASE_RESOLUTION) == {CELL: (0, 1)} and view.unplaced == {}
    # its later events count as for any ride: accepted, it no longer waits
    heatmap.apply(view, _event(2, ride, 2, Ride.Accepted.TOPIC, driver_id=str(new_id(0))))
    assert view.cells(BASE_RESOLUTION) == {}


def test_a_ride_is_placed_at_its_next_event_and_counted_only_if_it_waits() -> None:
    opener = LateKey()
    heatmap = HeatmapProjection(opener)
    waiting, accepted, cancelled = (str(new_id(0)) for _ in range(3))
    view = heatmap.initial()
    for i, ride in enumerate((waiting, accepted, cancelled)):
        heatmap.apply(view, _requested(i + 1, ride))
    assert set(view.unplaced) == {waiting, accepted, cancelled}
    # cancelled while unplaced: given up with the ride, nothing counted
    heatmap.apply(view, _event(4, cancelled, 2, Ride.CancelledByRider.TOPIC, reason=""))
    assert cancelled not in view.unplaced
    opener.known = True
    heatmap.apply(view, _event(5, accepted, 2, Ride.Accepted.TOPIC, driver_id=str(new_id(0))))
    assert accepted not in view.unplaced and view.cells(BASE_RESOLUTION) == {}
    heatmap.settle(view)
    assert view.unplaced == {} and view.cells(BASE_RESOLUTION) == {CELL: (0, 1)}


class Events(MemoryLog):
    """One shard's events, in memory."""


def test_the_runner_folds_past_a_key_not_yet_known_and_counts_the_ride_at_a_later_pass() -> None:
    opener = LateKey()
    ride, other = str(new_id(0)), str(new_id(0))
    source = Events([_requested(1, ride), _requested(2, other)])
    views = ViewSet(default_projections(open=opener))
    runner = ProjectionRunner(source, views)
    assert runner.catch_up() == 2  # nothing raised: every view moved past both events
    assert views.position(0) == 2
    assert set(views.rides) == {ride, other}  # the other views folded each event once
    assert views.heatmap.cells(BASE_RESOLUTION) == {}
    opener.known = True
    views.settle()  # what the runner's loop does before each pass
    assert views.heatmap.cells(BASE_RESOLUTION) == {CELL: (0, 2)}
    assert runner.catch_up() == 0


def test_a_ride_placed_by_a_later_pass_is_kept_as_changed() -> None:
    """The pass changes the ride's part outside any event of it (``projections.parts``):
    the views remember it, so the next keeping writes it."""
    opener = LateKey()
    views = ViewSet(default_projections(open=opener))
    ride = str(new_id(0))
    views.apply_page([_requested(1, ride)])
    assert ride in views.take_changed()["heatmap"]
    opener.known = True
    views.settle()
    assert views.take_changed()["heatmap"] == {ride}
    assert views.heatmap.ride_cell == {ride: CELL}
