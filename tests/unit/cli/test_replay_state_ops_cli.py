"""``dispatch replay state --ops`` draws the whole city: a meaningless combination is refused
with the reason (exit 2), and a data dir with no log says so."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from dispatch.cli import app

AT = ["replay", "state", "--ops", "--at", "2026-01-05T08:30:00Z"]


@pytest.mark.parametrize(
    "extra",
    [["--id", "0000b026-0b53-4e7c-ba65-f0407a6e75f5"], ["--lat", "37.7", "--lng", "-122.4"],
     ["--shard", "0"]],
)  # fmt: skip
def test_ops_with_an_option_of_one_thing_is_refused_with_the_reason(
    extra: list[str], tmp_path: Path
) -> None:
    result = CliRunner().invoke(app, [*AT, "--data-dir", str(tmp_path), *extra])
    assert result.exit_code == 2
    assert "--ops draws the whole city" in result.output


def test_ops_over_a_data_dir_with_no_log_says_so(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, [*AT, "--data-dir", str(tmp_path)])
    assert result.exit_code != 0
    assert "holds no embedded event log" in result.output
