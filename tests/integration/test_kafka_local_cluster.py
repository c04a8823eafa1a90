"""The local three-node cluster of ``scripts/kafka-local.sh`` (issue #16): ``start --brokers
3`` prints the bootstrap list; a topic with three replicas keeps taking ``acks=all`` writes
when ``kill N`` takes its leader down (two in sync are enough, ``min.insync.replicas=2``);
``restart N`` brings the node back into the ISR; ``stop`` leaves no node running.

Not marked ``kafka``: the test starts its own cluster with the script, on free ports and
a state dir under ``tmp_path``, so it runs next to the single broker (9092/9093) and any
other cluster, and stops it again even when it fails. About a minute, most of it the
cluster's start and the controller fencing the killed broker (broker.session.timeout.ms,
9 s by default).
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kafka import TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic

from dispatch.adapters.kafka.config import new_admin, new_consumer, new_producer

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "kafka-local.sh"
NODES = (1, 2, 3)
START_TIMEOUT_S = 120  # the script's own deadline; the subprocess gets a little more
WAIT_S = 60  # every wait for the cluster to change (leader moved, ISR grown) ends by then

if shutil.which("java") is None and not os.environ.get("CI"):
    pytest.skip("no java on PATH: the local cluster needs Java 17+", allow_module_level=True)


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
    bootstrap: str
    seen_pids: set[int]

    def run(self, *args: str, timeout_s: float = START_TIMEOUT_S + 30) -> str:
        """Run the script with this cluster's settings; its stdout (it must succeed)."""
        done = subprocess.run(
            [str(SCRIPT), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
        self.record_pids()
        assert done.returncode == 0, (
            f"kafka-local.sh {' '.join(args)} exited {done.returncode}\n"
            f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
        )
        return done.stdout

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


def run_script(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=90, check=False
    )


def kill_leftovers(cluster: Cluster) -> list[int]:
    """SIGKILL any node JVM of this test still running after ``stop`` (its own pids only,
    checked against the node's properties file on its command line); the pids killed."""
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


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    """A three-node cluster of the script's on free ports, stopped at the end whatever
    happened (``stop --brokers 3``, then SIGKILL of any of its own pids still running)."""
    ports = free_ports(6)
    state_dir = tmp_path / "cluster"
    env = {
        **os.environ,
        "KAFKA_LOCAL_CLUSTER_PORTS": ",".join(map(str, ports[:3])),
        "KAFKA_LOCAL_CLUSTER_CONTROLLER_PORTS": ",".join(map(str, ports[3:])),
        "KAFKA_LOCAL_CLUSTER_DIR": str(state_dir),
        "KAFKA_LOCAL_START_TIMEOUT": str(START_TIMEOUT_S),
        "KAFKA_LOCAL_STOP_TIMEOUT": "20",
    }
    c = Cluster(env, state_dir, ports[:3], "", set())
    try:
        out = c.run("start", "--brokers", "3")
        c.bootstrap = out.strip().splitlines()[-1]
        yield c
    finally:
        c.record_pids()
        try:
            run_script(env, "stop", "--brokers", "3")
        finally:
            left = kill_leftovers(c)
        assert not left, f"stop --brokers 3 left node pids {left} running"


def describe_partition(bootstrap: str, topic: str) -> dict[str, Any]:
    """Partition 0 of ``topic`` as the cluster's metadata has it: ``leader`` (-1 when there
    is none), ``replicas`` and ``isr`` (node ids)."""
    admin = new_admin(bootstrap, request_timeout_ms=5_000)
    try:
        (described,) = admin.describe_topics([topic])
    finally:
        admin.close()
    assert described.get("error_code", 0) == 0, described
    (partition,) = described["partitions"]
    return {
        "leader": partition["leader_id"],
        "replicas": sorted(partition["replica_nodes"]),
        "isr": sorted(partition["isr_nodes"]),
    }


def partition_when(
    bootstrap: str, topic: str, condition: Callable[[dict[str, Any]], bool]
) -> Callable[[], dict[str, Any] | None]:
    """A check for ``wait_for``: partition 0 of ``topic`` once ``condition`` holds."""

    def check() -> dict[str, Any] | None:
        partition = describe_partition(bootstrap, topic)
        return partition if condition(partition) else None

    return check


def produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    """Write ``values`` with the project's producer settings (idempotent, acks=all) and
    wait for every acknowledgement."""
    producer = new_producer(bootstrap, request_timeout_ms=10_000, max_block_ms=WAIT_S * 1000)
    try:
        futures = [producer.send(topic, value=v) for v in values]
        for f in futures:
            f.get(timeout=WAIT_S)
    finally:
        producer.close(timeout=10)


def consume_all(bootstrap: str, topic: str, count: int) -> list[bytes]:
    """The first ``count`` values of partition 0 (read_committed), within WAIT_S."""
    consumer = new_consumer(bootstrap, group_id=None, request_timeout_ms=10_000)
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        found: list[bytes] = []
        deadline = time.monotonic() + WAIT_S
        while len(found) < count and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                found.extend(r.value for r in records)
        return found
    finally:
        consumer.close()


def test_three_node_cluster_survives_its_leader_and_stops_clean(cluster: Cluster) -> None:
    assert cluster.bootstrap == ",".join(f"127.0.0.1:{p}" for p in cluster.ports)
    bootstrap = cluster.bootstrap

    # A topic with three replicas, and one with the cluster's defaults (RF 3, min ISR 2,
    # no unclean election).
    topic = f"cluster-{uuid.uuid4().hex[:8]}"
    defaults = f"{topic}-defaults"
    admin = new_admin(bootstrap)
    try:
        admin.create_topics([NewTopic(topic, 1, 3), NewTopic(defaults, 1)], timeout_ms=30_000)
        resources = [ConfigResource(ConfigResourceType.TOPIC, topic)]
        configs = admin.describe_configs(resources, config_filter="all")["topic"][topic]
    finally:
        admin.close()
    assert configs["min.insync.replicas"]["value"] == "2"
    assert configs["unclean.leader.election.enable"]["value"] == "false"
    assert len(describe_partition(bootstrap, defaults)["replicas"]) == 3

    before = wait_for(
        "three replicas in sync",
        partition_when(bootstrap, topic, lambda p: len(p["isr"]) == 3),
    )
    assert before["replicas"] == list(NODES)
    first = [f"before-{i}".encode() for i in range(50)]
    produce(bootstrap, topic, first)

    # kill -9 the partition's leader: the other two elect a leader and keep the ISR at 2.
    leader = before["leader"]
    leader_pid = cluster.pid(leader)
    assert leader_pid is not None
    cluster.run("kill", str(leader))
    assert not pid_running(leader_pid)
    assert not cluster.pid_file(leader).exists()
    after_kill = wait_for(
        f"a new leader and an ISR without node {leader}",
        partition_when(
            bootstrap, topic, lambda p: p["leader"] not in (leader, -1) and leader not in p["isr"]
        ),
    )
    assert len(after_kill["isr"]) == 2
    second = [f"after-kill-{i}".encode() for i in range(50)]
    produce(bootstrap, topic, second)
    assert consume_all(bootstrap, topic, 100) == first + second

    # restart N: the node comes back on its state and catches up into the ISR.
    out = cluster.run("restart", str(leader))
    assert out.strip().splitlines()[-1] == bootstrap
    restarted_pid = cluster.pid(leader)
    assert restarted_pid is not None and restarted_pid != leader_pid
    wait_for(
        f"node {leader} back in the ISR",
        partition_when(bootstrap, topic, lambda p: len(p["isr"]) == 3),
    )
    produce(bootstrap, topic, [b"after-restart"])
    assert consume_all(bootstrap, topic, 101)[-1] == b"after-restart"

    # stop: every node's process ends (each pid checked) and the pid files go.
    pids = {node: cluster.pid(node) for node in NODES}
    assert all(pid is not None for pid in pids.values()), pids
    cluster.run("stop", "--brokers", "3")
    running = [pid for pid in pids.values() if pid is not None and pid_running(pid)]
    assert running == [], f"node pids still running after stop: {running}"
    assert not any(cluster.pid_file(node).exists() for node in NODES)
