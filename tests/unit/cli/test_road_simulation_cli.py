"""`dispatch simulate --road-network` and `dispatch experiment --etas`: the matcher ranks by
the ETA asked for, drivers drive the roads either way, and bad input is a usage error that
names the option."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from roads_data import helsinki_extract
from typer.testing import CliRunner

import dispatch.bootstrap
from dispatch.cli import app
from dispatch.matching.eta import EtaProvider, StraightLineEta
from dispatch.roads.eta import RoadNetworkEta

SMALL = ["--drivers", "12", "--minutes", "4", "--demand", "5", "--warmup", "1", "--seed", "3"]


def simulate(tmp_path: Path, *args: str) -> Any:
    network = str(helsinki_extract())
    argv = ["simulate", *SMALL, "--road-network", network, "--json", *args]
    result = CliRunner().invoke(app, [*argv, "--data-dir", str(tmp_path / "log")])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.mark.parametrize("eta, provider", [("road", RoadNetworkEta), ("straight", StraightLineEta)])
def test_the_matcher_ranks_by_the_eta_asked_for_while_drivers_drive_the_roads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, eta: str, provider: type
) -> None:
    built: list[EtaProvider] = []
    original = dispatch.bootstrap.build_eta

    def recording(settings: Any) -> EtaProvider:
        built.append(original(settings))
        return built[-1]

    monkeypatch.setattr(dispatch.bootstrap, "build_eta", recording)
    out = simulate(tmp_path, "--eta", eta)
    assert built and all(type(p) is provider for p in built)
    assert out["road_network"]["eta"] == eta
    assert out["road_network"]["nodes"] > 1_000 and out["violations"] == []


def test_a_road_network_is_the_default_eta_and_changes_what_drivers_are_offered(
    tmp_path: Path,
) -> None:
    road = simulate(tmp_path / "a")
    straight = simulate(tmp_path / "b", "--eta", "straight")
    assert road["road_network"]["eta"] == "road"
    assert road["demand_hash"] == straight["demand_hash"]  # the same city and demand
    assert road["pickup_eta_s_mean"] != straight["pickup_eta_s_mean"]


def test_a_run_without_a_road_network_reports_none(tmp_path: Path) -> None:
    args = ["simulate", "--drivers", "5", "--minutes", "1", "--json", "--data-dir", str(tmp_path)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["road_network"] is None


def bad_inputs(tmp_path: Path) -> dict[str, tuple[list[str], str]]:
    damaged = tmp_path / "damaged.roads.npz"
    damaged.write_bytes(b"not a zip at all")
    text = tmp_path / "city.txt"
    text.write_text("roads")
    truncated = tmp_path / "cut.osm.pbf"
    truncated.write_bytes(helsinki_extract().read_bytes()[:5_000])
    return {
        "missing": (["--road-network", str(tmp_path / "none.roads.npz")], "--road-network"),
        "damaged": (["--road-network", str(damaged)], "--road-network"),
        "truncated_extract": (["--road-network", str(truncated)], "--road-network"),
        "wrong_suffix": (["--road-network", str(text)], "--road-network"),
        "road_eta_without_network": (["--eta", "road"], "--eta"),
        "unknown_eta": (["--eta", "fastest"], "--eta"),
    }


CASES = ["missing", "damaged", "truncated_extract", "wrong_suffix", "road_eta_without_network",
         "unknown_eta"]  # fmt: skip


@pytest.mark.parametrize("case", CASES)
def test_bad_road_options_are_a_usage_error_that_names_them(tmp_path: Path, case: str) -> None:
    args, option = bad_inputs(tmp_path)[case]
    log = tmp_path / "log"
    result = CliRunner().invoke(app, ["simulate", *SMALL, *args, "--data-dir", str(log)])
    assert result.exit_code == 2, result.output
    assert option in result.output
    assert not log.exists()  # refused before anything ran


def test_an_extract_whose_graph_cannot_be_kept_is_a_usage_error(tmp_path: Path) -> None:
    extract = tmp_path / "city.osm.pbf"
    extract.write_bytes(helsinki_extract().read_bytes())
    (tmp_path / "city.roads.npz").mkdir()  # where the built graph would be kept
    log = tmp_path / "log"
    args = ["simulate", *SMALL, "--road-network", str(extract), "--data-dir", str(log)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    said = "".join(result.output.replace("│", " ").split())  # the box's wrapping undone
    assert "--road-network" in said and "Isadirectory" in said
    assert not log.exists()


def test_a_bad_road_network_in_the_environment_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DISPATCH_ROAD_NETWORK", str(tmp_path / "gone.roads.npz"))
    result = CliRunner().invoke(app, ["simulate", *SMALL, "--data-dir", str(tmp_path / "l")])
    assert result.exit_code == 2 and "DISPATCH_ROAD_NETWORK" in result.output


def test_an_experiment_compares_road_and_straight_etas_on_the_same_demand(tmp_path: Path) -> None:
    args = ["experiment", "--strategies", "greedy", "--etas", "road,straight", "--road-network",
            str(helsinki_extract()), "--seeds", "2", *SMALL[:-2], "--jobs", "2",
            "--report", str(tmp_path / "r"), "--json"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["strategies"] == ["greedy/road", "greedy/straight"]
    assert out["baseline"] == "greedy/road"
    assert [v["eta"] for v in out["variants"]] == ["road", "straight"]
    by = {(r["seed"], r["road_network"]["eta"]): r for r in out["runs"]}
    for seed in (1, 2):
        assert by[(seed, "road")]["demand_hash"] == by[(seed, "straight")]["demand_hash"]
    assert any(d["metric"] == "pickup_realised_s_mean" for d in out["differences"])


@pytest.mark.parametrize(
    "args, reason",
    [
        (["--etas", "road"], "at least two variants"),
        (["--etas", "road,road", "--strategies", "greedy,batch"], "twice"),
        (["--etas", "bus,road"], "choose from"),
        (["--etas", "road,straight", "--no-network"], "need a road network"),
    ],
)
def test_meaningless_eta_options_of_an_experiment_are_refused(args: list[str], reason: str) -> None:
    network = [] if "--no-network" in args else ["--road-network", str(helsinki_extract())]
    given = [a for a in args if a != "--no-network"]
    strategies = [] if "--strategies" in given else ["--strategies", "greedy"]
    result = CliRunner().invoke(app, ["experiment", *strategies, *given, *network])
    assert result.exit_code == 2, result.output
    assert reason in result.output
