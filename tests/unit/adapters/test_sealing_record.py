"""The data dir's sealing record (review finding 7): once sealing began, a serving process
does not start without its key store, nor with another one (every sealed field would read
as erased); the record says whether data from before sealing began stays in the clear."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from dispatch.adapters.sqlite.datadir import LogIntegrityError
from dispatch.adapters.sqlite.keystore import (
    SqliteKeyStore,
    check_sealing,
    key_store_path,
    read_sealing,
)
from dispatch.bootstrap import build_embedded_engine
from dispatch.settings import Settings


def test_a_new_data_dir_records_its_key_store_and_that_nothing_is_in_the_clear(
    tmp_path: Path,
) -> None:
    found = check_sealing(tmp_path, had_events=False, now=10.0)
    store = SqliteKeyStore(key_store_path(tmp_path))
    assert found["key_store_id"] == store.store_id and found["clear_before"] is None
    store.close()
    assert read_sealing(tmp_path) == found
    assert check_sealing(tmp_path, had_events=True, now=20.0) == found  # kept as it was


def test_a_log_older_than_sealing_records_since_when_data_is_sealed(tmp_path: Path) -> None:
    assert check_sealing(tmp_path, had_events=True, now=10.0)["clear_before"] == 10.0


def test_a_missing_key_store_is_refused_once_sealing_began(tmp_path: Path) -> None:
    check_sealing(tmp_path, had_events=False, now=10.0)
    key_store_path(tmp_path).unlink()
    with pytest.raises(LogIntegrityError, match="is missing"):
        check_sealing(tmp_path, had_events=False, now=20.0)
    assert not key_store_path(tmp_path).exists()  # not made empty by the check


def test_another_key_store_is_refused(tmp_path: Path) -> None:
    check_sealing(tmp_path, had_events=False, now=10.0)
    key_store_path(tmp_path).unlink()
    SqliteKeyStore(key_store_path(tmp_path)).close()  # a new, empty one
    with pytest.raises(LogIntegrityError, match="another key store"):
        check_sealing(tmp_path, had_events=False, now=20.0)


def test_the_engine_does_not_start_without_its_key_store(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", shards=1)
    engine = build_embedded_engine(settings, time.time)
    engine.stop()
    key_store_path(settings.data_dir).unlink()
    with pytest.raises(LogIntegrityError, match="is missing"):
        build_embedded_engine(settings, time.time)
