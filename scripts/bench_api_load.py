"""How much load an embedded `dispatch serve` takes from `dispatch simulate --api`, as a
deployment's users would measure it: for each driver count, a fresh server, a run of the
simulator through its HTTP API, and the steady figures (after the run's warm-up) of what
the apps saw.

    .venv/bin/python scripts/bench_api_load.py [--drivers 100,200,400,800] [--minutes 2]
        [--runs 3] [--no-pin] [--json FILE]

On a machine of two or more cores the server runs on CPU 0 and the simulator on CPU 1
(`taskset`), so that the load generator does not take the server's core: without it, on
two cores, the client's CPU is the server's loss. Per run: requests/s, the p99 of writes
(the highest p99 of the POST endpoints with 20 calls or more after warm-up) and of queries
(the same of the GET endpoints that are not streams), the server's CPU over the steady
window (after the warm-up to the end of the run's minutes, timed from the client's own
"running" line) and the client's (share of one core), the client's loop lag p99, served %
and whether every ride ended.
Medians over ``--runs``; nothing is asserted. The machine (CPU model, scripts/bench_index.py
queries/s) heads the output.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from benchmachine import calibrate, cpu_model  # noqa: E402

STREAMS = ("/offers", "/events")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pinned(cpu: int | None, command: list[str]) -> list[str]:
    return command if cpu is None else ["taskset", "-c", str(cpu), *command]


def one_run(drivers: int, minutes: float, seed: int, pin: bool) -> dict[str, Any]:
    data = Path(tempfile.mkdtemp(prefix="bench-api-load-"))
    port = free_port()
    env = os.environ | {"DISPATCH_RATE_LIMIT_REGISTRATIONS_PER_MIN": "0",
                        "DISPATCH_RATE_LIMIT_REQUESTS_PER_S": "0"}  # fmt: skip
    env.pop("DISPATCH_KAFKA_BOOTSTRAP", None)
    serve = [sys.executable, "-m", "dispatch", "serve", "--data-dir", str(data / "log"),
             "--port", str(port)]  # fmt: skip
    server = subprocess.Popen(pinned(0 if pin else None, serve), env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, 60.0)
        run_s = minutes * 60.0
        warmup_s = min(60.0, run_s / 5.0)  # as ApiRunConfig.warmup_s
        folder = data / "report"
        simulate = [sys.executable, "-m", "dispatch", "simulate", "--api", url, "--drivers",
                    str(drivers), "--minutes", str(minutes), "--seed", str(seed),
                    "--drain", "30", "--report", str(folder)]  # fmt: skip
        run = start_client(pinned(1 if pin else None, simulate), env)
        try:
            began = until_running(run)
            time.sleep(max(0.0, began + warmup_s - time.monotonic()))
            cpu_from = cpu_seconds(server.pid)  # the server's CPU over the steady window
            time.sleep(max(0.0, began + run_s - time.monotonic()))
            server_share = (cpu_seconds(server.pid) - cpu_from) / (run_s - warmup_s)
            run.communicate(timeout=3600)
        finally:
            if run.poll() is None:
                run.kill()
                run.wait()
        report: dict[str, Any] = json.loads((folder / "summary.json").read_text())
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree(data, ignore_errors=True)
    return figures(report, server_share, run.returncode)


def wait_ready(url: str, seconds: float) -> None:
    """Until ``url``/readyz answers 200; a ``RuntimeError`` after ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=2) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} was not ready within {seconds:g} s")


def start_client(command: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    """`dispatch simulate --api` with its progress on a pipe (``until_running`` reads it)."""
    return subprocess.Popen(command, env=env | {"COLUMNS": "200"}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip


def until_running(run: subprocess.Popen[str]) -> float:
    """``time.monotonic()`` when the client says its city is online ("running: 0 s")."""
    assert run.stderr is not None
    for line in run.stderr:
        if line.startswith("running"):
            return time.monotonic()
    raise RuntimeError(f"the client ended before its run began (exit {run.wait()})")


def figures(report: dict[str, Any], server_share: float, code: int) -> dict[str, Any]:
    endpoints = report["endpoints"]
    run_s = report["minutes"] * 60.0

    def p99s(kind: str) -> dict[str, float]:
        return {
            name: e["steady_latency_ms"]["p99"]
            for name, e in endpoints.items()
            if name.startswith(kind)
            and not name.endswith(STREAMS)
            and e["steady_calls"] >= 20
            and e["steady_latency_ms"]["p99"] is not None
        }

    def worst(kind: str) -> float | None:
        found = p99s(kind)
        return max(found.values()) if found else None

    calls = sum(e["steady_calls"] for e in endpoints.values())
    return {
        "drivers": report["drivers"],
        "requests_per_s": round(calls / max(1.0, run_s - report["warmup_s"]), 1),
        "writes_p99_ms": worst("POST"),
        "queries_p99_ms": worst("GET"),
        "server_cpu_share": round(server_share, 3),
        "client_cpu_share": report["client"]["cpu_share"],
        "client_loop_lag_p99_ms": report["client"]["loop_lag_ms"]["p99"],
        "served_pct": report["service"]["served_pct"],
        "all_rides_ended": code == 0 and report["service"]["unfinished"] == 0,
        "rate_limited": report["rate_limited"],
        "p99_ms": p99s("POST") | p99s("GET"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--drivers", default="100,200,400,800")
    parser.add_argument("--minutes", type=float, default=2.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-pin", action="store_true", help="do not pin server and client")
    parser.add_argument("--json", type=Path, help="also write every run's figures here")
    args = parser.parse_args()
    counts = [int(x) for x in args.drivers.split(",")]
    pin = not args.no_pin and (os.cpu_count() or 1) >= 2 and shutil.which("taskset") is not None
    print(f"machine: {cpu_model()}, {os.cpu_count()} cores; bench_index {calibrate():,.0f} q/s;"
          f" server and client {'pinned to CPU 0 and 1' if pin else 'not pinned'}")  # fmt: skip
    runs: dict[int, list[dict[str, Any]]] = {n: [] for n in counts}
    for r in range(args.runs):
        for n in counts:  # interleaved: a slow moment of the machine touches every count
            runs[n].append(one_run(n, args.minutes, seed=r + 1, pin=pin))
            print(json.dumps(runs[n][-1]), flush=True)
    keys = ("requests_per_s", "writes_p99_ms", "queries_p99_ms", "server_cpu_share",
            "client_cpu_share", "client_loop_lag_p99_ms", "served_pct")  # fmt: skip
    print("\nmedians over", args.runs, "runs")
    print("drivers " + " ".join(f"{k:>22}" for k in keys) + "  all ended")
    for n in counts:
        cells = []
        for k in keys:
            values = [x[k] for x in runs[n] if x[k] is not None]
            cells.append(f"{statistics.median(values):>22.2f}" if values else f"{'-':>22}")
        ended = all(x["all_rides_ended"] for x in runs[n])
        print(f"{n:>7} " + " ".join(cells) + f"  {ended}")
    if args.json is not None:
        args.json.write_text(json.dumps({str(n): runs[n] for n in counts}, indent=1))


if __name__ == "__main__":
    main()
