"""What TLS and SASL/SCRAM cost (issue #16), each apart and both together, side by side.

One secured local three-node cluster is started with extra client listeners for this
benchmark only (``scripts/kafka-local.sh start --brokers 3 --secure --bench-listeners SPEC``,
scripts/kafka/secure.sh), so that four client modes reach the same brokers, the same topic
and the same partition leader:

- ``PLAINTEXT``: no TLS, no authentication (the principal ANONYMOUS);
- ``SSL``: TLS only (the brokers' certificate checked against the CA, no client
  certificate; ANONYMOUS);
- ``SASL_PLAINTEXT``: SCRAM-SHA-512 only, as the super user admin;
- ``SASL_SSL``: both, as admin: what the engine uses on a secured cluster.

ANONYMOUS is a super user on that cluster, and admin is one anyway, so every mode takes the
authorizer's super-user path: the figures compare the client listeners, not the ACLs. What
the four share is the rest of the secured cluster: replication between the brokers runs
over SASL_SSL whatever the client uses. A plain open cluster (``start --brokers 3``) is
measured beside them (``open-cluster``, leave it out with ``--no-open-cluster``) to show
what that shared part costs.

After a warm-up round (``--warmup``, each mode once, reported but left out of the medians:
the brokers' JIT would favour whichever mode came later), each round measures every mode in
turn, the order reversed every other round (so a drift of the machine over a pair of rounds
weighs on every mode alike):

- **throughput**: ``--records`` records of ``--size`` bytes from one idempotent
  ``acks=all`` producer (``config.new_producer``'s settings but ``linger_ms=5``, what the
  engine's command transport sets; the default is 0), sent and flushed: records/s;
- **latency**: ``--pings`` sends one at a time, each waited for: p50 and p99 in ms;
- **connect**: a new producer until its first record is acknowledged (TCP, TLS handshake,
  SCRAM exchange, metadata): median of ``--connects`` in ms.

Every client is built as the engine builds its own (``config.connection_of`` from the
``DISPATCH_KAFKA_*`` settings, ``config.new_producer``), from settings this script sets
alone: it clears any ``DISPATCH_KAFKA_*`` of its environment (a sourced admin.env) first.
Both clusters are stopped at the end (by their own pids, through the script). Prints one
JSON object: each round's figures, the medians and ranges, and the ratios of each secured
mode's median to PLAINTEXT's.

    .venv/bin/python scripts/bench_kafka_security.py --rounds 4
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmachine import cpu_model

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kafka.admin import NewTopic  # noqa: E402

from dispatch.adapters.kafka.config import connection_of, new_admin, new_producer  # noqa: E402
from dispatch.adapters.kafka.eventstore.connection import Connection  # noqa: E402
from dispatch.settings import Settings  # noqa: E402

SCRIPT = ROOT / "scripts" / "kafka-local.sh"
TOPIC = "bench-security"
LISTENER_MODES = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")  # on the secured cluster
OPEN_CLUSTER = "open-cluster"
BASELINE = "PLAINTEXT"


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


def listed(ports: list[int]) -> str:
    return ",".join(map(str, ports))


def bootstrap(ports: list[int]) -> str:
    return ",".join(f"127.0.0.1:{p}" for p in ports)


@contextmanager
def started(state_dir: Path, env: dict[str, str], options: list[str]) -> Iterator[None]:
    """A three-node cluster of the script's (``start --brokers 3 OPTIONS``), stopped (and
    wiped) at the end."""
    env = {**os.environ, **env, "KAFKA_LOCAL_CLUSTER_DIR": str(state_dir)}
    args = [str(SCRIPT), "start", "--brokers", "3", *options]
    try:
        done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(args[1:])} failed:\n{done.stderr}")
        yield
    finally:
        subprocess.run([str(SCRIPT), "stop", "--brokers", "3", "--wipe"], env=env,
                       capture_output=True, timeout=120, check=False)  # fmt: skip


def cluster_env(ports: list[int]) -> dict[str, str]:
    return {
        "KAFKA_LOCAL_CLUSTER_PORTS": listed(ports[:3]),
        "KAFKA_LOCAL_CLUSTER_CONTROLLER_PORTS": listed(ports[3:6]),
    }


@contextmanager
def secured_cluster(state_dir: Path) -> Iterator[dict[str, Connection]]:
    """The secured cluster with the benchmark's listeners: a connection for each of
    LISTENER_MODES, as the engine would make it from its settings."""
    ports = free_ports(15)
    plain, ssl, sasl_plain = ports[6:9], ports[9:12], ports[12:15]
    bench = f"PLAINTEXT:{listed(plain)} SSL:{listed(ssl)} SASL_PLAINTEXT:{listed(sasl_plain)}"
    with started(state_dir, cluster_env(ports), ["--secure", "--bench-listeners", bench]):
        secrets = state_dir / "secrets"
        admin = dict(
            line.split("=", 1) for line in (secrets / "admin.env").read_text().split()
        )  # the DISPATCH_KAFKA_* settings the script wrote for admin (SASL_SSL)
        as_admin = {
            "kafka_username": admin["DISPATCH_KAFKA_USERNAME"],
            "kafka_password_file": admin["DISPATCH_KAFKA_PASSWORD_FILE"],
            "kafka_sasl_mechanism": admin["DISPATCH_KAFKA_SASL_MECHANISM"],
        }
        ca = {"kafka_ssl_cafile": admin["DISPATCH_KAFKA_SSL_CAFILE"]}
        fields: dict[str, dict[str, str]] = {
            "PLAINTEXT": {"kafka_bootstrap": bootstrap(plain)},
            "SSL": {"kafka_bootstrap": bootstrap(ssl), "kafka_security_protocol": "SSL"} | ca,
            "SASL_PLAINTEXT": {
                "kafka_bootstrap": bootstrap(sasl_plain),
                "kafka_security_protocol": "SASL_PLAINTEXT",
            }
            | as_admin,
            "SASL_SSL": {
                "kafka_bootstrap": admin["DISPATCH_KAFKA_BOOTSTRAP"],
                "kafka_security_protocol": admin["DISPATCH_KAFKA_SECURITY_PROTOCOL"],
            }
            | as_admin
            | ca,
        }
        yield {mode: connection_of(Settings.model_validate(f)) for mode, f in fields.items()}


@contextmanager
def open_cluster(state_dir: Path) -> Iterator[Connection]:
    ports = free_ports(6)
    with started(state_dir, cluster_env(ports), []):
        yield connection_of(Settings(kafka_bootstrap=bootstrap(ports[:3])))


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
        return statistics.median(times), times[max(int(len(times) * 0.99) - 1, 0)]
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


def summary(rounds: list[dict[str, dict[str, float]]], modes: list[str]) -> dict[str, Any]:
    keys = list(rounds[0][modes[0]])

    def values(mode: str, key: str) -> list[float]:
        return [r[mode][key] for r in rounds]

    medians = {m: {k: round(statistics.median(values(m, k)), 2) for k in keys} for m in modes}
    ranges = {m: {k: [min(values(m, k)), max(values(m, k))] for k in keys} for m in modes}
    ratios = {
        m: {k: round(medians[m][k] / medians[BASELINE][k], 2) for k in keys}
        for m in modes
        if m != BASELINE
    }
    per_round = [  # the same ratio within each round (the pairs the design compares)
        {m: {k: round(r[m][k] / r[BASELINE][k], 2) for k in keys} for m in modes if m != BASELINE}
        for r in rounds
    ]
    return {
        "medians": medians,
        "ranges": ranges,
        f"median_over_{BASELINE}": ratios,
        f"each_round_over_{BASELINE}": per_round,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--pings", type=int, default=500)
    parser.add_argument("--connects", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1, help="rounds left out of the figures")
    parser.add_argument(
        "--no-open-cluster",
        dest="open_cluster",
        action="store_false",
        help="leave out the plain open cluster measured beside the secured one's listeners",
    )
    args = parser.parse_args()
    for name in [n for n in os.environ if n.startswith("DISPATCH_KAFKA_")]:
        del os.environ[name]  # e.g. a sourced admin.env: every mode's settings are set here
    for name in ("rounds", "records", "size", "pings", "connects"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.warmup < 0:
        parser.error("--warmup must be at least 0")
    rounds: list[dict[str, dict[str, float]]] = []
    warmup: list[dict[str, dict[str, float]]] = []
    started_at = datetime.now(UTC)
    with tempfile.TemporaryDirectory(prefix="bench-security-") as tmp, ExitStack() as stack:
        conns = stack.enter_context(secured_cluster(Path(tmp) / "secured"))
        make_topic(conns["SASL_SSL"])  # as admin; every listener writes to this one topic
        if args.open_cluster:
            conns[OPEN_CLUSTER] = stack.enter_context(open_cluster(Path(tmp) / "open"))
            make_topic(conns[OPEN_CLUSTER])
        modes = list(conns)
        for i in range(args.warmup + args.rounds):
            order = modes if i % 2 == 0 else modes[::-1]
            figures = {mode: measure(conns[mode], args) for mode in order}
            done = warmup if i < args.warmup else rounds
            done.append({mode: figures[mode] for mode in modes})
            print(f"{'warm-up' if done is warmup else 'round'} {len(done)}: "
                  f"{json.dumps(done[-1])}", file=sys.stderr, flush=True)  # fmt: skip
    print(json.dumps({
        "cpu": cpu_model(), "cores": os.cpu_count(), "started": started_at.isoformat(),
        "finished": datetime.now(UTC).isoformat(), "settings": vars(args),
        "modes": modes, "warmup": warmup, "rounds": rounds, **summary(rounds, modes),
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
