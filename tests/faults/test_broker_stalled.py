"""Fault 2 (issue #16): a broker stalls (SIGSTOP) under load past the broker and consumer
session timeouts, the writer's commit bound and the producers' transaction timeout, then
goes on (SIGCONT).

On a fresh three-node cluster (tests/local_cluster.py), the topics with three replicas; a
simulated city over ``SHARDS`` shards served by ``WORKERS`` ``dispatch worker`` processes
(tests/faults/under_load.py, as fault 1). ``STALL_AFTER_S`` of load in, the node that is
the transaction coordinator of most shards' producers (``describe_transactions``; ties: the
node leading most of the shards' partitions) is paused with ``kafka-local.sh pause N``: its
JVM frozen, its connections open, so clients wait on it rather than see it refuse them.
The controller fences it ``broker.session.timeout.ms`` (3 s) after its last heartbeat;
``STALL_S`` (25 s) is past that, past the writer's commit bound (``COMMIT_TIMEOUT_S``, 5 s),
the workers' consumer session (10 s) and the producers' transaction timeout
(``TRANSACTION_TIMEOUT_MS``, 20 s), so a transaction left open on the paused coordinator is
older than its timeout by the time the node goes on. Then ``resume N``; the load runs on for
``AFTER_S``.

Afterwards ``replay verify`` is clean and the independent count (Kafka's console consumer)
finds nothing lost, nothing doubled, no driver double-booked. Recorded and logged (``-rA``):
outcomes/s before, during and after the stall; recovery, from the pause to the end of the
longest pause in the outcomes after it (goal, as a dead leader's: 10 s; reported, never
asserted beyond ``RECOVERY_BOUND_S``); when the node's leaderships moved; and which of the
shards' transactions a coordinator rolled back on their timeout (the brokers' logs; reported).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from local_cluster import Cluster
from under_load import (
    RECOVERY_BOUND_S,
    Timeline,
    assert_nothing_lost_doubled_or_double_booked,
    deploy,
    leaders_moved,
    leaderships,
    machine,
    read_back,
    run_load,
    shard_transactions,
)

from dispatch.adapters.kafka.eventstore.clients import TRANSACTION_TIMEOUT_MS
from dispatch.adapters.kafka.eventstore.writer import COMMIT_TIMEOUT_S

pytestmark = pytest.mark.fault
log = logging.getLogger(__name__)

SHARDS = 2
WORKERS = 2
STALL_AFTER_S = 25.0  # wall seconds of load before the pause
STALL_S = 25.0  # the node stays paused this long: past every timeout below
SESSION_S = 10.0  # the workers' consumer session (dispatch/adapters/kafka/worker.py)
AFTER_S = 30.0  # load after it goes on
GOAL_S = 10.0  # as for a leader broker's death (issue #16; reported)


@dataclass
class Stalled(Timeline):
    """The timeline; ``fault`` is the pause, ``back`` the resume."""

    victim: int | None = None
    coordinates: list[str] = field(default_factory=list)  # transactional ids it coordinates
    led: list[str] = field(default_factory=list)  # the partitions it led
    moved: float | None = None  # when the metadata first showed no leadership left on it

    def told(self) -> str:
        return (
            f"node {self.victim} paused (coordinator of {self.coordinates}, leading "
            f"{self.led}); {self.outcomes_after_fault()}"
        )


def timed_out_rollbacks(cluster: Cluster, prefix: str) -> list[str]:
    """The brokers' log lines saying that a coordinator rolled one of the deployment's
    transactions back on its timeout (Kafka's TransactionCoordinator, INFO), node by node."""
    found = []
    pattern = re.compile(
        rf"rollback of ongoing transaction for transactionalId {re.escape(prefix)}\.", re.I
    )
    for node in range(1, len(cluster.ports) + 1):
        for log_file in sorted((cluster.state_dir / f"node-{node}" / "logs").glob("server*.log")):
            for text in log_file.read_text(errors="replace").splitlines():
                if "due to timeout" in text and pattern.search(text):
                    found.append(f"node {node}: {text.strip()}")
    return found


def shard_coordinators(bootstrap: str, prefix: str) -> dict[int, list[str]]:
    """The transactional ids of the shards' producers by the node that coordinates them."""
    found: dict[int, list[str]] = {}
    for tid, txn in sorted(shard_transactions(bootstrap, prefix, range(SHARDS)).items()):
        found.setdefault(txn.coordinator_id, []).append(tid)
    return found


def choose_victim(bootstrap: str, prefix: str) -> tuple[int, list[str], list[str]]:
    """The node coordinating most shards' transactions (ties: leading most of the shards'
    partitions, then the lower id), with what it coordinates and leads."""
    coordinators = shard_coordinators(bootstrap, prefix)
    led = leaderships(bootstrap, prefix)
    nodes = Counter({n: len(ts) for n, ts in coordinators.items()})

    def rank(node: int) -> tuple[int, int, int]:
        return (nodes[node], len(led.get(node, [])), -node)

    node = max((n for n in set(coordinators) | set(led) if n >= 0), key=rank)
    return node, coordinators.get(node, []), led.get(node, [])


def chaos(cluster: Cluster, prefix: str, line: Stalled, stop: threading.Event) -> None:
    """Pause the chosen node STALL_AFTER_S into the load; resume it STALL_S later. The
    node is resumed whatever happens (a paused node would hold the cluster's stop up)."""
    assert line.started is not None
    if stop.wait(max(0.0, line.started + STALL_AFTER_S - time.monotonic())):
        return
    line.victim, line.coordinates, line.led = choose_victim(cluster.bootstrap, prefix)
    victim = line.victim
    # Asked of the other nodes only: a client that picks the paused one waits on it.
    others = ",".join(f"127.0.0.1:{p}" for n, p in enumerate(cluster.ports, 1) if n != victim)

    def watch() -> None:
        line.moved = leaders_moved(others, prefix, victim, STALL_S)

    line.fault = time.monotonic()
    cluster.pause(victim)
    try:
        threading.Thread(target=watch, name="leaders", daemon=True).start()
        stop.wait(max(0.0, line.fault + STALL_S - time.monotonic()))
    finally:
        cluster.resume(victim)
    line.back = time.monotonic()


def test_a_broker_stalled_past_the_timeouts_under_load_loses_doubles_and_double_books_nothing(
    local_cluster: Cluster,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    line = Stalled()
    settings = deploy(local_cluster, "fault2", SHARDS, tmp_path, line, monkeypatch, caplog)
    prefix = settings.topic_prefix
    ended = run_load(
        settings,
        WORKERS,
        tmp_path / "logs",
        line,
        lambda stop: chaos(local_cluster, prefix, line, stop),
        AFTER_S,
        line.told,
    )
    assert line.started and line.fault and line.back and line.victim
    assert max(TRANSACTION_TIMEOUT_MS / 1000, SESSION_S, COMMIT_TIMEOUT_S) < STALL_S
    recovery, pause = line.recovery()
    before, during, after = line.rates(ended)

    log.warning(
        "fault 2: node %d paused (transaction coordinator of %s; leading %s) %.0f s into "
        "the load for %.1f s, its leaderships moved %s s later; recovery %.1f s (goal %.0f "
        "s: %s; the outcomes paused %.1f s); outcomes/s before %.1f, during the stall %.1f, "
        "after %.1f; %s",
        line.victim, line.coordinates or "no shard", ", ".join(line.led) or "nothing",
        line.fault - line.started, line.back - line.fault,
        f"{line.moved - line.fault:.1f}" if line.moved else "not", recovery, GOAL_S,
        "met" if recovery <= GOAL_S else "NOT met", pause, before, during, after, machine(),
    )  # fmt: skip

    rollbacks = timed_out_rollbacks(local_cluster, prefix)
    log.warning(
        "fault 2: %d transaction(s) of the shards rolled back by a coordinator on their "
        "timeout (%.0f s)%s",
        len(rollbacks), TRANSACTION_TIMEOUT_MS / 1000, "".join(f"\n  {r}" for r in rollbacks),
    )  # fmt: skip
    found = read_back(local_cluster, prefix, tmp_path / "console", "fault 2")
    assert recovery <= RECOVERY_BOUND_S, f"the outcomes came back {recovery:.0f} s after"
    assert after > 0, (before, during, after)
    assert_nothing_lost_doubled_or_double_booked(found, line)
