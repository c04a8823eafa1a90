"""Views kept in parts: after the first keeping, a serving process writes only the parts of
the drivers and rides that changed, and what it takes up at its next start is exactly
what it had folded, wherever the keepings fell; changes are never applied to a store
another writer replaced, a failed change leaves the store as it was, and a damaged part is
refused."""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from views_log import RETENTION_S as RETENTION
from views_log import comparable, new_views, shard_files, simulate

from dispatch.adapters.sqlite.ridearchive import SqliteRideArchive
from dispatch.adapters.sqlite.viewstore import SqliteViewStore
from dispatch.log import LogEvent
from dispatch.replay import operations as op
from projections import keeper as keeper_module
from projections import parts
from projections import views as views_module
from projections.background import InlineBackground, Job
from projections.keeper import ViewKeeper
from projections.store import StoredViews, ViewChanges, ViewStoreError
from projections.views import ViewSet, default_projections
from projections.warm import warm_views


def full(views: ViewSet) -> dict[str, Any]:
    """``comparable``, with the rest of the rides view and the places view (queues in
    their order)."""
    rides, places = views.rides, views.places
    return {
        **comparable(views),
        "booked": rides.booked,
        "active": rides.active,
        "evicted": rides.evicted,
        "availability": places.availability,
        "queues": {
            shard: (
                held.queues.inside,
                [(p, list(q.items())) for p, q in held.queues.queues.items()],
                held.queues.where,
            )
            for shard, held in places.shards.items()
        },
    }


class CountingStore(SqliteViewStore):
    """The SQLite store, counting what each keeping wrote."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.whole = 0
        self.changes: list[ViewChanges] = []

    def save(self, stored: StoredViews) -> None:
        self.whole += 1
        super().save(stored)

    def keep_changes(self, changes: ViewChanges) -> None:
        super().keep_changes(changes)
        self.changes.append(changes)


@pytest.fixture(scope="module")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("log")
    assert simulate(data_dir, minutes=12) > 2_000
    return data_dir


def pages(data_dir: Path, size: int = 200) -> list[list[LogEvent]]:
    source = shard_files(data_dir)
    out: list[list[LogEvent]] = []
    for shard in source.shards():
        events = list(source.read(shard, 0))
        out.extend(events[i : i + size] for i in range(0, len(events), size))
    return out


def keeper(views: ViewSet, data_dir: Path, store: SqliteViewStore) -> ViewKeeper:
    archive = SqliteRideArchive(data_dir / "ended-rides.sqlite")
    return ViewKeeper(views, store, archive, "embedded", every_s=0)


class Kept:
    """Views folded from a copy of the simulated log, kept in its data dir by a keeper."""

    def __init__(self, log_dir: Path, tmp_path: Path) -> None:
        self.data_dir = tmp_path / "data"
        shutil.copytree(log_dir, self.data_dir)
        self.pages = pages(self.data_dir)
        self.store = CountingStore(self.data_dir / "views.sqlite")
        self.views = new_views(RETENTION)
        self.keeper = keeper(self.views, self.data_dir, self.store)

    def fold(self, pages: list[list[LogEvent]]) -> None:
        for page in pages:
            self.views.apply_page(page)

    def whole_then_changes(self, last: int = 3) -> None:
        """Fold all pages but the ``last``, keep (whole), fold them, keep (changes)."""
        self.fold(self.pages[:-last])
        self.keeper.save()
        self.fold(self.pages[-last:])
        self.keeper.save()

    def rebuild(self, names: list[str] | None) -> None:
        """``replay rebuild`` of these views into the kept store, as an operator runs it."""
        data_dir = self.data_dir
        op.rebuild(
            shard_files(data_dir),
            op.RebuildStores(
                SqliteViewStore(data_dir / "rebuild-work.sqlite"),
                SqliteViewStore(data_dir / "views.sqlite"),
                SqliteRideArchive(data_dir / "ended-rides.sqlite"),
            ),
            op.select_views(names, ride_retention_s=RETENTION),
            "embedded",
        )


def taken_up(data_dir: Path) -> ViewSet:
    archive = SqliteRideArchive(data_dir / "ended-rides.sqlite")
    try:
        warm = warm_views(
            default_projections(ride_retention_s=RETENTION),
            SqliteViewStore(data_dir / "views.sqlite"),
            archive,
            shard_files(data_dir),
            "embedded",
        )
    finally:
        archive.close()
    assert warm.loaded, warm.reason
    return warm.views


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_views_kept_change_by_change_come_back_as_they_were_folded(
    log_dir: Path, data: st.DataObject, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(keeper_module, "OVERLAY_MIN", 10**9)  # never whole again here
    all_pages = pages(log_dir)
    keep_after = data.draw(
        st.sets(st.integers(0, len(all_pages) - 1), min_size=1, max_size=6), label="keep_after"
    )
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        store = CountingStore(data_dir / "views.sqlite")
        views = new_views(RETENTION)
        kept = keeper(views, data_dir, store)
        for i, page in enumerate(all_pages):
            views.apply_page(page)
            kept.after_page()
            if i in keep_after:
                kept.save()
        kept.save()
        assert store.whole == 1  # the first keeping; every later one wrote changes only
        assert len(store.changes) == len(keep_after)
        assert full(taken_up(data_dir)) == full(views)


def test_a_keeping_writes_the_parts_of_what_changed_only(log_dir: Path, tmp_path: Path) -> None:
    all_pages = pages(log_dir)
    store = CountingStore(tmp_path / "views.sqlite")
    views = new_views(RETENTION)
    kept = keeper(views, tmp_path, store)
    for page in all_pages[:-1]:
        views.apply_page(page)
    kept.save()
    kept.save()  # nothing folded since: no part written
    assert all(not changed for changed in store.changes[-1].parts.values())
    last = all_pages[-1]
    views.apply_page(last)
    kept.save()
    written = store.changes[-1].parts
    drivers_kept = len(views.drivers.rows)
    changed_drivers = {e.aggregate_id for e in last} & set(views.drivers.rows)
    assert set(written["drivers"]) <= {e.aggregate_id for e in last}
    assert set(written["drivers"]) >= changed_drivers
    assert 0 < len(written["drivers"]) < drivers_kept
    assert full(taken_up(tmp_path)) == full(views)


def test_views_are_kept_whole_again_once_their_changes_pass_a_share_of_them(
    log_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(keeper_module, "OVERLAY_MIN", 0)
    all_pages = pages(log_dir)
    store = CountingStore(tmp_path / "views.sqlite")
    views = new_views(RETENTION)
    kept = keeper(views, tmp_path, store)
    for page in all_pages:
        views.apply_page(page)
        kept.save()
    keys = len(views.drivers.rows) + len(views.locations.status) + len(views.heatmap.drivers)
    assert store.whole > 1  # the changes passed a quarter of the keys more than once
    assert views.kept_overlay <= keeper_module.OVERLAY_SHARE * keys
    conn = sqlite3.connect(tmp_path / "views.sqlite")
    (kept_parts,) = conn.execute("SELECT count(*) FROM parts").fetchone()
    conn.close()
    assert kept_parts <= views.kept_overlay
    assert full(taken_up(tmp_path)) == full(views)


def test_a_store_replaced_by_another_writer_is_kept_whole_again(
    log_dir: Path, tmp_path: Path
) -> None:
    kept = Kept(log_dir, tmp_path)
    half = len(kept.pages) // 2
    kept.fold(kept.pages[:half])
    kept.keeper.save()
    kept.rebuild(None)  # ``replay rebuild`` writes the store whole meanwhile
    kept.fold(kept.pages[half:])
    kept.keeper.save()
    assert kept.store.whole == 2 and not kept.store.changes  # refused, not applied
    assert full(taken_up(kept.data_dir)) == full(kept.views)


def test_a_change_that_fails_leaves_the_store_as_it_was(
    log_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kept = Kept(log_dir, tmp_path)
    kept.fold(kept.pages[:-3])
    kept.keeper.save()
    before = full(taken_up(kept.data_dir))
    kept.fold(kept.pages[-3:])

    def meta_write_fails(conn: sqlite3.Connection, changes: ViewChanges) -> None:
        real(conn, changes)  # every part written, then the transaction fails
        raise sqlite3.OperationalError("disk I/O error")

    from dispatch.adapters.sqlite import viewstore

    real = viewstore._apply
    monkeypatch.setattr(viewstore, "_apply", meta_write_fails)
    with pytest.raises(ViewStoreError, match="disk I/O error"):
        kept.keeper.save()
    assert full(taken_up(kept.data_dir)) == before
    monkeypatch.setattr(viewstore, "_apply", real)
    kept.keeper.save()  # the changes taken by the failed keeping are lost: kept whole again
    assert kept.store.whole == 2
    assert full(taken_up(kept.data_dir)) == full(kept.views)


def test_a_damaged_part_is_refused_and_the_whole_log_folded(log_dir: Path, tmp_path: Path) -> None:
    kept = Kept(log_dir, tmp_path)
    kept.whole_then_changes()
    store, tmp_path = kept.store, kept.data_dir
    conn = sqlite3.connect(tmp_path / "views.sqlite")
    rowid, blob = conn.execute(
        "SELECT rowid, part FROM parts WHERE length(part) > 0 LIMIT 1"
    ).fetchone()
    damaged = bytes([blob[0] ^ 0xFF]) + bytes(blob[1:])
    conn.execute("UPDATE parts SET part = ? WHERE rowid = ?", (damaged, rowid))
    conn.commit()
    conn.close()
    with pytest.raises(ViewStoreError, match="checksum of part"):
        store.load()
    archive = SqliteRideArchive(tmp_path / "ended-rides.sqlite")
    warm = warm_views(
        default_projections(ride_retention_s=RETENTION),
        store,
        archive,
        shard_files(log_dir),
        "embedded",
    )
    archive.close()
    assert not warm.loaded and "checksum of part" in warm.reason
    assert warm.views.kept_as is None  # the next keeping writes the store whole


class Recording(InlineBackground):
    """Runs jobs at once, counting them (a forked child in a serving process)."""

    def __init__(self) -> None:
        self.started = 0

    def start(self, job: Callable[[], bytes]) -> Job:
        self.started += 1
        return super().start(job)


def test_a_few_changes_are_kept_on_the_folding_thread_and_many_in_the_background(
    log_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(keeper_module, "OVERLAY_MIN", 10**9)
    all_pages = pages(log_dir)
    background = Recording()
    store = CountingStore(tmp_path / "views.sqlite")
    views = new_views(RETENTION)
    archive = SqliteRideArchive(tmp_path / "ended-rides.sqlite")
    kept = ViewKeeper(views, store, archive, "embedded", every_s=1e-9, background=background)
    views.apply_page(all_pages[0])
    kept.maybe_save()
    assert (background.started, store.whole) == (1, 1)  # whole: in the background
    views.apply_page(all_pages[1])
    kept.maybe_save()
    assert (background.started, len(store.changes)) == (1, 1)  # a few changes: here
    monkeypatch.setattr(keeper_module, "INLINE_PARTS", 0)
    views.apply_page(all_pages[2])
    kept.maybe_save()
    assert (background.started, len(store.changes)) == (2, 2)  # more: in the background
    archive.close()
    assert full(taken_up(tmp_path)) == full(views)


def test_a_rebuild_of_some_views_carries_the_changes_kept_of_the_others(
    log_dir: Path, tmp_path: Path
) -> None:
    kept = Kept(log_dir, tmp_path)
    kept.whole_then_changes()  # the last changes are parts on the whole views
    assert kept.store.changes and kept.store.changes[-1].parts["drivers"]
    kept.rebuild(["heatmap"])
    assert full(taken_up(kept.data_dir)) == full(kept.views)


def test_changes_refused_on_a_replaced_store_are_kept_whole_at_the_next_pass(
    log_dir: Path, tmp_path: Path
) -> None:
    all_pages = pages(log_dir)
    store = CountingStore(tmp_path / "views.sqlite")
    views = new_views(RETENTION)
    archive = SqliteRideArchive(tmp_path / "ended-rides.sqlite")
    kept = ViewKeeper(views, store, archive, "embedded", every_s=1e-9)
    views.apply_page(all_pages[0])
    kept.maybe_save()  # whole
    other = SqliteViewStore(tmp_path / "views.sqlite")  # another writer replaces the file
    other.save(StoredViews("embedded", {}, {}, generation="someone else's"))
    views.apply_page(all_pages[1])
    kept.maybe_save()  # its changes refused: nothing written
    assert (store.whole, store.changes) == (1, [])
    assert views.kept_as is None
    kept.maybe_save()  # kept whole at once
    assert store.whole == 2
    archive.close()
    assert full(taken_up(tmp_path)) == full(views)


def test_changes_nobody_takes_are_forgotten_once_they_pass_the_views_size(
    log_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Saves off (a keeping only at the stop): the changed keys do not grow with every ride
    ever folded; the keeping at the stop is whole."""
    monkeypatch.setattr(views_module, "TRACK_SLACK", 0)
    kept = Kept(log_dir, tmp_path)
    kept.fold(kept.pages[:1])
    kept.keeper.save()
    assert kept.views.kept_as is not None
    kept.fold(kept.pages[1:])
    changed = kept.views.take_changed()
    assert kept.views.kept_as is None
    states = kept.views.states
    assert all(len(keys) <= 2 * parts.keys(states[n].view) for n, keys in changed.items())
    kept.keeper.save()
    assert kept.store.whole == 2 and not kept.store.changes
    assert full(taken_up(kept.data_dir)) == full(kept.views)


def test_views_taken_up_at_start_keep_their_changes_on_the_file_they_came_from(
    log_dir: Path, tmp_path: Path
) -> None:
    kept = Kept(log_dir, tmp_path)
    kept.whole_then_changes()
    stored = kept.store.load()
    assert stored is not None
    warm = taken_up(kept.data_dir)  # a restart
    assert (warm.kept_as, warm.kept_overlay) == (
        stored.generation, sum(map(len, stored.parts.values())),
    )  # fmt: skip
    store = CountingStore(kept.data_dir / "views.sqlite")
    keeper(warm, kept.data_dir, store).save()
    assert (store.whole, len(store.changes)) == (0, 1)  # its changes, not the whole views
    assert full(taken_up(kept.data_dir)) == full(kept.views)
