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
import uuid
from collections import Counter
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

import pytest
from independent_count import NOT_FINAL, count_log
from local_cluster import Cluster, describe_partitions

from dispatch.adapters.kafka.logsource import KafkaLogSource
from dispatch.adapters.kafka.topics import Topics, create_topics
from dispatch.adapters.kafka.transport import KafkaTransport
from dispatch.replay.operations import verify
from dispatch.settings import Settings
from dispatch.simulator import kafka as sim_kafka
from dispatch.simulator.runner import SimConfig
from schemas.commands import Outcome

pytestmark = pytest.mark.fault
log = logging.getLogger(__name__)

SHARDS = 2
WORKERS = 2
KILL_AFTER_S = 25.0  # wall seconds of load before the kill
DOWN_S = 15.0  # the killed node stays down this long
AFTER_S = 30.0  # load after the node is back
GOAL_S = 10.0  # issue #16: recovery within 10 s of a leader broker's death (reported)
RECOVERY_BOUND_S = 60.0  # asserted: the outcomes flowed again within this
# Long enough never to end before the test stops the load (it stops on the wall clock).
CONFIG = SimConfig(
    drivers=150, minutes=60, seed=11, demand_per_min=30, warmup_minutes=0, drain_minutes=0
)


class LoadDone(Exception):
    """Raised from the simulator's tick hook once the load has run long enough."""


@dataclass
class Timeline:
    """What the load generator was told, and when (monotonic seconds)."""

    acked: dict[str, Outcome] = field(default_factory=dict)
    ack_times: list[float] = field(default_factory=list)
    started: float | None = None
    killed: float | None = None
    moved: float | None = None  # when the metadata first showed no leadership left on it
    back: float | None = None
    victim: int | None = None
    led: list[str] = field(default_factory=list)  # the partitions the victim led
    chaos_error: BaseException | None = None

    def rate(self, start: float, end: float) -> float:
        """Outcomes per second the load generator got in [start, end)."""
        n = sum(1 for t in self.ack_times if start <= t < end)
        return n / (end - start) if end > start else 0.0

    def told(self) -> str:
        """The timeline so far, relative to the kill (for a run that failed)."""
        if self.killed is None:
            return f"no kill yet; {len(self.ack_times)} outcomes"
        k = self.killed
        after = [round(t - k, 1) for t in self.ack_times if t >= k]
        moved = f"{self.moved - k:.1f} s" if self.moved else "not seen"
        back = f"{self.back - k:.1f} s" if self.back else "not yet"
        return (
            f"node {self.victim} killed (leading {', '.join(self.led)}); leaderships moved "
            f"{moved}, node back {back} after the kill; {len(after)} outcomes after the "
            f"kill, the first at {after[:3]} s, the last at {after[-1:]} s"
        )

    def recovery(self) -> tuple[float, float]:
        """(seconds from the kill to the first outcome after the longest pause that follows
        it, that pause's length); the pause runs from the last outcome before the kill."""
        assert self.killed is not None
        before = [t for t in self.ack_times if t < self.killed]
        after = [t for t in self.ack_times if t >= self.killed]
        assert after, "no outcome came after the kill"
        times = before[-1:] + after
        gap_start, gap_end = max(pairwise(times), key=lambda p: p[1] - p[0])
        return gap_end - self.killed, gap_end - gap_start


def busiest_leader(bootstrap: str, prefix: str) -> tuple[int, list[str]]:
    """The node leading most partitions of the shards' events, commands and outcomes topics
    (ties: more events partitions, then the lower id), and those partitions."""
    topics = Topics(prefix)
    states = describe_partitions(bootstrap, [topics.events, topics.commands, topics.outcomes])
    led: dict[int, list[str]] = {}
    for (topic, partition), state in sorted(states.items()):
        led.setdefault(state.leader, []).append(f"{topic}[{partition}]")
    events = Counter(s.leader for (t, _), s in states.items() if t == topics.events)

    def rank(node: int) -> tuple[int, int, int]:
        return (len(led[node]), events[node], -node)

    node = max((n for n in led if n >= 0), key=rank)
    return node, led[node]


def leaders_moved(bootstrap: str, prefix: str, victim: int) -> float | None:
    """When (monotonic) no partition of the shards' topics named ``victim`` its leader any
    more, as the metadata of the nodes still up says; None if not within DOWN_S."""
    topics = Topics(prefix)
    names = [topics.events, topics.commands, topics.outcomes]
    deadline = time.monotonic() + DOWN_S
    while time.monotonic() < deadline:
        try:
            states = describe_partitions(bootstrap, names).values()
        except Exception:  # the metadata of a cluster losing a node may not answer at once
            states = None
        if states and all(s.leader not in (victim, -1) for s in states):
            return time.monotonic()
        time.sleep(0.1)
    return None


def chaos(cluster: Cluster, prefix: str, line: Timeline, stop: threading.Event) -> None:
    """Kill the busiest leader KILL_AFTER_S into the load; restart it DOWN_S later. Gives
    up at ``stop`` (the test ended early: the cluster fixture stops every node)."""
    try:
        assert line.started is not None
        if stop.wait(max(0.0, line.started + KILL_AFTER_S - time.monotonic())):
            return
        line.victim, line.led = busiest_leader(cluster.bootstrap, prefix)
        line.killed = time.monotonic()
        cluster.kill(line.victim)
        line.moved = leaders_moved(cluster.bootstrap, prefix, line.victim)
        if stop.wait(max(0.0, line.killed + DOWN_S - time.monotonic())):
            return
        cluster.restart(line.victim)
        line.back = time.monotonic()
    except BaseException as e:  # told to the test by the next tick
        line.chaos_error = e


def machine() -> str:
    models = [
        line.split(":", 1)[1].strip()
        for line in Path("/proc/cpuinfo").read_text().splitlines()
        if line.startswith("model name")
    ]
    return f"{len(models)} x {models[0]}" if models else "unknown CPU"


def test_the_leader_broker_killed_under_load_loses_doubles_and_double_books_nothing(
    local_cluster: Cluster,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    bootstrap = local_cluster.bootstrap
    prefix = f"fault1-{uuid.uuid4().hex[:8]}"
    create_topics(bootstrap, prefix, SHARDS, replication_factor=3)
    settings = Settings(
        data_dir=tmp_path, kafka_bootstrap=bootstrap, topic_prefix=prefix, shards=SHARDS
    )
    line = Timeline()

    class Recorded(KafkaTransport):
        def wait_outcome(
            self, command_id: str, timeout_s: float, fingerprint: str | None = None
        ) -> Outcome | None:
            outcome = super().wait_outcome(command_id, timeout_s, fingerprint)
            if outcome is not None:
                line.ack_times.append(time.monotonic())
                line.acked[command_id] = outcome
            return outcome

    monkeypatch.setattr(sim_kafka, "KafkaTransport", Recorded)
    caplog.set_level(logging.CRITICAL, logger="kafka")  # the clients' expected complaints
    stop = threading.Event()
    chaos_thread = threading.Thread(target=chaos, args=(local_cluster, prefix, line, stop))

    def on_tick(_now: float) -> None:
        if line.started is None:
            line.started = time.monotonic()
            chaos_thread.start()
        if line.chaos_error is not None:
            raise line.chaos_error
        if line.back is not None and time.monotonic() >= line.back + AFTER_S:
            raise LoadDone

    try:
        sim_kafka.run_on_kafka(CONFIG, settings, WORKERS, tmp_path / "logs", on_tick=on_tick)
    except LoadDone:
        ended = time.monotonic()
    except BaseException:
        log.warning("fault 1: the load failed; %s", line.told())
        raise
    else:
        pytest.fail("the simulation ended before the load was stopped")
    finally:
        stop.set()
        if chaos_thread.is_alive():  # at most a kill or a restart under way
            chaos_thread.join(timeout=180)
    assert line.started and line.killed and line.back and line.victim
    recovery, pause = line.recovery()
    before = line.rate(line.started + 5, line.killed)  # the first seconds warm up
    during, after = line.rate(line.killed, line.back), line.rate(line.back, ended)

    log.warning(
        "fault 1: node %d killed (leading %s) %.0f s into the load, its leaderships moved "
        "%s s later, the node back %.1f s later; "
        "recovery %.1f s (goal %.0f s: %s; the outcomes paused %.1f s); outcomes/s before "
        "%.1f, from the kill to the return %.1f, after %.1f; %s",
        line.victim, ", ".join(line.led), line.killed - line.started,
        f"{line.moved - line.killed:.1f}" if line.moved else "not", line.back - line.killed,
        recovery, GOAL_S, "met" if recovery <= GOAL_S else "NOT met", pause, before, during,
        after, machine(),
    )  # fmt: skip

    count = count_log(local_cluster, prefix, tmp_path / "console")
    source = KafkaLogSource(bootstrap, prefix)
    try:
        checked, violations = verify(source)
    finally:
        source.close()
    log.warning(
        "fault 1: independent count %d commands, %d outcomes, %d events; replay verify %d "
        "events, %d violations",
        count.commands.total(), sum(map(len, count.outcomes.values())), count.event_count,
        checked, len(violations),
    )  # fmt: skip
    assert recovery <= RECOVERY_BOUND_S, f"the outcomes came back {recovery:.0f} s after"
    assert during > 0 and after > 0, (during, after)
    assert violations == [] and checked == count.event_count > 0
    # Nothing doubled: one record a command, one final outcome a command, no event twice.
    assert {cid: n for cid, n in count.commands.items() if n != 1} == {}
    finals = count.finals()
    assert {cid: codes for cid, codes in finals.items() if len(codes) != 1} == {}
    assert set(finals) == set(count.commands)
    assert count.doubled == []
    # No driver double-booked, every transition legal: the invariants over the count.
    assert count.violations == [] and count.checked == count.event_count
    # Nothing lost: every command the load generator was answered is in the log, with the
    # outcome it was told.
    told = {cid: o.code for cid, o in line.acked.items() if o.code not in NOT_FINAL}
    assert told and {cid: finals.get(cid, []) for cid in told} == {
        cid: [code] for cid, code in told.items()
    }
