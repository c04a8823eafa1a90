"""`dispatch simulate` at its edges: tiny runs work, out-of-range settings are usage errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
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


MEANINGLESS = {
    "negative_demand": (["--demand", "-3"], "--demand"),
    "zero_demand": (["--demand", "0"], "--demand"),
    "nan_demand": (["--demand", "nan"], "--demand"),
    "infinite_demand": (["--demand", "inf"], "--demand"),
    "zero_minutes": (["--minutes", "0"], "--minutes"),
    "negative_minutes": (["--minutes", "-1"], "--minutes"),
    "nan_minutes": (["--minutes", "nan"], "--minutes"),
    "infinite_minutes": (["--minutes", "inf"], "--minutes"),
    "zero_drivers": (["--drivers", "0"], "--drivers"),
    "negative_drivers": (["--drivers", "-5"], "--drivers"),
    "too_many_drivers": (["--drivers", "100001"], "--drivers"),
    "negative_seed": (["--seed", "-1"], "--seed"),
    "zero_shards": (["--shards", "0"], "--shards"),
    "unknown_strategy": (["--strategy", "fastest"], "--strategy"),
    "workers_without_kafka": (["--workers", "2"], "--workers"),
    "more_workers_than_shards": (
        ["--kafka", "127.0.0.1:1", "--shards", "2", "--workers", "3"],
        "--workers",
    ),
}


@pytest.mark.parametrize("args, option", MEANINGLESS.values(), ids=MEANINGLESS.keys())
def test_a_meaningless_option_is_a_usage_error_that_names_it(
    tmp_path: Path, args: list[str], option: str
) -> None:
    result = CliRunner().invoke(app, ["simulate", *args, "--data-dir", str(tmp_path / "log")])
    assert result.exit_code == 2, result.output
    assert option in result.output
    assert not (tmp_path / "log").exists()  # refused before anything ran


def test_a_data_dir_that_is_a_file_is_a_usage_error(tmp_path: Path) -> None:
    a_file = tmp_path / "log"
    a_file.write_text("not a folder")
    result = CliRunner().invoke(app, ["simulate", "--data-dir", str(a_file)])
    assert result.exit_code == 2
    assert "--data-dir" in result.output and "not a folder" in result.output


def _no_nan(constant: str) -> object:
    raise ValueError(f"not strict JSON: {constant}")


def test_the_json_report_of_a_run_without_requests_is_strict_json(tmp_path: Path) -> None:
    args = ["simulate", "--drivers", "2", "--minutes", "1", "--demand", "0.001", "--json"]
    result = CliRunner().invoke(app, [*args, "--data-dir", str(tmp_path / "log")])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout, parse_constant=_no_nan)
    assert report["requests"] == 0
    assert report["offer_s_p50"] is None and report["pickup_eta_s_mean"] is None


def test_the_table_report_shows_figures_without_samples_as_a_dash(tmp_path: Path) -> None:
    args = ["simulate", "--drivers", "2", "--minutes", "1", "--demand", "0.001"]
    result = CliRunner().invoke(app, [*args, "--data-dir", str(tmp_path / "log")])
    assert result.exit_code == 0, result.output
    assert "nan" not in result.stdout
    assert "- / - / - s" in result.stdout


API_MEANINGLESS = {
    "remote_target": (["--api", "http://192.0.2.7:8000"], "--allow-remote"),
    "not_a_url": (["--api", "localhost"], "not an http"),
    "in_process_option": (["--api", "http://127.0.0.1:9", "--kafka", "127.0.0.1:9092"], "--kafka"),
    "strategy": (["--api", "http://127.0.0.1:9", "--strategy", "batch"], "--strategy"),
    "data_dir": (["--api", "http://127.0.0.1:9", "--data-dir", "x"], "--data-dir"),
    "bad_profile": (["--api", "http://127.0.0.1:9", "--profile", "saw"], "flat, ramp, rush"),
    "too_fast": (["--api", "http://127.0.0.1:9", "--speed-kmh", "900"], "--speed-kmh"),
    "nan_drain": (["--api", "http://127.0.0.1:9", "--drain", "nan"], "--drain"),
    "too_long": (["--api", "http://127.0.0.1:9", "--minutes", "241"], "--minutes"),
    "profile_without_api": (["--profile", "rush"], "only with --api"),
    "open_loop_without_api": (["--open-loop"], "only with --api"),
    "no_cleanup_without_api": (["--no-cleanup"], "only with --api"),
    "report_not_a_folder": (
        ["--api", "http://127.0.0.1:9", "--report", "pyproject.toml"],
        "not a folder",
    ),
}


@pytest.mark.parametrize("case", API_MEANINGLESS, ids=list(API_MEANINGLESS))
def test_meaningless_options_of_a_run_against_a_deployment_are_usage_errors(case: str) -> None:
    args, said = API_MEANINGLESS[case]
    result = CliRunner().invoke(app, ["simulate", *args])
    assert result.exit_code == 2, result.output
    assert said in " ".join(result.output.split()), result.output


@pytest.mark.parametrize("where", ["file", "file/sub"])
def test_a_report_folder_that_cannot_be_made_is_refused_before_the_run(
    tmp_path: Path, where: str
) -> None:
    (tmp_path / "file").write_text("not a folder")
    args = ["simulate", "--api", "http://127.0.0.1:9", "--report", str(tmp_path / where)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    said = "".join(ch for ch in result.output if ch.isalnum())  # the panel wraps lines
    assert "notafolder" in said or "isafilenofoldercanbemadeinit" in said, result.output


def test_a_deployment_that_does_not_answer_is_an_error_that_says_so() -> None:
    args = ["simulate", "--api", "http://127.0.0.1:9", "--drivers", "1", "--minutes", "0.1"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "could not sign in" in " ".join(result.output.split())
