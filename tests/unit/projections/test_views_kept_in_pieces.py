"""A serving process keeps its views without their lock and in pieces (``projections.rows``,
``projections.keeper``): readers (the API's queries take the views' lock) are not stalled
for the whole encoding, and the rows come back exactly, across chunk boundaries."""

from __future__ import annotations

import pickle
import threading
from typing import Any

import pytest
from test_view_keeper import Archive, Store

from projections import rows
from projections.drivers import DriverRow, DriversView
from projections.keeper import ViewKeeper
from projections.rides import RideRow, RidesView
from projections.views import ViewSet, default_projections


def drivers(n: int) -> DriversView:
    view = DriversView()
    for i in range(n):
        vehicle = {"product": "xl", "seats": 6, "accessible": i % 2 == 0}
        row = DriverRow(f"d{i:05d}", f"name {i}", "available", trips=i, updated_at=i / 3,
                        vehicle=vehicle)  # fmt: skip
        view.rows[row.driver_id] = row
        view.by_status[row.status] += 1
    return view


def test_driver_rows_come_back_exactly_across_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rows, "CHUNK_ROWS", 7)
    view = drivers(50)

    state = view.__getstate__()
    back = pickle.loads(pickle.dumps(view))

    assert len(state["rows"]) == 8  # 50 rows by 7
    assert back.rows == view.rows and list(back.rows) == list(view.rows)
    assert back.by_status == view.by_status


def test_ride_rows_and_the_rides_views_parts_come_back_exactly() -> None:
    view = RidesView()
    for i in range(450):  # three chunks of rides (200 a chunk)
        row = RideRow(f"r{i}", "rider", [37.7, -122.4], [37.8, -122.4], "requested", i, i, 1,
                      timeline=[{"at": i, "event": "Ride.Requested"}])  # fmt: skip
        view[row.ride_id] = row
    view.evicted["gone"] = RideRow("gone", "rider", None, None, "completed", 1.0, 2.0, 5)  # type: ignore[arg-type]
    view.ending = {0: [(2.0, "gone")]}
    view.booked = {"rider": {"r3"}}

    back = pickle.loads(pickle.dumps(view))

    assert dict(back) == dict(view) and list(back) == list(view)
    assert back.evicted == view.evicted and back.ending == view.ending
    assert back.booked == view.booked


class Probe(DriversView):
    """A drivers view that, while it is pickled, has another thread (a query) ask for the
    views' lock without waiting, and notes whether it got it."""

    views: ViewSet | None = None
    seen: list[bool] = []

    def __getstate__(self) -> dict[str, Any]:
        views = Probe.views
        assert views is not None

        def reader() -> None:
            got = views.lock.acquire(blocking=False)
            if got:
                views.lock.release()
            Probe.seen.append(got)

        thread = threading.Thread(target=reader)
        thread.start()
        thread.join()
        return super().__getstate__()


def test_the_keeper_encodes_the_views_without_holding_their_lock() -> None:
    views = ViewSet(default_projections())
    probe = Probe()
    probe.rows.update(drivers(3).rows)
    views.states["drivers"].view = probe
    Probe.views, Probe.seen = views, []
    keeper = ViewKeeper(views, Store(), Archive(), "embedded", every_s=0)

    keeper.save()

    assert Probe.seen == [True]
