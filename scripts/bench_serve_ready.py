"""Time-to-ready of `dispatch serve` on logs of several lengths: import time apart, then
the rest until `GET /readyz` answers 200; the API's RSS once ready.

    .venv/bin/python scripts/bench_serve_ready.py --log DIR [--log DIR ...] [--runs 3]
        [--kafka 127.0.0.1:9092] [--old-tree /path/to/checkout] [--retention 3600] [--json]

Each ``--log`` is an embedded data dir written by `dispatch simulate --data-dir DIR`; it is
copied once (serve writes to its data dir: views, and the shard workers' own decisions).
Per log, runs alternate: ``cold`` (no kept views: the whole log is folded, then kept at
the stop) and ``warm`` (starts from the views the previous run kept). With ``--old-tree``
(a checkout of an older commit, e.g. `git worktree add /tmp/old <commit>`) the same serve
runs from that tree as ``old``. With ``--kafka`` the log is first copied into fresh topics
(`scripts/kafka_migrate.py`) and serve runs on Kafka (views under a data dir of their own);
the topics are deleted at the end. Each process is stopped with SIGINT (a clean stop, which
keeps the views). Medians over ``--runs``; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
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
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

# What a serving process imports before it builds anything, timed in that process.
SERVE = r"""
import json, sys, time
started = time.time()
import dispatch.cli, dispatch.api.serve, dispatch.bootstrap, dispatch.settings
if sys.argv[2] == "kafka":
    import dispatch.adapters.kafka.transport, dispatch.adapters.kafka.logsource
    import dispatch.adapters.kafka.locations
imported = time.time()
print(json.dumps({"started": started, "imported": imported}), flush=True)
from dispatch.api.serve import serve
from dispatch.settings import Settings
serve(Settings(), port=int(sys.argv[1]))
"""


SCAN_LOAD = r"""
import time
import dispatch.cli, dispatch.api.serve, dispatch.bootstrap
from dispatch.matching import scan
started = time.perf_counter()
scan.prepare()
print(time.perf_counter() - started)
"""


def scan_load_s() -> float:
    """How long loading the compiled scan from numba's disk cache takes, in a fresh process
    (serve pays it when the first driver index is made, inside the shard workers' restore)."""
    done = subprocess.run(
        [sys.executable, "-c", SCAN_LOAD], capture_output=True, text=True, check=True, cwd=ROOT
    )
    return float(done.stdout.strip())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of a process, in MB."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return (int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024)


def ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
            return bool(r.status == 200)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def one_run(env: dict[str, str], tree: Path, mode: str, timeout_s: float = 600) -> dict[str, Any]:
    port = free_port()
    spawned = time.time()
    process = subprocess.Popen(
        [sys.executable, "-c", SERVE, str(port), mode],
        env={**env, "PYTHONPATH": str(tree)},
        cwd=tree,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stderr is not None
    marks = json.loads(process.stdout.readline())
    deadline = time.monotonic() + timeout_s
    while not ready(port):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"serve never got ready: {process.stderr.read()[-2000:]}")
        time.sleep(0.01)
    at_ready = time.time()
    rss, peak = rss_mb(process.pid)
    process.send_signal(signal.SIGINT)
    stopping = time.time()
    _, err = process.communicate(timeout=120)
    return {
        "interpreter_s": marks["started"] - spawned,
        "import_s": marks["imported"] - marks["started"],
        "ready_after_imports_s": at_ready - marks["imported"],
        "total_s": at_ready - spawned,
        "rss_mb": rss,
        "peak_rss_mb": peak,
        "stop_s": time.time() - stopping,
        **parts(err),
    }


# What the serving process logs about its start (absent from older code).
PARTS = {
    "workers_restore_s": re.compile(r"shard workers restored in (\S+) s"),
    "views_read_s": re.compile(r"kept views read in (\S+) s"),
    "catch_up_s": re.compile(r"views caught up: \d+ events folded in (\S+) s"),
    "folded": re.compile(r"views caught up: (\d+) events folded"),
}


def parts(log: str) -> dict[str, float]:
    """The start's parts, from the serving process's log."""
    out = {}
    for name, pattern in PARTS.items():
        found = pattern.search(log)
        if found is not None:
            out[name] = float(found.group(1))
    out["taken_up"] = float("views taken up from" in log)
    return out


def events_of(data_dir: Path) -> int:
    import sqlite3

    total = 0
    for shard in sorted(data_dir.glob("shard-*.sqlite")):
        with sqlite3.connect(f"file:{shard}?mode=ro", uri=True) as conn:
            total += conn.execute("SELECT count(*) FROM stored_events").fetchone()[0]
    return int(total)


def base_env(data_dir: Path, shards: int, retention: float) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DISPATCH_")}
    env.update(
        DISPATCH_DATA_DIR=str(data_dir),
        DISPATCH_SHARDS=str(shards),
        DISPATCH_AUTH_SECRET=secrets.token_urlsafe(48),
        DISPATCH_ENDED_RIDE_RETENTION_S=str(retention),
        # The shard workers decide at wall-clock time, long after a simulated log ends:
        # without these they would expire every waiting ride at start, changing the log
        # between runs (and, by the log's clock, evicting every ended ride at once).
        DISPATCH_MAX_WAIT_S="1e9",
        DISPATCH_OFFER_TIMEOUT_S="1e9",
    )
    return env


def kept_sizes(data_dir: Path) -> dict[str, float | None]:
    sizes: dict[str, float | None] = {}
    for name in ("views.sqlite", "ended-rides.sqlite"):
        kept = data_dir / name
        sizes[f"{name}_mb"] = kept.stat().st_size / 1e6 if kept.exists() else None
    return sizes


def bench_log(log: Path, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    shards = int(json.loads((log / "log.json").read_text())["shards"])
    copy = work / log.name
    shutil.copytree(log, copy, ignore=shutil.ignore_patterns("views*.sqlite", "ended-rides*"))
    out: dict[str, Any] = {"log": str(log), "events": events_of(copy), "runs": {}}
    env, mode, prefix = base_env(copy, shards, args.retention), "embedded", None
    if args.kafka:
        from kafka_migrate import copy_log

        from dispatch.adapters.kafka.topics import create_topics

        prefix = f"bench-serve-{uuid.uuid4().hex[:8]}"
        create_topics(args.kafka, prefix, shards)
        started = time.perf_counter()
        copy_log(copy, args.kafka, prefix)
        out["kafka_copy_s"] = time.perf_counter() - started
        views_dir = work / f"{log.name}-kafka-views"
        env.update(
            DISPATCH_KAFKA_BOOTSTRAP=args.kafka,
            DISPATCH_TOPIC_PREFIX=prefix,
            DISPATCH_DATA_DIR=str(views_dir),
        )
        mode = "kafka"
    data_dir = Path(env["DISPATCH_DATA_DIR"])
    plan = [("cold", ROOT), ("warm", ROOT)] * args.runs
    if args.old_tree:
        plan += [("old", Path(args.old_tree))] * args.runs
    try:
        for label, tree in plan:
            if label == "old" and "views.sqlite_mb" not in out:  # what the new code kept
                out.update(kept_sizes(data_dir))
            if label != "warm":
                for kept in ("views.sqlite", "ended-rides.sqlite"):
                    (data_dir / kept).unlink(missing_ok=True)
            run = one_run(env, tree, mode)
            out["runs"].setdefault(label, []).append(run)
            print(f"{log.name} {mode} {label}: {json.dumps(run)}", file=sys.stderr, flush=True)
        if "views.sqlite_mb" not in out:
            out.update(kept_sizes(data_dir))
    finally:
        if prefix is not None:
            from dispatch.adapters.kafka.topics import delete_topics

            delete_topics(args.kafka, prefix)
    return out


def summary(result: dict[str, Any]) -> dict[str, dict[str, float]]:
    return {
        label: {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        for label, runs in result["runs"].items()
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--log", action="append", required=True, type=Path)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--kafka", help="bootstrap servers: run serve on Kafka")
    ap.add_argument("--old-tree", help="a checkout of older code, run as 'old'")
    ap.add_argument("--retention", type=float, default=3_600.0, help="ended-ride retention, s")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    results: list[dict[str, Any]] = []
    scan_s = statistics.median(scan_load_s() for _ in range(3))
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        for log in args.log:
            result = bench_log(log, args, Path(tmp))
            result["median"] = summary(result)
            results.append(result)
    if args.json:
        print(json.dumps({"scan_load_s": scan_s, "logs": results}, indent=2))
        return
    print(f"compiled scan loaded from numba's cache in {scan_s:.2f} s (part of workers' restore)")
    print(
        "log events | run | import s | ready after imports s (workers restore, views read, "
        "catch-up) | total s | RSS MB | peak MB"
    )
    for result in results:
        for label, m in result["median"].items():
            split = ", ".join(
                f"{m[k]:.2f}" if k in m else "-"
                for k in ("workers_restore_s", "views_read_s", "catch_up_s")
            )
            print(
                f"{result['events']:,} | {label} | {m['import_s']:.2f} | "
                f"{m['ready_after_imports_s']:.2f} ({split}) | {m['total_s']:.2f} | "
                f"{m['rss_mb']:.0f} | {m['peak_rss_mb']:.0f}"
            )


if __name__ == "__main__":
    main()
