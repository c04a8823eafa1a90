"""A past moment's /ops picture (``dispatch.replay.past``) folded from a view-history
point plus the log's tail equals the one folded from the start of the log, and folds fewer
events; a moment before every point, a damaged history or a point of other settings is
folded from the start, and the answer says why. The keeper adds a point once enough log
time has passed (``projections.keeper``)."""

from __future__ import annotations

from itertools import takewhile
from pathlib import Path
from typing import Any

import pytest
from views_log import MARKETS, shard_files, simulate

from dispatch.adapters.sqlite.ridearchive import SqliteRideArchive
from dispatch.adapters.sqlite.viewhistory import SqliteViewHistory, view_history_path
from dispatch.adapters.sqlite.viewstore import SqliteViewStore
from dispatch.bootstrap import build_personal, serving_projections
from dispatch.log import LogSource
from dispatch.replay.past import ops_state_at
from dispatch.settings import Settings
from projections.keeper import ViewKeeper
from projections.ops_picture import Limits
from projections.views import ViewSet

LIMITS = Limits(max_drivers=10_000, max_rides=10_000)
SAME = ("rides", "rides_total", "scheduled_total", "surge", "drivers_by_status")


def demand(picture: dict[str, Any]) -> dict[str, int]:
    """The heatmap's demand (its supply comes from positions: the point's, or none)."""
    return {h["cell"]: h["demand"] for h in picture["heatmap"] if h["demand"]}


@pytest.fixture(scope="module")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("past")
    assert simulate(data_dir) > 3_000
    return data_dir


def settings_of(data_dir: Path, retention_s: float = 3_600.0) -> Settings:
    return Settings(data_dir=data_dir, shards=2, markets=MARKETS,
                    ended_ride_retention_s=retention_s)  # fmt: skip


def projections(log_dir: Path, retention_s: float = 3_600.0) -> list[Any]:
    """The serving process's views over the log of ``log_dir`` (its pickups opened with
    the log's own subject keys)."""
    return serving_projections(settings_of(log_dir, retention_s), opener(log_dir))


def opener(log_dir: Path) -> Any:
    return build_personal(settings_of(log_dir)).open


def span(source: LogSource) -> tuple[float, float]:
    times = [e.at for s in source.shards() for e in source.read(s)]
    return min(times), max(times)


def keep_point_at(
    data_dir: Path, log_dir: Path, until: float, history: SqliteViewHistory
) -> ViewKeeper:
    """Fold the log up to ``until`` as a serving process would, with pings at one place,
    and keep the views (under ``data_dir``) with a history point."""
    source = shard_files(log_dir)
    views = ViewSet(projections(log_dir))
    for shard in source.shards():  # up to the first event after the moment
        views.apply_page(list(takewhile(lambda e: e.at <= until, source.read(shard))))
    for driver in views.drivers.rows:
        views.locations.positions[driver] = (37.77, -122.42, until)
    archive = SqliteRideArchive(data_dir / "ended-rides.sqlite")
    keeper = ViewKeeper(views, SqliteViewStore(data_dir / "views.sqlite"), archive, "embedded",
                        every_s=0, history=history, history_every_s=300.0)  # fmt: skip
    keeper.save()
    archive.close()
    return keeper


def picture_at(
    data_dir: Path, at: float, history: SqliteViewHistory | None, **kw: Any
) -> dict[str, Any]:
    open = opener(data_dir)

    def pickup_of(value: Any) -> list[float] | None:
        opened = open(value, "pickup")
        return opened if isinstance(opened, list) else None

    return ops_state_at(shard_files(data_dir), at, kw.get("projections") or projections(data_dir),
                        history, "embedded", pickup_of, LIMITS)  # fmt: skip


def test_a_past_picture_from_a_point_and_the_tail_equals_the_one_from_the_start(
    log_dir: Path, tmp_path: Path
) -> None:
    first, _ = span(shard_files(log_dir))
    history = SqliteViewHistory(view_history_path(tmp_path), keep=4)
    keep_point_at(tmp_path, log_dir, first + 600, history)
    (taken,) = history.times()
    assert first + 590 <= taken <= first + 600

    at = first + 900
    fast = picture_at(log_dir, at, history)
    slow = picture_at(log_dir, at, None)

    assert {k: fast[k] for k in SAME} == {k: slow[k] for k in SAME}
    assert demand(fast) == demand(slow) and demand(fast)
    assert fast["rides_total"] > 0 and fast["drivers_by_status"]
    assert fast["events_folded"] < slow["events_folded"] / 2
    assert fast["note"].startswith("folded from the view history point")
    assert slow["note"].startswith("no view history is kept")
    # positions are the point's: every driver drawn there, with its status as of the moment
    assert fast["positions_at"] is not None and slow["positions_at"] is None
    assert fast["drivers_total"] > 0 and slow["drivers_total"] == 0
    assert {d["lat"] for d in fast["drivers"]} == {37.77}
    supply = sum(h["supply"] for h in fast["heatmap"])
    assert supply == sum(1 for d in fast["drivers"] if d["status"] == "available") > 0


def test_a_moment_before_every_point_is_folded_from_the_start(
    log_dir: Path, tmp_path: Path
) -> None:
    first, _ = span(shard_files(log_dir))
    history = SqliteViewHistory(view_history_path(tmp_path), keep=4)
    keep_point_at(tmp_path, log_dir, first + 600, history)

    early = picture_at(log_dir, first + 300, history)

    assert "no view history point at or before it (its first is of" in early["note"]
    assert early["positions_at"] is None
    assert early == {**picture_at(log_dir, first + 300, None), "note": early["note"]}


def test_a_damaged_history_is_said_and_the_picture_folded_from_the_start(
    log_dir: Path, tmp_path: Path
) -> None:
    first, _ = span(shard_files(log_dir))
    history = SqliteViewHistory(view_history_path(tmp_path), keep=4)
    keep_point_at(tmp_path, log_dir, first + 600, history)
    import sqlite3

    with sqlite3.connect(view_history_path(tmp_path)) as conn:
        conn.execute("UPDATE points SET crc = crc + 1")

    seen = picture_at(log_dir, first + 900, history)

    assert "the view history cannot be read" in seen["note"] and "damaged" in seen["note"]
    assert {k: seen[k] for k in SAME} == {
        k: picture_at(log_dir, first + 900, None)[k] for k in SAME
    }


def test_a_point_kept_with_other_view_settings_is_not_taken_up(
    log_dir: Path, tmp_path: Path
) -> None:
    first, _ = span(shard_files(log_dir))
    history = SqliteViewHistory(view_history_path(tmp_path), keep=4)
    keep_point_at(tmp_path, log_dir, first + 600, history)

    other = picture_at(log_dir, first + 900, history, projections=projections(log_dir, 60.0))

    assert "rides view was kept with other settings" in other["note"]


def test_the_keeper_adds_a_point_once_enough_log_time_has_passed(
    log_dir: Path, tmp_path: Path
) -> None:
    first, _ = span(shard_files(log_dir))
    source = shard_files(log_dir)
    history = SqliteViewHistory(view_history_path(tmp_path), keep=4)
    keeper = keep_point_at(tmp_path, log_dir, first + 600, history)
    views = keeper.views

    def fold_to(until: float) -> None:
        for shard in source.shards():
            after = views.states["rides"].position(shard)
            views.apply_page(list(takewhile(lambda e: e.at <= until, source.read(shard, after))))

    fold_to(first + 800)  # 200 s of log time after the point: not yet
    keeper.save()
    assert len(history.times()) == 1
    fold_to(first + 960)  # 300 s or more after it
    keeper.save()
    assert len(history.times()) == 2
    assert history.times()[1] >= history.times()[0] + 300.0


def test_a_point_leaves_out_the_places_view_that_an_erasure_would_not_rewrite(
    log_dir: Path, tmp_path: Path
) -> None:
    """The places view holds which drivers are inside which place, opened; a point is kept
    for about a day and no erasure rewrites it (docs/PRIVACY.md), so it is not in a point."""
    first, _ = span(shard_files(log_dir))
    history = SqliteViewHistory(view_history_path(tmp_path), keep=4)
    keeper = keep_point_at(tmp_path, log_dir, first + 600, history)
    assert "places" in keeper.views.states  # the serving views have it
    point = history.at_or_before(first + 600)
    assert point is not None
    assert "places" not in point.stored.views and "places" not in point.stored.params
    assert {"rides", "drivers", "locations", "heatmap", "surge"} <= set(point.stored.views)
