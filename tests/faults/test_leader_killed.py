"""Fault 1 (issue #16): the broker that leads the busiest partitions is killed with SIGKILL
under load, and restarted some seconds later.

On a fresh three-node cluster (tests/local_cluster.py: its own ports and state dir), the
topics with three replicas; a simulated city over ``SHARDS`` shards served by ``WORKERS``
``dispatch worker`` processes (``run_on_kafka``, as the worker-failover tests run it).
``KILL_AFTER_S`` of load in, the node leading most of the shards' events, commands and
outcomes partitions is killed (``kafka-local.sh kill N``) and restarted ``DOWN_S`` later
(``restart N``); the load runs on for ``AFTER_S`` after the node is back, then stops.

Afterwards ``replay verify`` is clean over every shard, and an independent count of the
log (Kafka's console consumer, read_committed: tests/faults/independent_count.py) finds
nothing lost (every command the load generator had an outcome for is in the log with that
outcome), nothing doubled (one final outcome a command, no aggregate version twice) and no
driver double-booked (the repo's invariant checker over what the console consumer read).

Recorded per run and logged (``-rA`` shows it; docs/RELIABILITY.md keeps the figures):
the load held, as outcomes the load generator got per second before the kill, from the
kill to the node's return and after it; and the recovery time, from the kill to the end of
the longest pause in the outcomes after it. The goal (10 s) is reported, never asserted;
only that the flow came back within ``RECOVERY_BOUND_S``.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from local_cluster import Cluster
from under_load import (
    RECOVERY_BOUND_S,
    Timeline,
    assert_nothing_lost_doubled_or_double_booked,
    busiest_leader,
    deploy,
    leaders_moved,
    machine,
    read_back,
    run_load,
)

pytestmark = pytest.mark.fault
log = logging.getLogger(__name__)

SHARDS = 2
WORKERS = 2
KILL_AFTER_S = 25.0  # wall seconds of load before the kill
DOWN_S = 15.0  # the killed node stays down this long
AFTER_S = 30.0  # load after the node is back
GOAL_S = 10.0  # issue #16: recovery within 10 s of a leader broker's death (reported)


@dataclass
class Killed(Timeline):
    """The timeline; ``fault`` is the kill, ``back`` the node's return."""

    moved: float | None = None  # when the metadata first showed no leadership left on it
    victim: int | None = None
    led: list[str] = field(default_factory=list)  # the partitions the victim led

    def told(self) -> str:
        """The timeline so far, relative to the kill (for a run that failed)."""
        if self.fault is None:
            return self.outcomes_after_fault()
        moved = f"{self.moved - self.fault:.1f} s" if self.moved else "not seen"
        return (
            f"node {self.victim} killed (leading {', '.join(self.led)}); leaderships moved "
            f"{moved} after the kill; {self.outcomes_after_fault()}"
        )


def chaos(cluster: Cluster, prefix: str, line: Killed, stop: threading.Event) -> None:
    """Kill the busiest leader KILL_AFTER_S into the load; restart it DOWN_S later. Gives
    up at ``stop`` (the test ended early: the cluster fixture stops every node)."""
    assert line.started is not None
    if stop.wait(max(0.0, line.started + KILL_AFTER_S - time.monotonic())):
        return
    line.victim, line.led = busiest_leader(cluster.bootstrap, prefix)
    line.note("killing node %d (pid %s; leading %s)", line.victim, cluster.pid(line.victim),
              line.led)  # fmt: skip
    line.fault = time.monotonic()
    cluster.kill(line.victim)
    line.note("node %d killed", line.victim)
    line.moved = leaders_moved(cluster.bootstrap, prefix, line.victim, DOWN_S)
    line.note("leaderships moved off node %d: %s", line.victim, line.moved is not None)
    if stop.wait(max(0.0, line.fault + DOWN_S - time.monotonic())):
        return
    cluster.restart(line.victim)
    line.note("node %d restarted", line.victim)
    line.back = time.monotonic()


def test_the_leader_broker_killed_under_load_loses_doubles_and_double_books_nothing(
    local_cluster: Cluster,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    line = Killed()
    settings = deploy(local_cluster, "fault1", SHARDS, tmp_path, line, monkeypatch, caplog)
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
    recovery, pause = line.recovery()
    before, during, after = line.rates(ended)

    log.warning(
        "fault 1: node %d killed (leading %s) %.0f s into the load, its leaderships moved "
        "%s s later, the node back %.1f s later; "
        "recovery %.1f s (goal %.0f s: %s; the outcomes paused %.1f s); outcomes/s before "
        "%.1f, from the kill to the return %.1f, after %.1f; %s",
        line.victim, ", ".join(line.led), line.fault - line.started,
        f"{line.moved - line.fault:.1f}" if line.moved else "not", line.back - line.fault,
        recovery, GOAL_S, "met" if recovery <= GOAL_S else "NOT met", pause, before, during,
        after, machine(),
    )  # fmt: skip

    found = read_back(local_cluster, prefix, tmp_path / "console", "fault 1")
    assert recovery <= RECOVERY_BOUND_S, f"the outcomes came back {recovery:.0f} s after"
    # Outcomes while the node was down (during > 0) is the goal, reported with the
    # recovery time above; a time is never asserted beyond RECOVERY_BOUND_S.
    assert after > 0, (during, after)
    assert_nothing_lost_doubled_or_double_booked(found, line)
