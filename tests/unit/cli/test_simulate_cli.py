"""`dispatch simulate` at its edges: tiny runs work, out-of-range settings are usage errors."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from dispatch.cli import app


def test_a_simulation_with_a_single_driver_runs_to_the_end(tmp_path: Path) -> None:
    args = ["simulate", "--drivers", "1", "--minutes", "1", "--json", "--data-dir", str(tmp_path)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["violations"] == []


def test_too_many_shards_is_a_usage_error_that_names_the_setting(tmp_path: Path) -> None:
    args = ["simulate", "--shards", "5000", "--data-dir", str(tmp_path / "log")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert "shards" in result.output
    assert not (tmp_path / "log").exists()  # refused before anything was written
