"""The view-store port (``projections.store.ViewStore``) over its adapter, one SQLite file:
what is saved whole comes back as it was; changes are applied only on the generation they
were made against, all or nothing, and come back after the whole state, in order."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from dispatch.adapters.sqlite.viewstore import SqliteViewStore
from projections.store import GONE, StaleViews, StoredViews, ViewChanges, ViewStore

WHOLE = StoredViews(
    "embedded", {"drivers": b"whole drivers", "surge": b"whole surge"},
    {"drivers": "", "surge": ""}, generation="g1",
)  # fmt: skip


def changes(base: str, generation: str, **parts: bytes) -> ViewChanges:
    return ViewChanges(
        "embedded", base, generation, {"surge": b"surge now"}, {"drivers": "", "surge": ""},
        {"drivers": b"drivers' rest"}, {"drivers": dict(parts)},
    )  # fmt: skip


@pytest.fixture(params=["sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ViewStore]:
    yield SqliteViewStore(tmp_path / "views.sqlite")


def test_nothing_kept_reads_as_none_and_a_whole_save_comes_back(store: ViewStore) -> None:
    assert store.load() is None
    store.save(WHOLE)
    assert store.load() == WHOLE


def test_changes_come_back_after_the_whole_state_in_the_order_first_kept(
    store: ViewStore,
) -> None:
    store.save(WHOLE)
    store.keep_changes(changes("g1", "g2", a=b"a1", b=b"b1"))
    store.keep_changes(changes("g2", "g3", b=b"b2", a=GONE, c=b"c1"))
    kept = store.load()
    assert kept is not None
    assert kept.views == {"drivers": b"whole drivers", "surge": b"surge now"}
    assert kept.rests == {"drivers": b"drivers' rest"}
    assert kept.parts == {"drivers": [("a", GONE), ("b", b"b2"), ("c", b"c1")]}
    assert kept.generation == "g3"


def test_changes_on_another_generation_are_refused_and_nothing_written(
    store: ViewStore,
) -> None:
    with pytest.raises(StaleViews):  # nothing kept yet
        store.keep_changes(changes("g1", "g2", a=b"a1"))
    store.save(WHOLE)
    with pytest.raises(StaleViews):
        store.keep_changes(changes("g0", "g2", a=b"a1"))
    store.save(StoredViews("embedded", WHOLE.views, WHOLE.params))  # whole, no generation
    with pytest.raises(StaleViews):
        store.keep_changes(changes("", "g2", a=b"a1"))
    assert store.load() == StoredViews("embedded", WHOLE.views, WHOLE.params)


def test_a_whole_save_drops_the_changes_kept_before(store: ViewStore) -> None:
    store.save(WHOLE)
    store.keep_changes(changes("g1", "g2", a=b"a1"))
    store.save(WHOLE)
    assert store.load() == WHOLE


def test_discard_removes_what_is_kept(store: ViewStore) -> None:
    store.save(WHOLE)
    store.discard()
    assert store.load() is None
    store.discard()  # nothing kept: nothing happens


_DIES_IN_CHANGES = """
import os, sys
from pathlib import Path
from dispatch.adapters.sqlite import viewstore
from projections.store import ViewChanges
real = viewstore._apply
def dying(conn, changes):
    real(conn, changes)
    os._exit(9)  # killed with every change written, before the commit
viewstore._apply = dying
parts = {f"k{i}": os.urandom(300) for i in range(20_000)}  # the journal spills to disk
viewstore.SqliteViewStore(Path(sys.argv[1])).keep_changes(ViewChanges(
    "embedded", "g1", "g2", {"surge": b"surge then"}, {"drivers": "", "surge": ""},
    {"drivers": b"rest then"}, {"drivers": parts}))
"""


def test_changes_cut_short_by_a_crash_are_rolled_back_and_never_replayed_later(
    tmp_path: Path,
) -> None:
    """A process killed inside its changes leaves their journal: the next reader sees the
    views before them, and a whole save after it is not overwritten by the old pages."""
    path = tmp_path / "views.sqlite"
    store = SqliteViewStore(path)
    store.save(WHOLE)
    died = subprocess.run([sys.executable, "-c", _DIES_IN_CHANGES, str(path)], check=False)
    assert died.returncode == 9
    assert path.with_name("views.sqlite-journal").exists()
    assert store.load() == WHOLE  # rolled back, readable
    newer = StoredViews("embedded", {"drivers": b"newer", "surge": b"s"},
                        {"drivers": "", "surge": ""}, generation="g3")  # fmt: skip
    store.save(newer)
    store.keep_changes(changes("g3", "g4", a=b"a1"))
    kept = store.load()
    assert kept is not None
    assert (kept.views["drivers"], kept.generation, kept.parts) == (
        b"newer", "g4", {"drivers": [("a", b"a1")]},
    )  # fmt: skip
