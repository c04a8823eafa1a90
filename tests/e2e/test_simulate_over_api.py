"""``dispatch simulate --api`` against a running ``dispatch serve`` (embedded), as a team
would aim it at its deployment: every app talks HTTP to the server's socket; the server's
own log is then checked (``replay verify``, and every ride of the run in an end state)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.faults.api_process import free_port, stop_process, wait_ready

RIDE_ENDS = {"dispatch.Ride.Completed", "dispatch.Ride.CancelledByRider",
             "dispatch.Ride.CancelledByOperator", "dispatch.Ride.Expired"}  # fmt: skip
LEGAL_ENDS = {"completed", "cancelled", "expired"}
RUN = ["--drivers", "12", "--minutes", "0.4", "--demand", "18", "--city-km", "2",
       "--speed-kmh", "150", "--drain", "60", "--seed", "3", "--json"]  # fmt: skip


def _env(**extra: str) -> dict[str, str]:
    env = os.environ | {"COLUMNS": "1000"} | extra
    env.pop("DISPATCH_KAFKA_BOOTSTRAP", None)
    return env


@pytest.fixture
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A ``dispatch serve`` on a free loopback port (limits from the test's marker), its URL
    and data dir; stopped by its pid (SIGTERM) at the end."""
    limits: dict[str, str] = getattr(request, "param", {})
    data_dir, port = tmp_path / "log", free_port()
    unlimited = {"DISPATCH_RATE_LIMIT_REGISTRATIONS_PER_MIN": "0",
                 "DISPATCH_RATE_LIMIT_REQUESTS_PER_S": "0"}  # fmt: skip
    env = _env(**(unlimited | limits))
    out = (tmp_path / "serve.log").open("wb")
    command = [sys.executable, "-m", "dispatch", "serve", "--data-dir", str(data_dir)]
    process = subprocess.Popen([*command, "--port", str(port)], env=env, stdout=out,
                               stderr=subprocess.STDOUT)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, process, 60)
        yield url, data_dir
    finally:
        stop_process(process)
        out.close()


def simulate(url: str, *extra: str) -> dict[str, Any]:
    command = [sys.executable, "-m", "dispatch", "simulate", "--api", url, *RUN, *extra]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=_env())
    assert done.returncode == 0, done.stderr[-3000:]
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def ride_ends_in_log(data_dir: Path) -> dict[str, str]:
    """Each ride of the log and the type of its last event."""
    command = [sys.executable, "-m", "dispatch", "replay", "export", "--data-dir", str(data_dir)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, env=_env())
    assert done.returncode == 0, done.stderr[-3000:]
    last: dict[str, str] = {}
    for line in done.stdout.splitlines():
        event = json.loads(line)
        if event["type"].startswith("dispatch.Ride."):
            last[str(event["aggregate_id"])] = event["type"]
    return last


def verify(data_dir: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "dispatch", "replay", "verify", "--data-dir", str(data_dir)]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, env=_env())


def assert_every_ride_ended(report: dict[str, Any], data_dir: Path) -> None:
    rides = [r for r in report["rides"] if r["ride_id"]]
    assert len(rides) == report["service"]["planned"] > 0  # no request lost
    assert {r["end"] for r in rides} <= LEGAL_ENDS, [r for r in rides if not r["end"]]
    in_log = ride_ends_in_log(data_dir)
    for ride in rides:
        assert in_log.get(ride["ride_id"]) in RIDE_ENDS, (ride, in_log.get(ride["ride_id"]))


def test_a_short_run_over_http_serves_rides_and_leaves_a_log_that_verifies(
    server: tuple[str, Path], tmp_path: Path
) -> None:
    url, data_dir = server
    report = simulate(url, "--report", str(tmp_path / "report"))
    assert report["service"]["served"] > 0
    assert report["service"]["completed"] > 0
    assert report["service"]["unfinished"] == 0
    assert report["endpoints"]["POST /drivers/{id}/locations"]["final_status"].get("202", 0) > 0
    for name in ("POST /rides", "POST /rides/{id}/accept", "POST /rides/{id}/complete"):
        latency = report["endpoints"][name]["latency_ms"]
        assert latency["p50"] is not None and latency["p50"] <= latency["p99"]
    assert report["client"]["cpu_s"] > 0
    assert report["connections"] == 256  # the client's pool (--connections), recorded
    assert_every_ride_ended(report, data_dir)
    result = verify(data_dir)
    assert result.returncode == 0 and "0 violation(s)" in result.stdout, result.stdout
    assert_report_files_match(report, tmp_path / "report")


def assert_report_files_match(report: dict[str, Any], folder: Path) -> None:
    """``--report`` wrote the same run as ``--json`` printed: its summary, each call."""
    assert json.loads((folder / "summary.json").read_text())["service"] == report["service"]
    calls = (folder / "calls.csv").read_text().splitlines()
    assert len(calls) - 1 == sum(e["calls"] for e in report["endpoints"].values())
    page = (folder / "report.html").read_text()
    assert "POST /rides/{id}/accept" in page and page.count("<svg") == 4


@pytest.mark.parametrize("server", [{"DISPATCH_RATE_LIMIT_REQUESTS_PER_S": "1"}], indirect=True)
def test_apps_that_meet_rate_limits_back_off_and_lose_nothing(server: tuple[str, Path]) -> None:
    url, data_dir = server
    report = simulate(url)
    assert report["rate_limited"] > 0
    limits = {reason for e in report["endpoints"].values() for reason in e["rate_limited"]}
    assert "more than 1 requests a second" in limits
    assert report["service"]["served"] > 0 and report["service"]["unfinished"] == 0
    assert report["service"]["refused"] == 0
    for name, endpoint in report["endpoints"].items():  # every call got through in the end
        if name.endswith(("/offers", "/events")):  # a stream: each connection is a call
            continue
        assert set(endpoint["final_status"]) <= {"200", "201", "202"}, (name, endpoint)
    offers = report["endpoints"]["GET /drivers/{id}/offers"]["attempts"]
    assert offers["200"] >= report["drivers"]  # every driver's stream opened in the end
    assert_every_ride_ended(report, data_dir)


def test_sigterm_ends_the_run_early_with_its_rides_ended_and_drivers_offline(
    server: tuple[str, Path],
) -> None:
    url, data_dir = server
    command = [sys.executable, "-m", "dispatch", "simulate", "--api", url, "--drivers", "6",
               "--minutes", "3", "--demand", "30", "--city-km", "2", "--seed", "4"]  # fmt: skip
    run = subprocess.Popen(command, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True)  # fmt: skip
    try:
        assert run.stderr is not None
        for line in run.stderr:  # the progress, every 10 s: rides are in flight by 20 s
            stage, _, seconds = line.partition(": ")
            if stage == "running" and float(seconds.split()[0]) >= 20:
                break
        signalled = time.monotonic()
        run.send_signal(signal.SIGTERM)  # its own pid
        out, err = run.communicate(timeout=300)
        closed_in = time.monotonic() - signalled
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert run.returncode == 143, err
    assert "stopped early by SIGTERM; 0 driver(s) left online" in err
    assert closed_in < 100  # not the rest of the 3 minutes and the 120 s drain
    assert "run against a deployment" in out  # the report of what ran, printed
    command = [sys.executable, "-m", "dispatch", "replay", "export", "--data-dir", str(data_dir)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, env=_env())
    drivers: dict[str, str] = {}
    rides: dict[str, str] = {}
    for line in done.stdout.splitlines():
        event = json.loads(line)
        if event["type"] in ("dispatch.Driver.WentOnline", "dispatch.Driver.WentOffline"):
            drivers[str(event["aggregate_id"])] = event["type"]
        elif event["type"].startswith("dispatch.Ride."):
            rides[str(event["aggregate_id"])] = event["type"]
    assert len(drivers) == 6 and set(drivers.values()) == {"dispatch.Driver.WentOffline"}
    assert rides and set(rides.values()) <= RIDE_ENDS, rides  # every ride it made ended
