"""What TLS + SASL/SCRAM cost (issue #16): the same writes on an open and on a secured local
three-node cluster, side by side.

Starts two clusters with ``scripts/kafka-local.sh`` on free ports (``start --brokers 3`` and
``start --brokers 3 --secure``), each with a three-replica topic, and in every round, in
alternating order, measures on each:

- **throughput**: ``--records`` records of ``--size`` bytes from one idempotent ``acks=all``
  producer (the engine's settings), sent and flushed: records/s;
- **latency**: ``--pings`` sends one at a time, each waited for: p50 and p99 in ms;
- **connect**: a new producer until its first record is acknowledged (TCP, TLS handshake,
  SCRAM exchange, metadata): median of ``--connects`` in ms.

The secured cluster is written to as its super user (admin), so the ACL check on each
request is the authorizer's super-user path; the figures compare the listener's cost. Both
clusters are stopped at the end (by their own pids, through the script). Prints one JSON
object: each round's figures, the medians and the secured/open ratios.

    .venv/bin/python scripts/bench_kafka_security.py --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from kafka.admin import NewTopic

from dispatch.adapters.kafka.config import connection_of, new_admin, new_producer
from dispatch.adapters.kafka.eventstore.connection import Connection
from dispatch.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "kafka-local.sh"
TOPIC = "bench-security"


def free_ports(count: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < count:
        port = random.randint(20_000, 32_000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        if port not in ports:
            ports.append(port)
    return ports


@contextmanager
def cluster(state_dir: Path, secure: bool) -> Iterator[Connection]:
    """A running three-node cluster; its connection as the super user (admin) if secured."""
    ports = free_ports(6)
    env = {
        **os.environ,
        "KAFKA_LOCAL_CLUSTER_PORTS": ",".join(map(str, ports[:3])),
        "KAFKA_LOCAL_CLUSTER_CONTROLLER_PORTS": ",".join(map(str, ports[3:])),
        "KAFKA_LOCAL_CLUSTER_DIR": str(state_dir),
    }
    args = [str(SCRIPT), "start", "--brokers", "3", *(["--secure"] if secure else [])]
    try:
        subprocess.run(args, env=env, check=True, capture_output=True, text=True, timeout=300)
        bootstrap = ",".join(f"127.0.0.1:{p}" for p in ports[:3])
        if secure:
            pairs = (
                line.split("=", 1)
                for line in (state_dir / "secrets" / "admin.env").read_text().split()
            )
            fields = {k.removeprefix("DISPATCH_").lower(): v for k, v in pairs}
            yield connection_of(Settings.model_validate(fields))
        else:
            yield bootstrap
    finally:
        subprocess.run([str(SCRIPT), "stop", "--brokers", "3", "--wipe"], env=env,
                       capture_output=True, timeout=120, check=False)  # fmt: skip


def make_topic(conn: Connection) -> None:
    admin = new_admin(conn)
    try:
        admin.create_topics([NewTopic(TOPIC, 1, 3)], timeout_ms=30_000)
        admin.wait_for_topics([TOPIC], timeout_ms=30_000)
    finally:
        admin.close()


def throughput(conn: Connection, records: int, size: int) -> float:
    producer = new_producer(conn, linger_ms=5)
    value = os.urandom(size)
    try:
        producer.send(TOPIC, value=value).get(timeout=30)  # connected and warm
        started = time.perf_counter()
        for _ in range(records):
            producer.send(TOPIC, value=value)
        producer.flush(timeout=120)
        return records / (time.perf_counter() - started)
    finally:
        producer.close(timeout=5)


def latency(conn: Connection, pings: int, size: int) -> tuple[float, float]:
    producer = new_producer(conn)
    value = os.urandom(size)
    try:
        producer.send(TOPIC, value=value).get(timeout=30)
        times = []
        for _ in range(pings):
            started = time.perf_counter()
            producer.send(TOPIC, value=value).get(timeout=30)
            times.append((time.perf_counter() - started) * 1000)
        times.sort()
        return statistics.median(times), times[int(len(times) * 0.99) - 1]
    finally:
        producer.close(timeout=5)


def connect(conn: Connection, connects: int) -> float:
    times = []
    for _ in range(connects):
        started = time.perf_counter()
        producer = new_producer(conn)
        try:
            producer.send(TOPIC, value=b"x").get(timeout=30)
            times.append((time.perf_counter() - started) * 1000)
        finally:
            producer.close(timeout=5)
    return statistics.median(times)


def measure(conn: Connection, args: argparse.Namespace) -> dict[str, float]:
    p50, p99 = latency(conn, args.pings, args.size)
    return {
        "records_per_s": round(throughput(conn, args.records, args.size), 1),
        "latency_p50_ms": round(p50, 2),
        "latency_p99_ms": round(p99, 2),
        "connect_ms": round(connect(conn, args.connects), 1),
    }


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--pings", type=int, default=500)
    parser.add_argument("--connects", type=int, default=5)
    args = parser.parse_args()
    for name in ("rounds", "records", "size", "pings", "connects"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    rounds: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-security-") as tmp, ExitStack() as stack:
        conns = {
            "open": stack.enter_context(cluster(Path(tmp) / "open", secure=False)),
            "secured": stack.enter_context(cluster(Path(tmp) / "secured", secure=True)),
        }
        for conn in conns.values():
            make_topic(conn)
        for i in range(args.rounds):
            order = ["open", "secured"] if i % 2 == 0 else ["secured", "open"]
            rounds.append({mode: measure(conns[mode], args) for mode in order})
    medians = {
        mode: {key: statistics.median(r[mode][key] for r in rounds) for key in rounds[0][mode]}
        for mode in ("open", "secured")
    }
    ratios = {
        key: round(medians["secured"][key] / medians["open"][key], 2) for key in medians["open"]
    }
    print(json.dumps({
        "cpu": cpu_model(), "cores": os.cpu_count(), "settings": vars(args),
        "rounds": rounds, "medians": medians, "secured_over_open": ratios,
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
