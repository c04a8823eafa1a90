"""The keeper archives evicted rides before it keeps views that no longer hold them, so a
ride is always answerable from the views, their evicted rows or the archive."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import pytest

from dispatch.domain.ride import Ride
from dispatch.log import LogEvent
from projections.background import Background, Job, JobFailed
from projections.keeper import ViewKeeper
from projections.rides import RideRow
from projections.store import RideArchive, StoredViews, ViewStore, decode
from projections.views import ViewSet, default_projections

RIDE = "00000000-0000-4000-8000-000000000001"
LATER = "00000000-0000-4000-8000-000000000002"


class Store(ViewStore):
    where = "memory"

    def __init__(self) -> None:
        self.saved: list[StoredViews] = []

    def load(self) -> StoredViews | None:
        return self.saved[-1] if self.saved else None

    def save(self, stored: StoredViews) -> None:
        self.saved.append(stored)

    def discard(self) -> None:
        self.saved.clear()


class Archive(RideArchive):
    def __init__(self, fail: bool = False) -> None:
        self.rows: dict[str, RideRow] = {}
        self.fail = fail

    def put(self, rows: Sequence[RideRow]) -> None:
        if self.fail:
            raise OSError("disk full")
        self.rows.update((r.ride_id, r) for r in rows)

    def get(self, ride_id: str) -> RideRow | None:
        return self.rows.get(ride_id)

    def clear(self) -> None:
        self.rows.clear()

    def close(self) -> None:
        pass


def event(position: int, ride_id: str, topic: str, at: float, **data: object) -> LogEvent:
    return LogEvent(0, position, ride_id, position, topic, at, dict(data))


def views_with_an_evicted_ride() -> ViewSet:
    views = ViewSet(default_projections(ride_retention_s=60.0))
    created = {"rider_id": LATER, "pickup": [37.77, -122.42], "dropoff": [37.76, -122.41]}
    views.apply_page(
        [
            event(1, RIDE, Ride.Created.TOPIC, 0.0, **created),
            event(2, RIDE, Ride.CancelledByRider.TOPIC, 10.0, reason=""),
            event(3, LATER, Ride.Created.TOPIC, 70.0, **created),  # 60 s after: RIDE leaves
        ]
    )
    assert RIDE not in views.rides and RIDE in views.evicted
    return views


def test_evicted_rides_are_archived_before_the_views_are_kept() -> None:
    views, store, archive = views_with_an_evicted_ride(), Store(), Archive()
    ViewKeeper(views, store, archive, "embedded", every_s=0).save()
    assert archive.get(RIDE) is not None and not views.evicted
    assert len(store.saved) == 1


def test_views_are_not_kept_when_the_archive_fails_and_the_rides_wait_for_it() -> None:
    views, store, archive = views_with_an_evicted_ride(), Store(), Archive(fail=True)
    keeper = ViewKeeper(views, store, archive, "embedded", every_s=0)
    with pytest.raises(OSError):
        keeper.save()
    assert store.saved == [] and RIDE in views.evicted
    assert views.rides.find(RIDE) is views.evicted[RIDE]  # still answered
    archive.fail = False
    keeper.save()
    assert archive.get(RIDE) is not None and len(store.saved) == 1


def test_a_keeper_saves_when_due_and_after_a_failure_tries_again_later() -> None:
    now = [0.0]
    views, store, archive = views_with_an_evicted_ride(), Store(), Archive(fail=True)
    keeper = ViewKeeper(views, store, archive, "embedded", every_s=60, clock=lambda: now[0])
    keeper.maybe_save()
    assert store.saved == []  # not due yet
    now[0] = 61.0
    keeper.maybe_save()  # due, fails (logged), not raised
    assert store.saved == []
    archive.fail = False
    now[0] = 62.0
    keeper.maybe_save()
    assert store.saved == []  # tried again only later
    now[0] = 200.0
    keeper.maybe_save()
    assert len(store.saved) == 1


class Broken(Background):
    def start(self, job: Callable[[], bytes]) -> Job:
        raise JobFailed("could not fork: [Errno 12] Cannot allocate memory")


class Endless(Background):
    def __init__(self) -> None:
        self.cancelled = False

    def start(self, job: Callable[[], bytes]) -> Job:
        owner = self

        class Running(Job):
            def result(self) -> bytes | None:
                return None

            def cancel(self) -> None:
                owner.cancelled = True

        return Running()


def test_views_kept_in_a_child_are_those_of_the_moment_the_keeping_began() -> None:
    from dispatch.adapters.posix.forked import ForkedBackground

    now = [0.0]
    views, store, archive = views_with_an_evicted_ride(), Store(), Archive()
    keeper = ViewKeeper(views, store, archive, "embedded", every_s=60, clock=lambda: now[0],
                        background=ForkedBackground(timeout_s=30))  # fmt: skip
    now[0] = 61.0
    keeper.maybe_save()  # begins: the child encodes; this thread goes on folding
    assert archive.get(RIDE) is not None, "evicted rides archived before the fork"
    views.apply_page([event(4, LATER, Ride.CancelledByRider.TOPIC, 80.0, reason="")])
    now[0] = 70.0  # the keeping is taken up 9 s after it began
    poll(keeper, lambda: bool(store.saved))
    (kept,) = store.saved
    rides = decode(kept)["rides"]
    assert rides.position(0) == 3 and views.position(0) == 4
    assert rides.view.find(LATER).status == "requested"  # type: ignore[attr-defined]
    now[0] = 125.0  # 64 s after it began, 55 s after it was taken up
    keeper.maybe_save()
    poll(keeper, lambda: len(store.saved) > 1, seconds=1.5, must=False)
    assert len(store.saved) == 1, "the next keeping is planned from the one taken up"
    now[0] = 131.0
    poll(keeper, lambda: len(store.saved) > 1)


def poll(keeper: ViewKeeper, done: Callable[[], bool], seconds: float = 30.0,
         must: bool = True) -> None:  # fmt: skip
    """Call ``maybe_save`` until ``done`` (a child's keeping is taken up between calls)."""
    deadline = time.monotonic() + seconds
    while not done():
        if time.monotonic() > deadline:
            assert not must, "the child's keeping was never taken up"
            return
        time.sleep(0.01)
        keeper.maybe_save()


def test_a_background_that_fails_keeps_the_views_on_the_folding_thread(
    caplog: pytest.LogCaptureFixture,
) -> None:
    views, store, archive = views_with_an_evicted_ride(), Store(), Archive()
    keeper = ViewKeeper(views, store, archive, "embedded", every_s=0, background=Broken())
    keeper.save_soon()
    keeper.maybe_save()
    assert len(store.saved) == 1 and archive.get(RIDE) is not None
    assert "Cannot allocate memory" in caplog.text and "on the folding thread" in caplog.text


def test_a_save_at_stop_drops_the_keeping_under_way_and_keeps_the_views_now() -> None:
    background = Endless()
    views, store, archive = views_with_an_evicted_ride(), Store(), Archive()
    keeper = ViewKeeper(views, store, archive, "embedded", every_s=0, background=background)
    keeper.save_soon()
    keeper.maybe_save()
    keeper.maybe_save()
    assert store.saved == [] and not background.cancelled  # under way
    views.apply_page([event(4, LATER, Ride.CancelledByRider.TOPIC, 80.0, reason="")])
    keeper.save()
    assert background.cancelled
    (kept,) = store.saved
    assert decode(kept)["rides"].position(0) == 4
