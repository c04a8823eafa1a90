"""Replay over a log written by the simulator: clean, time-travel exact, rebuild equal."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from dispatch.adapters.sqlite.logsource import SqliteLogSource
from dispatch.adapters.sqlite.ridearchive import SqliteRideArchive
from dispatch.adapters.sqlite.viewstore import SqliteViewStore
from dispatch.bootstrap import build_embedded_engine, build_markets
from dispatch.cli import app
from dispatch.domain.driver import Driver
from dispatch.domain.ride import Ride
from dispatch.replay import operations as op
from dispatch.settings import Settings
from dispatch.simulator.clock import SimClock
from dispatch.simulator.runner import SimConfig, Simulation
from projections.base import Checkpointed
from projections.runner import ProjectionRunner
from projections.store import decode
from projections.views import ViewSet, default_projections
from schemas.commands import Outcome

CAPTURE_AT_TICK = 240


def rebuild(source: SqliteLogSource, into: Path, names: list[str] | None, **kw: Any) -> Any:
    stores = op.RebuildStores(
        SqliteViewStore(into / "views.rebuild.sqlite"),
        SqliteViewStore(into / "views.sqlite"),
        SqliteRideArchive(into / "ended-rides.sqlite"),
    )
    return op.rebuild(source, stores, op.select_views(names), "embedded", **kw)


def kept(target: str) -> dict[str, Checkpointed[Any]]:
    stored = SqliteViewStore(Path(target)).load()
    assert stored is not None
    return decode(stored)


def live_statuses(engine: Any) -> dict[str, str]:
    """Every ride's and driver's status, read from the live aggregates."""
    out: dict[str, str] = {}
    for worker in engine.workers.values():
        app_ = worker.app
        for n in app_.recorder.select_notifications(1, 10**9):
            if n.originator_version != 1:
                continue
            agg = app_.repository.get(n.originator_id)
            if isinstance(agg, Ride | Driver):
                out[str(agg.id)] = str(agg.status)
    return out


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    data_dir = tmp_path_factory.mktemp("log")
    settings = Settings(data_dir=data_dir, shards=2)
    clock = SimClock()
    engine = build_embedded_engine(settings, clock)

    def step(_sent: list[str]) -> list[Outcome]:
        return [o for r in engine.run_once() for o in r.outcomes]

    sim = Simulation(
        SimConfig(drivers=150, minutes=8, seed=3, demand_per_min=11, warmup_minutes=0),
        engine.transport,
        step,
        clock,
        build_markets(settings),
    )
    for worker in engine.workers.values():
        worker.listeners.append(sim.on_commit)
    live = ViewSet(default_projections())
    runner = ProjectionRunner(SqliteLogSource(data_dir), live)
    captured: dict[str, Any] = {}
    ticks = [0]

    def on_tick(now: float) -> None:
        ticks[0] += 1
        runner.catch_up()
        if ticks[0] == CAPTURE_AT_TICK:
            captured["at"] = now
            captured["statuses"] = live_statuses(engine)

    report = sim.run(on_tick=on_tick)
    return {"dir": data_dir, "report": report, "live": live, **captured}


def test_the_simulated_log_verifies_clean(simulated: dict[str, Any]) -> None:
    events, violations = op.verify(SqliteLogSource(simulated["dir"]))
    assert events == simulated["report"].events > 1_000
    assert violations == []


def test_state_at_a_moment_equals_the_live_state_captured_then(
    simulated: dict[str, Any],
) -> None:
    views = op.state_at(SqliteLogSource(simulated["dir"]), simulated["at"])
    replayed = {r.ride_id: r.status for r in views.rides.values()}
    replayed |= {d.driver_id: d.status for d in views.drivers.rows.values()}
    assert replayed == simulated["statuses"]
    assert len(replayed) > 150


def test_rebuild_equals_the_views_kept_live_during_the_run(
    simulated: dict[str, Any], tmp_path: Path
) -> None:
    result = rebuild(SqliteLogSource(simulated["dir"]), tmp_path, None)
    rebuilt = kept(result.target)
    live = simulated["live"]
    assert rebuilt["rides"].view == live.rides
    assert rebuilt["drivers"].view == live.drivers
    assert rebuilt["rides"].checkpoint == live.states["rides"].checkpoint


def test_an_interrupted_rebuild_resumes_and_ends_equal(
    simulated: dict[str, Any], tmp_path: Path
) -> None:
    source = SqliteLogSource(simulated["dir"])
    with pytest.raises(InterruptedError):
        rebuild(source, tmp_path, ["rides", "drivers"], stop_after=1_500)
    assert not (tmp_path / "views.sqlite").exists()
    result = rebuild(source, tmp_path, ["rides", "drivers"])
    assert result.resumed_from and result.events == simulated["report"].events - 1_500
    rebuilt = kept(result.target)
    assert rebuilt["rides"].view == simulated["live"].rides


def test_the_cli_verifies_exports_and_reports_stats_from_a_fresh_shell(
    simulated: dict[str, Any],
    tmp_path: Path,
) -> None:
    runner = CliRunner()
    data = str(simulated["dir"])
    verified = runner.invoke(app, ["replay", "verify", "--data-dir", data])
    assert verified.exit_code == 0, verified.output
    assert "0 violation(s)" in verified.output
    out = tmp_path / "events.jsonl"
    exported = runner.invoke(app, ["replay", "export", "--data-dir", data, "-o", str(out)])
    assert exported.exit_code == 0, exported.output
    assert len(out.read_text().splitlines()) == simulated["report"].events
    stats = runner.invoke(app, ["replay", "stats", "--data-dir", data, "--json"])
    assert stats.exit_code == 0 and '"Ride.Requested"' in stats.output


def test_verify_exits_non_zero_on_a_broken_log(simulated: dict[str, Any], tmp_path: Path) -> None:
    import shutil
    import sqlite3

    broken = tmp_path / "broken"
    shutil.copytree(simulated["dir"], broken)
    conn = sqlite3.connect(broken / "shard-0000.sqlite")
    with conn:  # tamper: delete one event from the middle of an aggregate's history
        conn.execute(
            "DELETE FROM stored_events WHERE rowid = (SELECT rowid FROM stored_events "
            "WHERE originator_version = 2 AND originator_id IN "
            "(SELECT originator_id FROM stored_events WHERE originator_version = 3) LIMIT 1)"
        )
    conn.close()
    result = CliRunner().invoke(app, ["replay", "verify", "--data-dir", str(broken)])
    assert result.exit_code == 1
    assert "version_gap" in result.output


def test_a_rebuild_from_a_time_folds_only_the_events_since_then(
    simulated: dict[str, Any],
    tmp_path: Path,
) -> None:
    source = SqliteLogSource(simulated["dir"])
    since = simulated["at"]
    result = rebuild(source, tmp_path, ["rides"], since=since)
    rides = kept(result.target)["rides"]
    assert rides.view, "rides requested after the moment are there"
    assert all(row.requested_at >= since for row in rides.view.values())
    assert rides.checkpoint == simulated["live"].states["rides"].checkpoint  # whole log


def test_replay_without_a_log_says_where_it_looked_and_exits_2(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    result = CliRunner().invoke(app, ["replay", "verify", "--data-dir", str(missing)])
    assert result.exit_code == 2
    assert "no event log at" in result.output and "nowhere" in result.output


def test_a_shard_the_log_does_not_have_is_a_usage_error(simulated: dict[str, Any]) -> None:
    args = ["replay", "verify", "--data-dir", str(simulated["dir"]), "--shard", "9"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert "not 9" in result.output


def test_history_of_a_rider_asked_as_a_ride_says_what_it_is(simulated: dict[str, Any]) -> None:
    rider = next(
        e.aggregate_id
        for e in SqliteLogSource(simulated["dir"]).read(0)
        if e.topic == "dispatch.Rider.Registered"
    )
    args = ["replay", "history", "ride", rider, "--data-dir", str(simulated["dir"])]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1
    assert "is not a ride" in result.output


def test_a_damaged_log_ends_the_command_with_one_line_and_exit_2(
    simulated: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import shutil
    import sqlite3

    from dispatch.cli import main

    broken = tmp_path / "damaged"
    shutil.copytree(simulated["dir"], broken)
    conn = sqlite3.connect(broken / "shard-0000.sqlite")
    with conn:  # one event whose state is not JSON any more
        conn.execute("UPDATE stored_events SET state = X'7b22' WHERE rowid = 5")
    conn.close()
    monkeypatch.delenv("DISPATCH_DEBUG", raising=False)
    monkeypatch.setattr("sys.argv", ["dispatch", "replay", "stats", "--data-dir", str(broken)])
    with pytest.raises(SystemExit) as ended:
        main()
    assert ended.value.code == 2
    said = capsys.readouterr().err
    assert "error:" in said and "DISPATCH_DEBUG=1" in said
    assert "Traceback" not in said
