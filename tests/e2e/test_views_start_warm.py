"""Views that start warm: a serving process takes up the views kept under its data dir and
folds only the tail, which must come to exactly what a fold of the whole log makes; kept
views it cannot trust are refused, with a warning, for a full fold; a crash while they are
written leaves the previous ones; ended rides leave the rides view by the log's clock."""

from __future__ import annotations

import logging
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from views_log import (
    MARKETS,
    RETENTION_S,
    comparable,
    fold,
    keep,
    new_views,
    shard_files,
    simulate,
)

from dispatch.adapters.sqlite.ridearchive import SqliteRideArchive
from dispatch.adapters.sqlite.viewstore import SqliteViewStore
from dispatch.bootstrap import build_personal, build_runtime
from dispatch.domain.ids import shard_of
from dispatch.replay import operations as op
from dispatch.settings import Settings
from projections.rides import RidesProjection
from projections.runner import ProjectionRunner
from projections.store import StoredViews
from projections.views import default_projections
from projections.warm import first_catch_up, warm_views


@pytest.fixture(scope="module")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("log")
    assert simulate(data_dir) > 3_000
    return data_dir


@pytest.fixture
def data_dir(log_dir: Path, tmp_path: Path) -> Path:
    """A copy of the simulated log, for a test that keeps views beside it."""
    copy = tmp_path / "data"
    shutil.copytree(log_dir, copy)
    return copy


def take_up(data_dir: Path, catch_up: bool = True) -> Any:
    """What a serving process does at start: take up the kept views, then catch up."""
    archive = SqliteRideArchive(data_dir / "ended-rides.sqlite")
    source = shard_files(data_dir)
    warm = warm_views(
        default_projections(ride_retention_s=RETENTION_S),
        SqliteViewStore(data_dir / "views.sqlite"),
        archive,
        source,
        "embedded",
    )
    if catch_up:
        first_catch_up(ProjectionRunner(source, warm.views), warm)
    return warm, archive


def settings(data_dir: Path) -> Settings:
    return Settings(
        data_dir=data_dir, shards=2, markets=MARKETS, ended_ride_retention_s=RETENTION_S
    )


@pytest.mark.parametrize("cut", [0.0, 0.2, 0.55, 0.97, 1.0])
def test_kept_views_plus_the_tail_equal_a_fold_of_the_whole_log(data_dir: Path, cut: float) -> None:
    source = shard_files(data_dir)
    upto = {s: int(source.head(s) * cut) for s in source.shards()}
    keep(fold(source, new_views(), upto), data_dir)

    warm, archive = take_up(data_dir)
    assert warm.loaded
    fold(source, warm.views)

    whole = fold(source, new_views())
    assert comparable(warm.views) == comparable(whole)
    # The rides that left the view are answered from the archive or the evicted rows alike.
    assert whole.evicted, "rides ended long enough before the end of the log"
    for ride_id, row in whole.evicted.items():
        assert (warm.views.evicted.get(ride_id) or archive.get(ride_id)) == row


def test_a_serving_process_starts_from_the_views_the_last_one_kept(data_dir: Path) -> None:
    first = build_runtime(settings(data_dir), clock=lambda: 0.0)
    first.start()
    first.stop()  # a clean stop keeps the views
    assert (data_dir / "views.sqlite").is_file()

    second = build_runtime(settings(data_dir), clock=lambda: 0.0)
    started = time.perf_counter()
    second.start()
    taken_up = time.perf_counter() - started
    second.stop()
    opened = new_views(open=build_personal(settings(data_dir)).open)  # as serving folds
    whole = fold(shard_files(data_dir), opened, upto=dict(second.views.states["rides"].checkpoint))
    assert comparable(second.views) == comparable(whole)
    assert taken_up < 5  # nothing to fold: a generous bound, not a benchmark


def test_a_rebuild_is_taken_up_by_the_next_start(data_dir: Path) -> None:
    target = SqliteViewStore(data_dir / "views.sqlite")
    archive = SqliteRideArchive(data_dir / "ended-rides.sqlite")
    stores = op.RebuildStores(SqliteViewStore(data_dir / "views.rebuild.sqlite"), target, archive)
    projections = op.select_views(None, ride_retention_s=RETENTION_S)
    op.rebuild(shard_files(data_dir), stores, projections, "embedded")
    archive.close()

    warm, _ = take_up(data_dir)
    assert warm.loaded
    assert fold(shard_files(data_dir), warm.views) is warm.views
    assert comparable(warm.views) == comparable(fold(shard_files(data_dir), new_views()))


def test_no_kept_views_means_a_fold_of_the_whole_log_said_in_the_log(
    data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="projections.warm"):
        warm, _ = take_up(data_dir)
    assert not warm.loaded
    assert "no kept views" in caplog.text and "folding the whole log" in caplog.text
    assert comparable(warm.views) == comparable(fold(shard_files(data_dir), new_views()))


def _garbage(path: Path) -> None:
    path.write_bytes(b"this is not SQLite" * 100)


def _damaged_view(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE views SET state = substr(state, 1, 20) WHERE name = 'rides'")


def _another_format(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE meta SET value = '2' WHERE key = 'format'")


def _another_log(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE meta SET value = 'kafka:elsewhere' WHERE key = 'log'")


def _an_old_store(path: Path) -> None:
    path.unlink()
    with sqlite3.connect(path) as conn:  # what `replay rebuild` wrote before this format
        conn.execute("CREATE TABLE views (name TEXT PRIMARY KEY, state BLOB NOT NULL)")


@pytest.mark.parametrize(
    ("damage", "said"),
    [
        (_garbage, "not a readable view store"),
        (_damaged_view, "view rides is damaged"),
        (_another_format, "format 2"),
        (_another_log, "folded from log 'kafka:elsewhere'"),
        (_an_old_store, "not a readable view store"),
    ],
)
def test_kept_views_that_cannot_be_trusted_are_refused_for_a_full_fold(
    data_dir: Path, caplog: pytest.LogCaptureFixture, damage: Any, said: str
) -> None:
    source = shard_files(data_dir)
    keep(fold(source, new_views()), data_dir)
    damage(data_dir / "views.sqlite")
    with caplog.at_level(logging.WARNING, logger="projections.warm"):
        warm, archive = take_up(data_dir)
    assert not warm.loaded
    assert said in caplog.text and "folding the whole log" in caplog.text
    assert archive.count() == 0, "the archive is emptied: the fold archives again"
    assert comparable(fold(source, warm.views)) == comparable(fold(source, new_views()))


def test_views_kept_from_a_longer_log_are_refused_even_after_a_shard_was_folded(
    data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = shard_files(data_dir)
    keep(fold(source, new_views(), {s: source.head(s) // 2 for s in source.shards()}), data_dir)
    with sqlite3.connect(data_dir / "shard-0001.sqlite") as conn:  # shard 1 loses its tail
        conn.execute("DELETE FROM stored_events WHERE rowid > 100")
    with caplog.at_level(logging.WARNING, logger="projections.warm"):
        warm, _ = take_up(data_dir)  # shard 0's tail is folded before shard 1 is read
    assert not warm.loaded and "the log ends before 1:" in caplog.text
    assert comparable(warm.views) == comparable(fold(source, new_views()))


def test_views_kept_from_another_log_are_refused(
    data_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    other = tmp_path / "other"
    simulate(other, seed=11, minutes=3)
    keep(fold(shard_files(other), new_views()), data_dir)
    with caplog.at_level(logging.WARNING, logger="projections.warm"):
        warm, _ = take_up(data_dir)
    assert not warm.loaded and "another log?" in caplog.text
    assert comparable(warm.views) == comparable(fold(shard_files(data_dir), new_views()))


def test_a_view_kept_under_another_retention_alone_is_folded_again(data_dir: Path) -> None:
    source = shard_files(data_dir)
    keep(fold(source, new_views(retention_s=60.0)), data_dir)
    warm, _ = take_up(data_dir, catch_up=False)
    assert warm.loaded and warm.views.states["rides"].checkpoint == {}
    assert warm.views.states["drivers"].checkpoint
    assert comparable(fold(source, warm.views)) == comparable(fold(source, new_views()))


CRASH_WHILE_SAVING = """
import os, signal, sys
from pathlib import Path
from dispatch.adapters.sqlite import viewstore
from dispatch.domain.ids import shard_of
from projections.rides import RidesProjection
from projections.store import StoredViews

store = viewstore.SqliteViewStore(Path(sys.argv[1]))
viewstore.os.replace = lambda *a: os.kill(os.getpid(), signal.SIGKILL)  # dies before the rename
store.save(StoredViews("embedded", {"rides": b"the new views"}))
"""


def test_a_crash_between_writing_and_renaming_leaves_the_kept_views_usable(
    data_dir: Path,
) -> None:
    keep(fold(shard_files(data_dir), new_views()), data_dir)
    path = data_dir / "views.sqlite"
    before = SqliteViewStore(path).load()
    crashed = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(CRASH_WHILE_SAVING), str(path)], check=False
    )
    assert crashed.returncode == -9
    assert list(data_dir.glob(".views.sqlite.*.partial")), "the new file was written, not renamed"
    assert SqliteViewStore(path).load() == before
    warm, _ = take_up(data_dir)
    assert warm.loaded


def test_a_failed_save_leaves_the_kept_views_and_no_partial_file(data_dir: Path) -> None:
    store = SqliteViewStore(data_dir / "views.sqlite")
    store.save(StoredViews("embedded", {"rides": b"first"}))
    with pytest.raises(TypeError):
        store.save(StoredViews("embedded", {"rides": object()}))  # type: ignore[dict-item]
    assert store.load() == StoredViews("embedded", {"rides": b"first"}, {"rides": ""})
    assert not list(data_dir.glob(".views.sqlite.*.partial"))


def test_ended_rides_leave_by_the_log_clock_whatever_order_the_shards_are_folded_in(
    log_dir: Path,
) -> None:
    source = shard_files(log_dir)
    by_shard = fold(source, new_views())
    interleaved = new_views()
    pages = {s: [list(p) for p in source.read_pages(s)] for s in source.shards()}
    for i in range(max(len(p) for p in pages.values())):
        for shard in reversed(source.shards()):
            if i < len(pages[shard]):
                interleaved.apply_page(pages[shard][i])
    assert comparable(interleaved) == comparable(by_shard)
    assert interleaved.evicted == by_shard.evicted
    # Exactly the ended rides of a shard that ended RETENTION_S before its last ride event.
    clock = {
        s: max(e.at for e in source.read(s) if e.topic in RidesProjection.topics)
        for s in source.shards()
    }
    for ride_id, row in {**by_shard.rides, **by_shard.evicted}.items():
        ended = row.status in ("completed", "cancelled", "expired")
        due = ended and row.updated_at <= clock[shard_of(UUID(ride_id))] - RETENTION_S
        assert (ride_id in by_shard.evicted) == due, row
