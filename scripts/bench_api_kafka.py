"""How much load a balanced deployment on Kafka takes from `dispatch simulate --api`, and
what the apps see while one API instance is killed and started again.

    scripts/kafka-local.sh start
    .venv/bin/python scripts/bench_api_kafka.py [--bootstrap 127.0.0.1:9092]
        [--drivers 100,200,400] [--minutes 2] [--runs 3] [--client-cores 0.5]
        [--no-kill] [--json FILE] [--reports DIR]

Each run builds a fresh deployment on the running broker: topics of a new prefix (two
shards), two `dispatch worker` processes, two `dispatch serve` instances on Kafka, HAProxy
in front (scripts/balancer.sh); then `dispatch simulate --api` through the balancer. For
each driver count a steady run, then (unless --no-kill) a run in which instance 1 is
killed (SIGKILL, its own pid) 40 % into the run's minutes and started again 5 s later.

The machine has two cores for everything (broker, workers, instances, balancer and the
load): the client is capped at ``--client-cores`` of a core (a cgroup v1 CPU quota, root
only; the output says when it could not be capped, and a run whose client reached 90 % of
its cap says ``client_at_cap``) so that the load generator takes a known share; its own
stalls are in its report. Per run, over the steady window (after the warm-up, to the end
of the run's minutes; timed from the client's own "running" line): requests/s, the p99 of
writes and of queries (as scripts/bench_api_load.py), the CPU share of the deployment's
processes (broker and balancer included), the client's CPU (share of a core, and ms per
driver a second), served %, whether every ride ended, the calls that failed in the end
(no answer or a 5xx), the streams cut; and the p99 and worst latency of the writes planned
in the 30 s from the kill (in a steady run, the same 30 s: the comparison). Medians over
``--runs``; nothing is asserted.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))
from bench_api_load import (  # noqa: E402
    STREAMS,
    cpu_seconds,
    figures,
    free_port,
    start_client,
    until_running,
    wait_ready,
)
from benchmachine import calibrate, cpu_model  # noqa: E402

from dispatch.adapters.kafka.processes import start_api, start_worker, stop_worker  # noqa: E402
from dispatch.adapters.kafka.topics import create_topics, delete_topics  # noqa: E402
from dispatch.settings import Settings  # noqa: E402
from dispatch.simulator.apps.stats import failed as failed_call  # noqa: E402

BALANCER = ROOT / "scripts" / "balancer.sh"
CGROUP = Path("/sys/fs/cgroup/cpu")  # cgroup v1's cpu controller (v2: cpu.max)
SECRET = "bench-only-Vq8Kd2Lw9Xz4Rt6Ny1Pm3Hs7Bc5Jf0Ga"
KILL_AT, DOWN_S, WINDOW_S = 0.4, 5.0, 30.0


@dataclass
class Deployment:
    settings: Settings
    url: str
    ports: list[int]
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    cpu_pids: list[int] = field(default_factory=list)  # measured: broker and everything here


@contextmanager
def deployment(bootstrap: str, work: Path) -> Iterator[Deployment]:
    prefix = f"bench-api-{uuid.uuid4().hex[:8]}"
    create_topics(bootstrap, prefix, 2)
    settings = Settings(kafka_bootstrap=bootstrap, topic_prefix=prefix, shards=2,
                        data_dir=work / "workers")  # fmt: skip
    ports = [free_port(), free_port()]
    d = Deployment(settings, "", ports)
    balancer_dir = work / "balancer"
    try:
        for i in (1, 2):
            d.processes[f"worker-{i}"] = start_worker(settings, work / f"worker-{i}.log", f"w{i}")
        for i, port in enumerate(ports, 1):
            own = settings.model_copy(update={"data_dir": work / f"api-{i}"})
            d.processes[f"api-{i}"] = start_api(own, port, work / f"api-{i}.log", SECRET)
        for port in ports:
            wait_ready(f"http://127.0.0.1:{port}", 120.0)
        bal = free_port()
        backends = ",".join(f"127.0.0.1:{p}" for p in ports)
        subprocess.run([str(BALANCER), "start", "--port", str(bal), "--backends", backends,
                        "--dir", str(balancer_dir)], check=True, timeout=30,
                       stdout=subprocess.DEVNULL)  # fmt: skip
        d.url = f"http://127.0.0.1:{bal}"
        wait_ready(d.url, 120.0)
        d.cpu_pids = [p.pid for p in d.processes.values()]
        d.cpu_pids.append(int((balancer_dir / "haproxy.pid").read_text()))
        broker = ROOT / ".kafka-local" / f"broker-{bootstrap.rsplit(':', 1)[1]}" / "kafka.pid"
        if broker.exists():  # scripts/kafka-local.sh's broker
            d.cpu_pids.append(int(broker.read_text()))
        yield d
    finally:
        subprocess.run([str(BALANCER), "stop", "--dir", str(balancer_dir)], timeout=30,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        for name, process in d.processes.items():
            stop_worker(process)  # SIGTERM by its own pid (SIGKILL after 30 s)
            del name
        delete_topics(bootstrap, prefix)


def capped(cores: float | None) -> tuple[list[str], str, Path | None]:
    """A command prefix that puts the client in a cgroup of ``cores`` of CPU time, what it
    does (for the output), and the cgroup (to remove at the end)."""
    if cores is None:
        return [], "not capped", None
    group = CGROUP / f"dispatch-bench-client-{os.getpid()}"
    try:
        group.mkdir(exist_ok=True)
        (group / "cpu.cfs_period_us").write_text("100000")
        (group / "cpu.cfs_quota_us").write_text(str(int(100000 * cores)))
    except OSError as error:
        with suppress(OSError):
            group.rmdir()
        return [], f"not capped ({error.strerror}: {group})", None
    procs = group / "cgroup.procs"
    command = ["sh", "-c", f'echo $$ > {procs} && exec "$@"', "sh"]
    return command, f"capped at {cores:g} core (cgroup {group})", group


def cpu_of(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        with suppress(OSError, IndexError):  # gone: the killed instance, counted before
            total += cpu_seconds(pid)
    return total


def one_run(args: argparse.Namespace, drivers: int, seed: int, kill: bool,
            prefix: list[str]) -> dict[str, Any]:  # fmt: skip
    """One run on a fresh deployment; with ``kill``, instance 1 is killed ``KILL_AT`` into
    the run's minutes (timed from the client's own "running" line: the city is online)."""
    run_s = args.minutes * 60.0
    warmup_s = min(60.0, run_s / 5.0)  # as ApiRunConfig.warmup_s
    kind = "kill" if kill else "steady"
    with tempfile.TemporaryDirectory(prefix="bench-api-kafka-") as tmp:
        work = Path(tmp)
        folder = (args.reports or work) / f"{drivers}-{kind}-seed{seed}"
        with deployment(args.bootstrap, work) as d:
            command = [*prefix, sys.executable, "-m", "dispatch", "simulate", "--api", d.url,
                       "--drivers", str(drivers), "--minutes", str(args.minutes), "--seed",
                       str(seed), "--drain", "30", "--report", str(folder)]  # fmt: skip
            env = dict(os.environ)
            env.pop("DISPATCH_KAFKA_BOOTSTRAP", None)
            run = start_client(command, env)
            try:
                began = until_running(run)
                steady_from = began + warmup_s
                time.sleep(max(0.0, steady_from - time.monotonic()))
                cpu_from = cpu_of(d.cpu_pids)
                if kill:
                    time.sleep(max(0.0, began + KILL_AT * run_s - time.monotonic()))
                    first = d.processes["api-1"]
                    kill_s = time.monotonic() - began
                    killed_cpu = cpu_of([first.pid])
                    first.kill()  # its own pid, with its streams open
                    first.wait()
                    time.sleep(DOWN_S)
                    own = d.settings.model_copy(update={"data_dir": work / "api-1-again"})
                    again = start_api(own, d.ports[0], work / "api-1-again.log")
                    d.processes["api-1-again"] = again
                    d.cpu_pids.append(again.pid)
                    cpu_from -= killed_cpu  # its part until the kill stays counted
                else:
                    kill_s = KILL_AT * run_s  # the same window, for comparison
                time.sleep(max(0.0, began + run_s - time.monotonic()))
                deployment_share = (cpu_of(d.cpu_pids) - cpu_from) / (run_s - warmup_s)
                _, err = run.communicate(timeout=3600)
            finally:
                if run.poll() is None:
                    run.kill()
                    run.wait()
        report: dict[str, Any] = json.loads((folder / "summary.json").read_text())
        calls = list(csv.DictReader((folder / "calls.csv").open()))
    result = figures(report, deployment_share, run.returncode)
    result["deployment_cpu_share"] = result.pop("server_cpu_share")
    result["client_cpu_ms_per_driver_s"] = report["client"]["cpu_ms_per_driver_s"]
    if prefix and report["client"]["cpu_share"] >= 0.9 * args.client_cores:
        result["client_at_cap"] = True  # its figures measured its cap as much as the server
    result |= window_figures(report, calls, kill_s, warmup_s, run_s)
    if not 0.0 < kill_s < run_s - DOWN_S:
        result["note"] = f"the kill at {kill_s:.0f} s fell outside the run"
    if run.returncode not in (0, 1):
        result["note"] = err[-500:]
    return result


def window_figures(report: dict[str, Any], calls: list[dict[str, str]], kill_s: float,
                   warmup_s: float, run_s: float) -> dict[str, Any]:  # fmt: skip
    """The calls that failed in the end (no answer or a 5xx) over the steady window, and
    the p99 and worst latency of the writes planned in the ``WINDOW_S`` from ``kill_s``
    (in a steady run, the same window: the comparison); and the streams cut (connections
    lost and opened again)."""
    failed = 0
    window: list[float] = []
    for c in calls:
        t, status = float(c["planned_s"]), int(c["status"])
        if warmup_s <= t < run_s and failed_call(status):
            failed += 1
        if c["endpoint"].startswith("POST") and kill_s <= t < kill_s + WINDOW_S:
            window.append(float(c["latency_ms"]))
    window.sort()
    streams = [e for name, e in report["endpoints"].items() if name.endswith(STREAMS)]
    return {
        "kill_at_s": round(kill_s, 1),
        "failed_calls": failed,
        "window_writes": len(window),
        "window_writes_p99_ms": window[int(0.99 * (len(window) - 1))] if window else None,
        "window_writes_max_ms": window[-1] if window else None,
        "streams_cut": sum(e["attempts"].get("0", 0) for e in streams),
        "requests_lost": report["service"]["planned"]
        - report["service"]["requested"]
        - report["service"]["not_sent"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", default=os.environ.get("DISPATCH_KAFKA_BOOTSTRAP",
                                                              "127.0.0.1:9092"))  # fmt: skip
    parser.add_argument("--drivers", default="100,200,400")
    parser.add_argument("--minutes", type=float, default=2.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--client-cores", type=float, default=0.5,
                        help="the client's CPU cap in cores (0: no cap)")  # fmt: skip
    parser.add_argument("--no-kill", action="store_true", help="steady runs only")
    parser.add_argument("--json", type=Path, help="also write every run's figures here")
    parser.add_argument("--reports", type=Path, help="each run's --report folder in here")
    args = parser.parse_args()
    counts = [int(x) for x in args.drivers.split(",")]
    prefix, cap, group = capped(args.client_cores or None)
    try:
        measure(args, counts, prefix, cap)
    finally:
        if group is not None:
            with suppress(OSError):  # a client still in it: left for the operator
                group.rmdir()


def measure(args: argparse.Namespace, counts: list[int], prefix: list[str], cap: str) -> None:
    print(f"machine: {cpu_model()}, {os.cpu_count()} cores; bench_index {calibrate():,.0f} q/s;"
          f" client {cap}; Kafka at {args.bootstrap}")  # fmt: skip
    kinds = ["steady"] + ([] if args.no_kill else ["kill"])
    runs: dict[tuple[int, str], list[dict[str, Any]]] = {(n, k): [] for n in counts for k in kinds}
    for r in range(args.runs):
        for n in counts:  # interleaved: a slow moment of the machine touches every count
            steady = one_run(args, n, r + 1, False, prefix)
            runs[(n, "steady")].append(steady)
            print(json.dumps({"kind": "steady"} | steady), flush=True)
            if "kill" in kinds:
                killed = one_run(args, n, r + 1, True, prefix)
                runs[(n, "kill")].append(killed)
                print(json.dumps({"kind": "kill"} | killed), flush=True)
    keys = ("requests_per_s", "writes_p99_ms", "queries_p99_ms", "deployment_cpu_share",
            "client_cpu_share", "client_cpu_ms_per_driver_s", "served_pct", "failed_calls",
            "streams_cut", "window_writes_p99_ms", "window_writes_max_ms")  # fmt: skip
    print("\nmedians over", args.runs, "runs")
    print("drivers kind   " + " ".join(f"{k:>22}" for k in keys) + "  all ended")
    for (n, kind), found in runs.items():
        cells = []
        for k in keys:
            values = [x[k] for x in found if x.get(k) is not None]
            cells.append(f"{statistics.median(values):>22.2f}" if values else f"{'-':>22}")
        ended = all(x["all_rides_ended"] for x in found)
        print(f"{n:>7} {kind:<6} " + " ".join(cells) + f"  {ended}")
    if args.json is not None:
        doc = {f"{n}-{kind}": found for (n, kind), found in runs.items()}
        args.json.write_text(json.dumps(doc, indent=1))


if __name__ == "__main__":
    main()
