"""The embedded log knows its shards (``log.json``): a missing, empty or foreign shard file,
a damaged manifest or another shard count is an error naming the file, never an empty
shard. Readers go through ``build_log_source``, the serving process through
``build_runtime``."""

from __future__ import annotations

import os
import re
import sqlite3
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from dispatch.adapters.sqlite.datadir import LogIntegrityError
from dispatch.adapters.sqlite.logsource import SqliteLogSource
from dispatch.bootstrap import build_embedded_engine, build_log_source, build_runtime
from dispatch.domain.ids import new_id
from dispatch.replay import operations as op
from dispatch.settings import Settings

SHARDS = 2


def shard(data_dir: Path, n: int) -> Path:
    return data_dir / f"shard-{n:04d}.sqlite"


def emptied(path: Path) -> None:
    path.write_bytes(b"")


def foreign(path: Path) -> None:
    path.write_bytes(b"not a database, just some text\n" * 200)


def without_events_table(path: Path) -> None:
    path.unlink()
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE something_else (x)")
    conn.commit()
    conn.close()


DAMAGES: dict[str, Callable[[Path], None]] = {
    "missing": Path.unlink,
    "empty": emptied,
    "not_sqlite": foreign,
    "no_events_table": without_events_table,
}


def test_a_new_embedded_log_gets_a_manifest_with_its_shard_count(tmp_path: Path) -> None:
    data_dir = tmp_path / "new"
    build_embedded_engine(Settings(data_dir=data_dir, shards=3))
    manifest = orjson.loads((data_dir / "log.json").read_bytes())
    assert manifest == {"format": "dispatch.embedded-log", "version": 1, "shards": 3}
    # no temporary file left behind; sealing.json names the key store made with the log
    assert sorted(p.name for p in data_dir.iterdir() if not p.name.startswith("shard-")) == [
        "log.json",
        "sealing.json",
        "subject-keys.sqlite",
    ]


def test_a_shard_with_no_events_yet_is_fine(tmp_path: Path) -> None:
    build_embedded_engine(Settings(data_dir=tmp_path, shards=SHARDS))
    source = build_log_source(Settings(data_dir=tmp_path))
    assert source.shards() == [0, 1]
    assert op.verify(source) == (0, [])


@pytest.mark.parametrize("damage", DAMAGES.values(), ids=DAMAGES.keys())
def test_a_reader_refuses_a_damaged_shard_file_and_names_it(
    log_dir: Path, damage: Callable[[Path], None]
) -> None:
    damage(shard(log_dir, 1))
    with pytest.raises(LogIntegrityError, match=re.escape(str(shard(log_dir, 1)))):
        build_log_source(Settings(data_dir=log_dir))


@pytest.mark.parametrize("damage", DAMAGES.values(), ids=DAMAGES.keys())
def test_serve_refuses_a_data_dir_with_a_damaged_shard_file_and_names_it(
    log_dir: Path, damage: Callable[[Path], None]
) -> None:
    damage(shard(log_dir, 1))
    with pytest.raises(LogIntegrityError, match=re.escape(str(shard(log_dir, 1)))):
        build_runtime(Settings(data_dir=log_dir, shards=SHARDS))
    if damage is Path.unlink:
        assert not shard(log_dir, 1).exists()  # refused before a fresh one was made


def test_serve_refuses_a_shard_count_other_than_the_logs(log_dir: Path) -> None:
    with pytest.raises(LogIntegrityError) as refused:
        build_runtime(Settings(data_dir=log_dir, shards=4))
    assert f"data dir {log_dir} holds 2 shards" in str(refused.value)
    assert "DISPATCH_SHARDS=4" in str(refused.value)
    assert not shard(log_dir, 2).exists()


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"{not json",
        b'{"format": "something", "shards": 2}',
        b'{"format": "dispatch.embedded-log", "version": 1, "shards": 0}',
        b"[1, 2]",
    ],
    ids=["empty", "not_json", "other_format", "no_shards", "a_list"],
)
def test_a_damaged_manifest_is_refused_and_named(log_dir: Path, content: bytes) -> None:
    (log_dir / "log.json").write_bytes(content)
    for build in (
        lambda: build_log_source(Settings(data_dir=log_dir)),
        lambda: build_runtime(Settings(data_dir=log_dir, shards=SHARDS)),
    ):
        with pytest.raises(LogIntegrityError, match=re.escape(str(log_dir / "log.json"))):
            build()


def test_a_manifest_of_a_newer_format_version_is_refused(log_dir: Path) -> None:
    body = {"format": "dispatch.embedded-log", "version": 2, "shards": 2}
    (log_dir / "log.json").write_bytes(orjson.dumps(body))
    with pytest.raises(LogIntegrityError, match="format version 2"):
        build_log_source(Settings(data_dir=log_dir))


def test_a_reader_refuses_a_shard_file_beyond_the_logs_shard_count(log_dir: Path) -> None:
    shard(log_dir, 2).write_bytes(shard(log_dir, 0).read_bytes())  # log.json says 2
    with pytest.raises(LogIntegrityError, match=re.escape(str(shard(log_dir, 2)))):
        build_log_source(Settings(data_dir=log_dir))


def test_serve_adopts_a_legacy_data_dir_that_has_every_shard_file(log_dir: Path) -> None:
    (log_dir / "log.json").unlink()
    build_runtime(Settings(data_dir=log_dir, shards=SHARDS))
    assert orjson.loads((log_dir / "log.json").read_bytes())["shards"] == SHARDS


def test_serve_refuses_a_legacy_data_dir_missing_a_shard_file(log_dir: Path) -> None:
    (log_dir / "log.json").unlink()
    shard(log_dir, 1).unlink()
    with pytest.raises(LogIntegrityError, match=re.escape(str(shard(log_dir, 1)))):
        build_runtime(Settings(data_dir=log_dir, shards=SHARDS))
    assert not (log_dir / "log.json").exists() and not shard(log_dir, 1).exists()


def test_a_reader_refuses_a_legacy_data_dir_and_says_how_to_adopt_it(log_dir: Path) -> None:
    (log_dir / "log.json").unlink()
    with pytest.raises(LogIntegrityError) as refused:
        build_log_source(Settings(data_dir=log_dir))
    assert str(log_dir / "log.json") in str(refused.value)
    assert f"dispatch replay adopt --shards 2 --data-dir {log_dir}" in str(refused.value)


def test_a_data_dir_that_is_a_file_is_refused_by_readers_and_serve(tmp_path: Path) -> None:
    a_file = tmp_path / "events"
    a_file.write_text("hello")
    for build in (
        lambda: build_log_source(Settings(data_dir=a_file)),
        lambda: build_runtime(Settings(data_dir=a_file)),
    ):
        with pytest.raises(LogIntegrityError, match=re.escape(str(a_file)) + ".* not a folder"):
            build()


def test_a_damaged_page_met_while_reading_names_the_shard_file(log_dir: Path) -> None:
    path = shard(log_dir, 0)
    data = bytearray(path.read_bytes())
    pages = len(data) // 4096
    assert pages > 10, "the shard file should hold the events themselves"
    for page in range(pages // 2, pages):  # the header and the schema stay sound
        data[page * 4096 : (page + 1) * 4096] = b"\xde\xad\xbe\xef" * 1024
    path.write_bytes(bytes(data))
    source = build_log_source(Settings(data_dir=log_dir))  # the quick checks pass
    with pytest.raises(LogIntegrityError, match=re.escape(str(path)) + ".*malformed"):
        op.verify(source)


def test_a_shard_file_deleted_after_opening_is_an_error_not_an_empty_shard(log_dir: Path) -> None:
    source = build_log_source(Settings(data_dir=log_dir))
    os.remove(shard(log_dir, 1))
    with pytest.raises(LogIntegrityError, match=re.escape(str(shard(log_dir, 1)))):
        list(source.read(1))


def test_history_of_an_id_from_a_shard_the_log_does_not_have_is_empty(log_dir: Path) -> None:
    assert SqliteLogSource(log_dir, shards=SHARDS).stored_events(9, new_id(9)) == []


def test_readiness_reports_a_shard_file_lost_while_serving(tmp_path: Path) -> None:
    """A shard file deleted under a running API: /readyz answers 503 naming it, /metrics
    still answers (no 500)."""
    from fastapi.testclient import TestClient

    from dispatch.api import AuthSettings, create_app

    runtime = build_runtime(Settings(data_dir=tmp_path, shards=SHARDS))
    with TestClient(create_app(runtime, AuthSettings())) as client:
        assert client.get("/readyz").status_code == 200
        shard(tmp_path, 1).unlink()
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert "shard-0001.sqlite" in ready.json()["reason"]
        assert client.get("/metrics").status_code == 200
