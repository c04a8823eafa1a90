"""The view-history port (``projections.history.ViewHistory``) over its adapter, the SQLite
file under the data dir: points come back whole by time (the latest at or before a moment),
the oldest beyond the number kept are dropped, a second store on the same file sees them (a
restarted process, ``dispatch replay`` in another process), and a damaged point is refused
with a reason, never unpickled."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from projections.history import HistoryPoint, ViewHistory
from projections.store import StoredViews, ViewStoreError


def _embedded(tmp_path: Path) -> Callable[[int], ViewHistory]:
    from dispatch.adapters.sqlite.viewhistory import SqliteViewHistory, view_history_path

    return lambda keep: SqliteViewHistory(view_history_path(tmp_path), keep)


@pytest.fixture(params=["embedded"])
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[int], ViewHistory]:
    return _embedded(tmp_path)


def point(at: float) -> HistoryPoint:
    stored = StoredViews("embedded", {"rides": b"r" * 10 + bytes([int(at) % 256]), "drivers": b""},
                         {"rides": "retention_s=3600.0", "drivers": ""})  # fmt: skip
    return HistoryPoint(at, stored, {"d1": (37.7, -122.4, at - 1.0)})


def test_an_empty_history_has_no_point(opener: Callable[[int], ViewHistory]) -> None:
    history = opener(3)
    assert history.times() == []
    assert history.at_or_before(1e12) is None


def test_the_latest_point_at_or_before_a_moment_comes_back_whole(
    opener: Callable[[int], ViewHistory],
) -> None:
    history = opener(5)
    for at in (100.0, 200.0, 300.0):
        history.add(point(at))

    assert history.at_or_before(99.0) is None
    assert history.at_or_before(200.0) == point(200.0)
    assert history.at_or_before(299.9) == point(200.0)
    assert history.at_or_before(1e9) == point(300.0)
    assert opener(5).times() == [100.0, 200.0, 300.0]  # durable: another store sees them


def test_only_the_latest_points_are_kept(opener: Callable[[int], ViewHistory]) -> None:
    history = opener(2)
    for at in (100.0, 200.0, 300.0, 400.0):
        history.add(point(at))

    assert history.times() == [300.0, 400.0]
    assert history.at_or_before(250.0) is None


def test_a_damaged_point_is_refused_with_a_reason(
    opener: Callable[[int], ViewHistory], tmp_path: Path
) -> None:
    history = opener(3)
    history.add(point(100.0))
    (path,) = tmp_path.glob("views-history.sqlite")
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE points SET views = zeroblob(length(views))")

    with pytest.raises(ViewStoreError, match="damaged"):
        opener(3).at_or_before(100.0)


def test_a_file_that_is_not_a_history_is_refused(tmp_path: Path) -> None:
    from dispatch.adapters.sqlite.viewhistory import SqliteViewHistory, view_history_path

    view_history_path(tmp_path).write_bytes(b"not sqlite at all" * 100)
    with pytest.raises(ViewStoreError, match="not a readable view history"):
        SqliteViewHistory(view_history_path(tmp_path), 3).times()


def test_keeping_no_point_is_refused(tmp_path: Path) -> None:
    from dispatch.adapters.sqlite.viewhistory import SqliteViewHistory

    with pytest.raises(ValueError, match="at least one"):
        SqliteViewHistory(tmp_path / "h.sqlite", 0)
