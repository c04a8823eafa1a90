"""``dispatch replay`` on missing or damaged data: one line naming the file, exit code 2,
for every subcommand; ``export`` leaves no partial file behind."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner, Result

from dispatch.cli import app
from dispatch.domain.ids import new_id

AT = "2026-01-05T08:15:00"
SUBCOMMANDS = {
    "verify": ["verify"],
    "stats": ["stats"],
    "history": ["history", "ride", str(new_id(0))],
    "state": ["state", "--at", AT],
    "export": ["export"],
    "rebuild": ["rebuild", "--all"],
}


def replay(*args: str | Path) -> Result:
    return CliRunner().invoke(app, ["replay", *map(str, args)])


def refused(result: Result, *named: Path) -> str:
    """The command failed with exit code 2 and one error line naming every path."""
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    (line,) = result.stderr.strip().splitlines()
    for path in named:
        assert str(path) in line, line
    return line


def test_verify_refuses_an_empty_folder_and_names_the_missing_manifest(tmp_path: Path) -> None:
    line = refused(replay("verify", "--data-dir", tmp_path), tmp_path / "log.json")
    assert "missing" in line


def test_verify_refuses_a_path_that_is_a_regular_file(tmp_path: Path) -> None:
    a_file = tmp_path / "events.jsonl"
    a_file.write_text("{}\n")
    assert "not a folder" in refused(replay("verify", "--data-dir", a_file), a_file)


def test_verify_refuses_a_data_dir_that_does_not_exist(tmp_path: Path) -> None:
    refused(replay("verify", "--data-dir", tmp_path / "nowhere"), tmp_path / "nowhere")


def test_verify_refuses_a_data_dir_with_a_missing_shard_file_and_names_it(log_dir: Path) -> None:
    (log_dir / "shard-0001.sqlite").unlink()
    line = refused(replay("verify", "--data-dir", log_dir), log_dir / "shard-0001.sqlite")
    assert "missing" in line


@pytest.mark.parametrize("args", SUBCOMMANDS.values(), ids=SUBCOMMANDS.keys())
def test_every_subcommand_refuses_a_shard_file_that_is_not_a_database(
    log_dir: Path, args: list[str]
) -> None:
    damaged = log_dir / "shard-0000.sqlite"
    damaged.write_bytes(b"\x00" * 8192)
    refused(replay(*args, "--data-dir", log_dir), damaged)


@pytest.mark.parametrize("args", SUBCOMMANDS.values(), ids=SUBCOMMANDS.keys())
def test_every_subcommand_refuses_a_legacy_data_dir_and_says_how_to_adopt_it(
    log_dir: Path, args: list[str]
) -> None:
    (log_dir / "log.json").unlink()
    line = refused(replay(*args, "--data-dir", log_dir), log_dir / "log.json")
    assert f"dispatch replay adopt --shards 2 --data-dir {log_dir}" in line


def test_adopt_writes_the_manifest_of_a_legacy_data_dir_with_every_shard(log_dir: Path) -> None:
    (log_dir / "log.json").unlink()
    wrong = replay("adopt", "--shards", "3", "--data-dir", log_dir)
    refused(wrong, log_dir / "shard-0002.sqlite")
    assert not (log_dir / "log.json").exists()
    adopted = replay("adopt", "--shards", "2", "--data-dir", log_dir)
    assert adopted.exit_code == 0, adopted.output
    assert orjson.loads((log_dir / "log.json").read_bytes())["shards"] == 2
    assert replay("verify", "--data-dir", log_dir).exit_code == 0


def test_a_read_error_half_way_names_the_shard_file(log_dir: Path) -> None:
    damaged = broken_after_the_checks(log_dir)
    line = refused(replay("verify", "--data-dir", log_dir), damaged)
    assert "no such column" in line


def broken_after_the_checks(log_dir: Path) -> Path:
    """Shard 1 passes the opening checks (a database with the events table) but cannot be
    read: its table has other columns. Shard 0, read first, is sound."""
    damaged = log_dir / "shard-0001.sqlite"
    damaged.unlink()
    conn = sqlite3.connect(damaged)
    conn.execute("CREATE TABLE stored_events (something_else TEXT)")
    conn.commit()
    conn.close()
    return damaged


def test_a_failed_export_leaves_no_partial_file_and_the_old_file_as_it_was(
    log_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    target = out / "events.jsonl"
    target.write_bytes(b"the previous export\n")
    broken_after_the_checks(log_dir)
    result = replay("export", "--data-dir", log_dir, "-o", target)
    assert target.read_bytes() == b"the previous export\n"
    assert [p.name for p in out.iterdir()] == ["events.jsonl"]  # no temporary file left
    refused(result, log_dir / "shard-0001.sqlite")


def test_a_failed_export_to_a_new_file_creates_nothing(log_dir: Path, tmp_path: Path) -> None:
    broken_after_the_checks(log_dir)
    target = tmp_path / "out" / "events.jsonl"
    target.parent.mkdir()
    result = replay("export", "--data-dir", log_dir, "-o", target)
    assert list(target.parent.iterdir()) == []
    refused(result, log_dir / "shard-0001.sqlite")


def test_an_export_replaces_the_old_file_once_complete_and_keeps_its_mode(
    log_dir: Path, tmp_path: Path
) -> None:
    (tmp_path / "out").mkdir()
    target = tmp_path / "out" / "events.jsonl"
    target.write_bytes(b"the previous export\n")
    target.chmod(0o640)
    result = replay("export", "--data-dir", log_dir, "-o", target)
    assert result.exit_code == 0, result.output
    lines = target.read_bytes().splitlines()
    assert len(lines) > 100 and orjson.loads(lines[0])["type"].startswith("dispatch.")
    assert target.stat().st_mode & 0o777 == 0o640
    assert [p.name for p in target.parent.iterdir()] == ["events.jsonl"]


def test_an_export_into_a_missing_folder_is_one_line(log_dir: Path, tmp_path: Path) -> None:
    target = tmp_path / "nowhere" / "events.jsonl"
    refused(replay("export", "--data-dir", log_dir, "-o", target), target)
