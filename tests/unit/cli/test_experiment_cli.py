"""`dispatch experiment` and the scenario options it shares with `simulate`: paired runs
end to end, unpaired runs refused, meaningless options named."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dispatch.cli import app
from dispatch.simulator.experiment import DemandMismatch, check_paired
from dispatch.simulator.html_report import RunData
from dispatch.simulator.results import Request
from dispatch.simulator.trace import write_demand

SMALL = ["--drivers", "15", "--minutes", "4", "--demand", "4", "--warmup", "1"]


def test_an_experiment_reports_paired_differences_and_writes_its_report(tmp_path: Path) -> None:
    args = ["experiment", "--seeds", "2", *SMALL, "--report", str(tmp_path / "r"), "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["paired"] is True and out["baseline"] == "greedy"
    assert out["seeds"] == [1, 2] and len(out["runs"]) == 4
    hashes = {(r["seed"], r["strategy"]): r["demand_hash"] for r in out["runs"]}
    assert hashes[(1, "greedy")] == hashes[(1, "batch")] != hashes[(2, "greedy")]
    served = next(d for d in out["differences"] if d["metric"] == "served_pct")
    assert served["n"] == 2 and served["other"] == "batch"
    assert "Student" in out["method"]
    report = tmp_path / "r"
    assert (report / "report.html").stat().st_size > 10_000
    with (report / "rides.csv").open() as f:
        strategies = {row["strategy"] for row in csv.DictReader(f)}
    assert strategies == {"greedy", "batch"}


def run_data(strategy: str, seed: int, demand: str) -> RunData:
    return RunData(strategy, seed, {"seed": seed, "demand_hash": demand}, [], [])


def test_runs_of_one_seed_with_different_demand_are_not_compared() -> None:
    check_paired([run_data("greedy", 1, "aa"), run_data("batch", 1, "aa")])
    with pytest.raises(DemandMismatch, match="seed 2: the variants saw different requests"):
        check_paired([run_data("greedy", 2, "aa"), run_data("batch", 2, "bb")])


def test_a_simulation_can_write_its_demand_and_replay_it_as_a_trace(tmp_path: Path) -> None:
    demand = tmp_path / "demand.csv"
    first = CliRunner().invoke(
        app,
        ["simulate", *SMALL, "--json", "--data-dir", str(tmp_path / "a"), "--write-demand",
         str(demand), "--report", str(tmp_path / "report")],
    )  # fmt: skip
    assert first.exit_code == 0, first.output
    assert (tmp_path / "report" / "report.html").exists()
    with demand.open() as f:
        written = list(csv.DictReader(f))
    assert len(written) == json.loads(first.stdout)["requests_total"] > 0
    args = ["simulate", "--drivers", "15", "--minutes", "4", "--warmup", "1", "--json"]
    again = CliRunner().invoke(
        app, [*args, "--demand-trace", str(demand), "--data-dir", str(tmp_path / "b")]
    )
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["requests_total"] == len(written)


def test_a_trace_with_a_bad_row_is_refused_naming_the_row(tmp_path: Path) -> None:
    trace = tmp_path / "t.csv"
    write_demand(trace, [Request(0.0, (37.77, -122.42), (37.78, -122.41))] * 3, _start())
    rows = trace.read_text().splitlines()
    rows[2] = rows[2].replace("37.77", "91.5", 1)
    trace.write_text("\n".join(rows) + "\n")
    args = ["simulate", "--drivers", "5", "--minutes", "2", "--warmup", "0"]
    args += ["--demand-trace", str(trace)]
    result = CliRunner().invoke(app, [*args, "--data-dir", str(tmp_path / "log")])
    assert result.exit_code == 2
    said = " ".join(result.output.replace("│", " ").split())  # the box wraps at the path's length
    assert "--demand-trace" in said and "data row 2 " in said
    skipped = CliRunner().invoke(
        app, [*args, "--skip-bad-rows", "--json", "--data-dir", str(tmp_path / "log2")]
    )
    assert skipped.exit_code == 0, skipped.output
    assert json.loads(skipped.stdout)["requests_total"] == 2


def _start() -> datetime:
    return datetime(2026, 1, 5, 8, tzinfo=UTC)


MEANINGLESS = {
    "zones_without_trace": (["--zones", "z.csv"], "--zones"),
    "window_without_trace": (["--trace-window", "0:10"], "--trace-window"),
    "scale_without_trace": (["--trace-time-scale", "2"], "--trace-time-scale"),
    "skip_without_trace": (["--skip-bad-rows"], "--skip-bad-rows"),
    "warmup_as_long_as_the_run": (["--minutes", "5", "--warmup", "5"], "--warmup"),
    "negative_warmup": (["--warmup", "-1"], "--warmup"),
    "demand_and_a_trace": (["--demand", "3", "--demand-trace", "x.csv"], "--demand"),
    "missing_trace": (["--demand-trace", "no-such-file.csv"], "--demand-trace"),
}


@pytest.mark.parametrize("args, option", MEANINGLESS.values(), ids=MEANINGLESS.keys())
@pytest.mark.parametrize("command", ["simulate", "experiment"])
def test_a_meaningless_scenario_option_is_a_usage_error_that_names_it(
    tmp_path: Path, command: str, args: list[str], option: str
) -> None:
    where = ["--data-dir", str(tmp_path / "log")] if command == "simulate" else []
    result = CliRunner().invoke(app, [command, *args, *where, "--report", str(tmp_path / "r")])
    assert result.exit_code == 2, result.output
    assert option in result.output
    assert not (tmp_path / "log").exists() and not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    "value, reason",
    [("greedy", "at least two"), ("greedy,greedy", "named twice"), ("greedy,fast", "unknown")],
)
def test_strategies_must_be_two_or_more_known_ones(value: str, reason: str) -> None:
    result = CliRunner().invoke(app, ["experiment", "--strategies", value])
    assert result.exit_code == 2
    assert "--strategies" in result.output and reason in result.output


def test_a_bad_trace_window_is_a_usage_error(tmp_path: Path) -> None:
    trace = tmp_path / "t.csv"
    write_demand(trace, [Request(0.0, (37.77, -122.42), (37.78, -122.41))], _start())
    for window in ("10:5", "a:b", "5"):
        result = CliRunner().invoke(
            app, ["simulate", "--demand-trace", str(trace), "--trace-window", window]
        )
        assert result.exit_code == 2 and "--trace-window" in result.output, window


def _trace(tmp_path: Path, minutes: float = 10) -> Path:
    trace = tmp_path / "trace.csv"
    requests = [Request(60.0 * m, (37.77, -122.42), (37.78, -122.41)) for m in range(int(minutes))]
    write_demand(trace, requests, _start())
    return trace


OUTPUTS = {
    "demand_with_an_unknown_suffix": (["--write-demand", "{tmp}/out.txt"], "--write-demand"),
    "demand_in_a_missing_folder": (["--write-demand", "{tmp}/nope/d.csv"], "--write-demand"),
    "demand_onto_a_folder": (["--write-demand", "{tmp}"], "--write-demand"),
    "demand_over_its_trace": (
        ["--demand-trace", "{tmp}/trace.csv", "--write-demand", "{tmp}/trace.csv"],
        "--write-demand",
    ),
    "report_onto_a_file": (["--report", "{tmp}/trace.csv"], "--report"),
}


@pytest.mark.parametrize("args, option", OUTPUTS.values(), ids=OUTPUTS.keys())
def test_an_output_the_run_could_not_write_is_refused_before_it_runs(
    tmp_path: Path, args: list[str], option: str
) -> None:
    trace = _trace(tmp_path)
    before = trace.read_bytes()
    filled = [a.replace("{tmp}", str(tmp_path)) for a in args]
    result = CliRunner().invoke(
        app, ["simulate", "--minutes", "2", *filled, "--data-dir", str(tmp_path / "log")]
    )
    assert result.exit_code == 2, result.output
    assert option in result.output
    assert not (tmp_path / "log").exists() and trace.read_bytes() == before


def test_a_trace_that_ends_within_the_warm_up_is_refused(tmp_path: Path) -> None:
    trace = _trace(tmp_path, minutes=10)  # requests in the first 10 minutes only
    args = ["simulate", "--minutes", "60", "--demand-trace", str(trace)]  # warm-up 40
    result = CliRunner().invoke(app, [*args, "--data-dir", str(tmp_path / "log")])
    assert result.exit_code == 2
    assert "during the warm-up" in result.output and "--demand-trace" in result.output


def test_a_run_with_nothing_decided_after_warm_up_reports_no_figure_rather_than_zero(
    tmp_path: Path,
) -> None:
    args = ["simulate", "--drivers", "3", "--minutes", "2", "--demand", "0.01", "--json"]
    result = CliRunner().invoke(app, [*args, "--data-dir", str(tmp_path / "log")])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["decided"] == 0 and report["served_pct"] is None
    assert report["market"] == "unknown"


def test_an_experiment_compares_one_city_over_one_and_four_shards_on_the_same_demand(
    tmp_path: Path,
) -> None:
    args = ["experiment", "--strategies", "greedy", "--city-shards", "1,4", "--seeds", "1"]
    result = CliRunner().invoke(app, [*args, *SMALL, "--report", str(tmp_path / "r"), "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["baseline"] == "greedy/1 shard"
    assert [v["city_shards"] for v in out["variants"]] == [1, 4]
    by_shards = {r["shards"]: r for r in out["runs"]}
    assert by_shards[1]["demand_hash"] == by_shards[4]["demand_hash"]
    assert by_shards[1]["cross_shard_matches"] == 0
    assert all(r["violations"] == [] for r in out["runs"])


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        (["--city-shards", "0,4"], "shard counts from 1 to 64"),
        (["--city-shards", "a,b"], "shard counts from 1 to 64"),
        (["--city-shards", "4,4"], "a count twice"),
        (["--strategies", "greedy"], "at least two variants"),
        (["--strategies", "greedy", "--city-shards", "4"], "at least two variants"),
    ],
)
def test_meaningless_city_shard_options_are_refused_with_the_reason(
    options: list[str], needle: str
) -> None:
    result = CliRunner().invoke(app, ["experiment", *options, *SMALL])
    assert result.exit_code == 2
    assert needle in result.output


def test_a_city_simulated_over_four_shards_matches_across_their_borders(tmp_path: Path) -> None:
    args = ["simulate", "--drivers", "200", "--minutes", "10", "--warmup", "0", "--seed", "3"]
    result = CliRunner().invoke(
        app, [*args, "--city-shards", "4", "--json", "--data-dir", str(tmp_path / "log")]
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["shards"] == 4 and out["violations"] == []
    assert out["cross_shard_matches"] > 0
    assert out["offer_s_p99_cross_shard"] is not None


@pytest.mark.parametrize(
    ("options", "env", "needle"),
    [
        (["--city-shards", "4", "--shards", "2"], {}, "need --shards 4 or more"),
        (["--city-shards", "0"], {}, "--city-shards"),
    ],
)
def test_meaningless_city_shards_for_a_simulation_are_refused_before_it_starts(
    tmp_path: Path, options: list[str], env: dict[str, str], needle: str
) -> None:
    args = ["simulate", "--minutes", "1", "--data-dir", str(tmp_path / "log"), *options]
    result = CliRunner().invoke(app, args, env=env)
    assert result.exit_code == 2
    assert needle in " ".join(result.output.replace("│", " ").split())
    assert not (tmp_path / "log").exists()
