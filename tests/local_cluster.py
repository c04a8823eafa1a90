"""The local three-node cluster of ``scripts/kafka-local.sh`` for tests (issue #16): started
on free ports with its own state dir, stopped whatever happened; ``kill N`` / ``restart N``
and ``pause N`` / ``resume N`` by node id; the partitions' leaders; and Kafka's own console
consumer as a reader of the log that shares nothing with the project's Python client.

The ``local_cluster`` fixture (tests/conftest.py) hands out a running ``Cluster``. Without
java the fixture skips, except when ``CI`` is set: then it fails, as the Kafka tests do.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fault_registry
import pytest

from dispatch.adapters.kafka.config import new_admin

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "kafka-local.sh"
LOG4J_CONFIG = SCRIPT.parent / "kafka" / "log4j2.xml"
NODES = (1, 2, 3)
START_TIMEOUT_S = 120  # the script's own deadline; the subprocess gets a little more
WAIT_S = 60  # every wait for the cluster to change (leader moved, ISR grown) ends by then
CONSOLE_CONSUMER = "org.apache.kafka.tools.consumer.ConsoleConsumer"
_SEP = "\x1f"  # between the console consumer's fields (JSON values never hold it raw)


def java_or_skip() -> None:
    """Skip when there is no java, or fail under CI (a CI run never goes green by skipping)."""
    if shutil.which("java") is not None:
        return
    message = "no java on PATH: the local cluster needs Java 17+"
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports that nothing listens on, below the ephemeral range (so an
    outgoing connection does not take one between this check and the brokers' binding)."""
    ports: list[int] = []
    while len(ports) < count:
        port = random.randint(20_000, 32_000)
        if port in ports:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        ports.append(port)
    return ports


def pid_running(pid: int) -> bool:
    """True while ``pid`` runs; an exited process whose parent has not reaped it yet (a
    zombie: the nodes are orphans, reaped by init) counts as gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_for(what: str, check: Callable[[], Any], timeout_s: float = WAIT_S) -> Any:
    """Call ``check`` until it returns something truthy; fail with ``what`` at the deadline."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except Exception as e:  # a cluster in the middle of a change answers with errors
            last = e
        else:
            if last:
                return last
        time.sleep(0.25)
    pytest.fail(f"{what}: not within {timeout_s}s (last: {last!r})")


@dataclass
class Cluster:
    env: dict[str, str]
    state_dir: Path
    ports: list[int]
    bootstrap: str = ""
    seen_pids: set[int] = field(default_factory=set)

    def run(self, *args: str, timeout_s: float = START_TIMEOUT_S + 30) -> str:
        """Run the script with this cluster's settings; its stdout (it must succeed)."""
        done = run_script(self.env, *args, timeout_s=timeout_s)
        self.record_pids()
        assert done.returncode == 0, (
            f"kafka-local.sh {' '.join(args)} exited {done.returncode}\n"
            f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
        )
        return done.stdout

    def kill(self, node: int) -> None:
        """SIGKILL node ``node`` (``kafka-local.sh kill N``)."""
        self.run("kill", str(node))

    def restart(self, node: int) -> None:
        """Start node ``node`` again on its state and wait until it is registered."""
        self.run("restart", str(node))

    def pause(self, node: int) -> None:
        """SIGSTOP node ``node`` (``kafka-local.sh pause N``): it stalls, connections open."""
        self.run("pause", str(node))

    def resume(self, node: int) -> None:
        """SIGCONT node ``node`` (``kafka-local.sh resume N``)."""
        self.run("resume", str(node))

    def pid_file(self, node: int) -> Path:
        return self.state_dir / f"node-{node}" / "kafka.pid"

    def pid(self, node: int) -> int | None:
        try:
            return int(self.pid_file(node).read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def record_pids(self) -> None:
        for node in NODES:
            pid = self.pid(node)
            if pid is not None:
                self.seen_pids.add(pid)

    @property
    def secrets(self) -> Path:
        """A secured cluster's CA, credentials and per-user settings (scripts/kafka/secure.sh)."""
        return self.state_dir / "secrets"

    def classpath(self) -> str:
        """The classpath of the cached Kafka jars, broker and tools (fetched if needed)."""
        return self.run("classpath").strip().splitlines()[-1]


def run_script(
    env: dict[str, str], *args: str, timeout_s: float = 90
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def kill_leftovers(cluster: Cluster) -> list[int]:
    """SIGKILL any node JVM of this cluster still running after ``stop`` (its own pids only,
    checked against the node's state dir on its command line); the pids killed."""
    killed = []
    for pid in cluster.seen_pids:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if str(cluster.state_dir) in cmdline and pid_running(pid):
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
    return killed


@contextmanager
def running_cluster(state_dir: Path, *, secure: bool = False) -> Iterator[Cluster]:
    """A three-node cluster of the script's on free ports, stopped at the end whatever
    happened (``stop --brokers 3``, then SIGKILL of any of its own pids still running).
    ``secure``: started with ``--secure`` (SASL_SSL, ACLs; its credentials in
    ``Cluster.secrets``)."""
    java_or_skip()
    ports = free_ports(6)
    env = {
        **os.environ,
        "KAFKA_LOCAL_CLUSTER_PORTS": ",".join(map(str, ports[:3])),
        "KAFKA_LOCAL_CLUSTER_CONTROLLER_PORTS": ",".join(map(str, ports[3:])),
        "KAFKA_LOCAL_CLUSTER_DIR": str(state_dir),
        "KAFKA_LOCAL_START_TIMEOUT": str(START_TIMEOUT_S),
        "KAFKA_LOCAL_STOP_TIMEOUT": "20",
    }
    c = Cluster(env, state_dir, ports[:3])
    # Written down before the start: if this process dies before the ``finally`` below
    # (a SIGKILL), tests/fault_registry.py stops the cluster by its state dir.
    entry = fault_registry.record("cluster", str(state_dir))
    try:
        out = c.run("start", "--brokers", "3", *(["--secure"] if secure else []))
        c.bootstrap = out.strip().splitlines()[-1]
        yield c
    finally:
        c.record_pids()
        try:
            run_script(env, "stop", "--brokers", "3")
        finally:
            left = kill_leftovers(c)
        assert not left, f"stop --brokers 3 left node pids {left} running"
        fault_registry.forget(entry)


@dataclass(frozen=True)
class PartitionState:
    leader: int  # -1 when there is none
    replicas: list[int]
    isr: list[int]


def describe_partitions(
    bootstrap: str, topics: Iterable[str]
) -> dict[tuple[str, int], PartitionState]:
    """Every partition of ``topics`` as the cluster's metadata has it, by (topic, partition)."""
    admin = new_admin(bootstrap, request_timeout_ms=5_000)
    try:
        described = admin.describe_topics(list(topics))
    finally:
        admin.close()
    found: dict[tuple[str, int], PartitionState] = {}
    for topic in described:
        assert topic.get("error_code", 0) == 0, topic
        for p in topic["partitions"]:
            found[topic["name"], p["partition_index"]] = PartitionState(
                p["leader_id"], sorted(p["replica_nodes"]), sorted(p["isr_nodes"])
            )
    return found


@dataclass(frozen=True)
class ConsoleRecord:
    """One record as Kafka's console consumer printed it."""

    partition: int
    offset: int
    timestamp_ms: int
    key: str
    value: str


def console_read(
    classpath: str, bootstrap: str, topic: str, log_dir: Path, idle_s: float = 15.0
) -> list[ConsoleRecord]:
    """Every committed record of ``topic`` (read_committed, all partitions, from the
    beginning), read by Kafka's own console consumer, which stops once no record came for
    ``idle_s``; its log goes to ``log_dir``/server.log (the brokers' log4j2 config), away
    from the records on its stdout. Checks that the tool counted as many records as it
    printed."""
    formatter = {
        "print.timestamp": "true",
        "print.partition": "true",
        "print.offset": "true",
        "print.key": "true",
        "key.separator": _SEP,
        "line.separator": "\n",
    }
    command = [
        "java", "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
        f"-Dlog4j2.configurationFile={LOG4J_CONFIG}", f"-Dkafka.logs.dir={log_dir}",
        "-cp", classpath, CONSOLE_CONSUMER,
        "--bootstrap-server", bootstrap, "--topic", topic, "--from-beginning",
        "--isolation-level", "read_committed", "--timeout-ms", str(int(idle_s * 1000)),
        "--consumer-property", "client.id=fault-test-console-reader",
        *(arg for k, v in formatter.items() for arg in ("--property", f"{k}={v}")),
    ]  # fmt: skip
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=idle_s + 120, check=False
    )
    assert done.returncode == 0, f"console consumer exited {done.returncode}:\n{done.stderr}"
    records = [_console_record(line) for line in done.stdout.splitlines() if line]
    processed = [line for line in done.stderr.splitlines() if "Processed a total of" in line]
    assert processed, f"the console consumer did not say what it read:\n{done.stderr}"
    assert processed[-1].split()[-2] == str(len(records)), (processed[-1], len(records))
    return records


def _console_record(line: str) -> ConsoleRecord:
    """``CreateTime:<ms>␟Partition:<p>␟Offset:<o>␟<key>␟<value>``."""
    stamp, partition, offset, key, value = line.split(_SEP, 4)
    return ConsoleRecord(
        int(partition.removeprefix("Partition:")),
        int(offset.removeprefix("Offset:")),
        int(stamp.split(":", 1)[1]),
        key,
        value,
    )
