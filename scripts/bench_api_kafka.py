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
load): the client is capped at ``--client-cores`` of a core (a cgroup CPU quota, root
only; the output says when it could not be capped) so that the load generator takes a
known share, and its own stalls are in the figures. Per run: requests/s, the p99 of
writes and of queries after the warm-up (as scripts/bench_api_load.py), the CPU share of
the deployment's processes (broker included) and of the client, served %, whether every
ride ended; for a kill run also the calls that failed in the end, and how long after the
kill the apps saw failed calls or a write p99 over 100 ms (``disturbed_s``, in the
report's 5 s buckets). Medians over ``--runs``; nothing is asserted.
"""

from __future__ import annotations

import argparse
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
from bench_api_load import STREAMS, cpu_seconds, figures, free_port  # noqa: E402
from benchmachine import calibrate, cpu_model  # noqa: E402

from dispatch.adapters.kafka.processes import start_worker, stop_worker, worker_env  # noqa: E402
from dispatch.adapters.kafka.topics import create_topics, delete_topics  # noqa: E402
from dispatch.settings import Settings  # noqa: E402

BALANCER = ROOT / "scripts" / "balancer.sh"
CGROUP = Path("/sys/fs/cgroup/cpu")  # cgroup v1's cpu controller (v2: cpu.max)
SECRET = "bench-only-Vq8Kd2Lw9Xz4Rt6Ny1Pm3Hs7Bc5Jf0Ga"
KILL_AT, DOWN_S, SLOW_MS = 0.4, 5.0, 100.0


@dataclass
class Deployment:
    settings: Settings
    url: str
    ports: list[int]
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    cpu_pids: list[int] = field(default_factory=list)  # measured: broker and everything here


def start_api(settings: Settings, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = worker_env(settings) | {"DISPATCH_AUTH_SECRET": SECRET,
                                  "DISPATCH_AUTH_ENVIRONMENT": "production",
                                  "DISPATCH_RATE_LIMIT_REGISTRATIONS_PER_MIN": "0",
                                  "DISPATCH_RATE_LIMIT_REQUESTS_PER_S": "0"}  # fmt: skip
    command = [sys.executable, "-m", "dispatch", "serve", "--host", "127.0.0.1", "--port",
               str(port)]  # fmt: skip
    with log.open("ab") as out:
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)


def wait_ready(url: str, seconds: float = 120.0) -> None:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=2) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} not ready within {seconds:g} s")


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
            d.processes[f"api-{i}"] = start_api(own, port, work / f"api-{i}.log")
        for port in ports:
            wait_ready(f"http://127.0.0.1:{port}")
        bal = free_port()
        backends = ",".join(f"127.0.0.1:{p}" for p in ports)
        subprocess.run([str(BALANCER), "start", "--port", str(bal), "--backends", backends,
                        "--dir", str(balancer_dir)], check=True, timeout=30,
                       stdout=subprocess.DEVNULL)  # fmt: skip
        d.url = f"http://127.0.0.1:{bal}"
        wait_ready(d.url)
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


def one_run(args: argparse.Namespace, drivers: int, seed: int, kill_after_s: float | None,
            prefix: list[str]) -> dict[str, Any]:  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="bench-api-kafka-") as tmp:
        work = Path(tmp)
        with deployment(args.bootstrap, work) as d:
            cpu_before, wall_before = cpu_of(d.cpu_pids), time.monotonic()
            killed_cpu = 0.0
            command = [*prefix, sys.executable, "-m", "dispatch", "simulate", "--api", d.url,
                       "--drivers", str(drivers), "--minutes", str(args.minutes), "--seed",
                       str(seed), "--drain", "30", "--json"]  # fmt: skip
            if args.reports is not None:
                kind = "kill" if kill_after_s is not None else "steady"
                command += ["--report", str(args.reports / f"{drivers}-{kind}-seed{seed}")]
            env = os.environ.copy()
            env.pop("DISPATCH_KAFKA_BOOTSTRAP", None)
            out = work / "simulate.json"
            with out.open("wb") as sink:
                run = subprocess.Popen(command, env=env, stdout=sink, stderr=subprocess.DEVNULL)
                killed_at = 0.0
                if kill_after_s is not None:
                    time.sleep(kill_after_s)
                    first = d.processes["api-1"]
                    killed_at = time.time()
                    killed_cpu = cpu_of([first.pid])
                    first.kill()
                    first.wait()
                    time.sleep(DOWN_S)
                    own = d.settings.model_copy(update={"data_dir": work / "api-1-again"})
                    again = start_api(own, d.ports[0], work / "api-1-again.log")
                    d.processes["api-1-again"] = again
                    d.cpu_pids.append(again.pid)
                code = run.wait(timeout=3600)
            used = cpu_of(d.cpu_pids) + killed_cpu - cpu_before
            wall = time.monotonic() - wall_before
            report: dict[str, Any] = json.loads(out.read_text())
    result = figures(report, used / wall, code)
    result["deployment_cpu_share"] = result.pop("server_cpu_share")
    result["signed_in_s"] = report["signed_in_s"]
    if kill_after_s is not None:
        result |= kill_figures(report, killed_at - report["started_at"])
    return result


def kill_figures(report: dict[str, Any], kill_s: float) -> dict[str, Any]:
    """What the apps saw of the kill: the calls that failed in the end, and the span of 5 s
    buckets from the kill to the end of the run's minutes with failed calls or a write p99
    over ``SLOW_MS``; and the streams the kill cut (connections lost, then opened again)."""
    timeline = report["timeline"]
    bucket_s, run_s = timeline["bucket_s"], report["minutes"] * 60.0
    bad: set[float] = set()
    for name, rows in timeline["endpoints"].items():
        for start, _calls, failed, _p50, p99 in rows:
            slow = name.startswith("POST") and p99 is not None and p99 > SLOW_MS
            if start + bucket_s > kill_s and start < run_s and (failed or slow):
                bad.add(start)
    failed_calls = sum(
        n for e in report["endpoints"].values() for s, n in e["final_status"].items()
        if s == "0" or s.startswith("5")
    )  # fmt: skip
    disturbed = (max(bad) + bucket_s - kill_s) if bad else 0.0
    streams = [e for name, e in report["endpoints"].items() if name.endswith(STREAMS)]
    return {
        "kill_at_s": round(kill_s, 1),
        "streams_cut": sum(e["attempts"].get("0", 0) for e in streams),
        "failed_calls": failed_calls,
        "disturbed_s": round(max(0.0, disturbed), 1),
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
            group.rmdir()


def measure(args: argparse.Namespace, counts: list[int], prefix: list[str], cap: str) -> None:
    print(f"machine: {cpu_model()}, {os.cpu_count()} cores; bench_index {calibrate():,.0f} q/s;"
          f" client {cap}; Kafka at {args.bootstrap}")  # fmt: skip
    kinds = ["steady"] + ([] if args.no_kill else ["kill"])
    runs: dict[tuple[int, str], list[dict[str, Any]]] = {(n, k): [] for n in counts for k in kinds}
    for r in range(args.runs):
        for n in counts:  # interleaved: a slow moment of the machine touches every count
            steady = one_run(args, n, r + 1, None, prefix)
            runs[(n, "steady")].append(steady)
            print(json.dumps({"kind": "steady"} | steady), flush=True)
            if "kill" in kinds:
                at = steady["signed_in_s"] + KILL_AT * args.minutes * 60.0
                killed = one_run(args, n, r + 1, at, prefix)
                runs[(n, "kill")].append(killed)
                print(json.dumps({"kind": "kill"} | killed), flush=True)
    keys = ("requests_per_s", "writes_p99_ms", "queries_p99_ms", "deployment_cpu_share",
            "client_cpu_share", "client_loop_lag_p99_ms", "served_pct", "failed_calls",
            "streams_cut", "disturbed_s")  # fmt: skip
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
