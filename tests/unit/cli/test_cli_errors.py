"""How the CLI reports an error: ``line_for`` words each error type once, and the root
command reports whatever a command raised and did not report itself."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import typer
from pydantic import BaseModel, ValidationError, field_validator
from typer.testing import CliRunner, Result

from dispatch.adapters.sqlite.datadir import LogIntegrityError
from dispatch.cli import app
from dispatch.cli.errors import line_for, reported


class Secret(BaseModel):
    value: str

    @field_validator("value")
    @classmethod
    def strong(cls, value: str) -> str:
        raise ValueError("too weak")


def validation_error() -> ValidationError:
    try:
        Secret(value="hunter2")
    except ValidationError as error:
        return error
    raise AssertionError("the model accepted a weak secret")


def test_a_log_error_is_its_own_words_naming_the_file() -> None:
    error = LogIntegrityError("shard file /d/shard-0000.sqlite is missing")
    assert line_for(error) == "error: shard file /d/shard-0000.sqlite is missing"


def test_a_log_error_over_a_library_error_says_how_to_see_where() -> None:
    error = LogIntegrityError("shard file /d/shard-0000.sqlite: disk I/O error")
    error.__cause__ = sqlite3.OperationalError("disk I/O error")
    assert line_for(error) == (
        "error: shard file /d/shard-0000.sqlite: disk I/O error (DISPATCH_DEBUG=1 shows where)"
    )


def test_the_hints_added_to_a_log_error_follow_it() -> None:
    error = LogIntegrityError("no event log at /d: the folder does not exist")
    error.add_note("pass --data-dir or set DISPATCH_DATA_DIR")
    assert line_for(error) == (
        "error: no event log at /d: the folder does not exist "
        "(pass --data-dir or set DISPATCH_DATA_DIR)"
    )


def test_any_other_error_names_its_type_and_how_to_see_where() -> None:
    assert line_for(KeyError("rides")) == "error: KeyError: 'rides' (DISPATCH_DEBUG=1 shows where)"


def test_an_error_while_doing_something_says_what_could_not_be_done() -> None:
    error = LogIntegrityError("data dir /d holds 4 shards, DISPATCH_SHARDS=3")
    assert line_for(error, "start the API") == (
        "cannot start the API: LogIntegrityError: data dir /d holds 4 shards, DISPATCH_SHARDS=3"
    )


def test_a_settings_error_while_doing_something_lists_its_problems_not_the_input() -> None:
    line = line_for(validation_error(), "mint an operator token")
    assert line == "cannot mint an operator token: too weak"


def test_an_exit_inside_a_reported_block_is_not_an_error() -> None:
    with pytest.raises(typer.Exit) as ended, reported("do nothing"):
        raise typer.Exit(code=1)
    assert ended.value.exit_code == 1


def simulate_failing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Result:
    def broken(*_: object) -> None:
        raise RuntimeError("the city caught fire")

    monkeypatch.setattr("dispatch.simulator.embedded.simulate_embedded", broken)
    return CliRunner().invoke(app, ["simulate", "--json", "--data-dir", str(tmp_path / "log")])


def test_an_error_a_command_did_not_report_ends_the_cli_with_one_line_and_exit_2(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("DISPATCH_DEBUG", raising=False)
    result = simulate_failing(monkeypatch, tmp_path)
    assert result.exit_code == 2, result.output
    assert result.stderr.strip() == (
        "error: RuntimeError: the city caught fire (DISPATCH_DEBUG=1 shows where)"
    )


def test_with_dispatch_debug_the_error_is_raised_instead(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DISPATCH_DEBUG", "1")
    result = simulate_failing(monkeypatch, tmp_path)
    assert isinstance(result.exception, RuntimeError)
    assert result.stderr == ""


def test_typers_own_usage_errors_are_left_to_it(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["replay", "verify", "--shard", "-1"])
    assert result.exit_code == 2
    assert "Usage:" in result.output and "error: " not in result.output
