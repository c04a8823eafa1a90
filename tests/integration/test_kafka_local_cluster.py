"""The local three-node cluster of ``scripts/kafka-local.sh`` (issue #16): ``start --brokers
3`` prints the bootstrap list; a topic with three replicas keeps taking ``acks=all`` writes
when ``kill N`` takes its leader down (two in sync are enough, ``min.insync.replicas=2``);
``restart N`` brings the node back into the ISR; ``stop`` leaves no node running.

Not marked ``kafka``: the test starts its own cluster with the script, on free ports and
a state dir under ``tmp_path``, so it runs next to the single broker (9092/9093) and any
other cluster, and stops it again even when it fails. About a minute, most of it the
cluster's start and the controller fencing the killed broker (broker.session.timeout.ms,
3 s on this cluster).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from kafka import TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic
from local_cluster import (
    NODES,
    WAIT_S,
    Cluster,
    PartitionState,
    describe_partitions,
    pid_running,
    wait_for,
)

from dispatch.adapters.kafka.config import new_admin, new_consumer, new_producer


def describe_partition(bootstrap: str, topic: str) -> PartitionState:
    """Partition 0 of ``topic`` (its only one) as the cluster's metadata has it."""
    (partition,) = describe_partitions(bootstrap, [topic]).values()
    return partition


def partition_when(
    bootstrap: str, topic: str, condition: Callable[[PartitionState], bool]
) -> Callable[[], PartitionState | None]:
    """A check for ``wait_for``: partition 0 of ``topic`` once ``condition`` holds."""

    def check() -> PartitionState | None:
        partition = describe_partition(bootstrap, topic)
        return partition if condition(partition) else None

    return check


def topic_configs(admin: Any, topic: str) -> dict[str, Any]:
    """The topic's configs, asked again until the broker that answers knows the topic: a
    topic just created reaches each broker's metadata a moment after the controller
    commits it, and a broker that does not know it yet answers no configs (seen in CI)."""
    resources = [ConfigResource(ConfigResourceType.TOPIC, topic)]
    deadline = time.monotonic() + WAIT_S
    while True:
        configs: dict[str, Any] = admin.describe_configs(resources, config_filter="all")[
            "topic"
        ].get(topic, {})
        if "min.insync.replicas" in configs or time.monotonic() > deadline:
            return configs
        time.sleep(0.2)


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


def test_three_node_cluster_survives_its_leader_and_stops_clean(local_cluster: Cluster) -> None:
    cluster = local_cluster
    assert cluster.bootstrap == ",".join(f"127.0.0.1:{p}" for p in cluster.ports)
    bootstrap = cluster.bootstrap

    # A topic with three replicas, and one with the cluster's defaults (RF 3, min ISR 2,
    # no unclean election).
    topic = f"cluster-{uuid.uuid4().hex[:8]}"
    defaults = f"{topic}-defaults"
    admin = new_admin(bootstrap)
    try:
        admin.create_topics([NewTopic(topic, 1, 3), NewTopic(defaults, 1)], timeout_ms=30_000)
        configs = topic_configs(admin, topic)
    finally:
        admin.close()
    assert configs["min.insync.replicas"]["value"] == "2"
    assert configs["unclean.leader.election.enable"]["value"] == "false"
    assert len(describe_partition(bootstrap, defaults).replicas) == 3

    before = wait_for(
        "three replicas in sync",
        partition_when(bootstrap, topic, lambda p: len(p.isr) == 3),
    )
    assert before.replicas == list(NODES)
    first = [f"before-{i}".encode() for i in range(50)]
    produce(bootstrap, topic, first)

    # kill -9 the partition's leader: the other two elect a leader and keep the ISR at 2.
    leader = before.leader
    leader_pid = cluster.pid(leader)
    assert leader_pid is not None
    cluster.run("kill", str(leader))
    assert not pid_running(leader_pid)
    assert not cluster.pid_file(leader).exists()
    after_kill = wait_for(
        f"a new leader and an ISR without node {leader}",
        partition_when(
            bootstrap, topic, lambda p: p.leader not in (leader, -1) and leader not in p.isr
        ),
    )
    assert len(after_kill.isr) == 2
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
        partition_when(bootstrap, topic, lambda p: len(p.isr) == 3),
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
