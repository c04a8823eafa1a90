"""The load the fault tests run under, and what they check after it (issue #16).

A simulated city through ``run_on_kafka`` (its ``dispatch worker`` processes, stream
clock); every outcome the load generator gets is recorded with its time (``Timeline``). A
chaos function runs on its own thread from the first tick: it makes the fault, notes when
it began (``fault``) and ended (``back``); the load stops ``after_s`` after that.

Afterwards ``check_log`` reads the log twice, apart from the engine's workers: ``replay
verify`` (the project's reader) and the independent count (Kafka's console consumer,
tests/faults/independent_count.py), and asserts nothing lost, nothing doubled and no
driver double-booked. Recovery time and load held are reported, not asserted (tests never
fail on a time) beyond a generous bound that proves the flow came back.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from independent_count import NOT_FINAL, LogCount, count_log
from local_cluster import Cluster, describe_partitions

from dispatch.adapters.kafka.config import new_admin
from dispatch.adapters.kafka.logsource import KafkaLogSource
from dispatch.adapters.kafka.topics import Topics, create_topics
from dispatch.adapters.kafka.transport import KafkaTransport
from dispatch.replay.operations import verify
from dispatch.settings import Settings
from dispatch.simulator import kafka as sim_kafka
from dispatch.simulator.runner import SimConfig
from schemas.commands import Outcome

log = logging.getLogger(__name__)
# The timeline's moments as they happen (the fault made, the node gone, ...), stamped with the
# wall clock in the load's own log (``keep_load_log``), to be read beside the workers' and
# the brokers' logs.
timeline = logging.getLogger("faults.timeline")

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
    fault: float | None = None  # when the fault was made
    back: float | None = None  # when it was undone
    chaos_error: BaseException | None = None

    def rate(self, start: float, end: float) -> float:
        """Outcomes per second the load generator got in [start, end)."""
        n = sum(1 for t in self.ack_times if start <= t < end)
        return n / (end - start) if end > start else 0.0

    def rates(self, ended: float) -> tuple[float, float, float]:
        """Outcomes/s from 5 s into the load (the first seconds warm up) to the fault, from
        the fault to its end, and from its end to ``ended``."""
        assert self.started and self.fault and self.back
        return (
            self.rate(self.started + 5, self.fault),
            self.rate(self.fault, self.back),
            self.rate(self.back, ended),
        )

    def outcomes_after_fault(self) -> str:
        """How many outcomes came after the fault, and when (for a run that failed)."""
        if self.fault is None:
            return f"no fault yet; {len(self.ack_times)} outcomes"
        f = self.fault
        after = [round(t - f, 1) for t in self.ack_times if t >= f]
        back = f"{self.back - f:.1f} s" if self.back else "not yet"
        return (
            f"fault undone {back} after it was made; {len(after)} outcomes after it, the "
            f"first at {after[:3]} s, the last at {after[-1:]} s"
        )

    def note(self, what: str, *args: object) -> None:
        """Log a moment of the timeline now (wall clock in the load's log)."""
        timeline.info(what, *args)

    def recovery(self) -> tuple[float, float]:
        """(seconds from the fault to the first outcome after the longest pause that follows
        it, that pause's length); the pause runs from the last outcome before the fault."""
        assert self.fault is not None
        before = [t for t in self.ack_times if t < self.fault]
        after = [t for t in self.ack_times if t >= self.fault]
        assert after, "no outcome came after the fault"
        times = before[-1:] + after
        gap_start, gap_end = max(pairwise(times), key=lambda p: p[1] - p[0])
        timeline.info(
            "the longest pause in the outcomes after the fault: from %s to %s",
            _wall(gap_start), _wall(gap_end),
        )  # fmt: skip
        return gap_end - self.fault, gap_end - gap_start


def _wall(monotonic: float) -> str:
    """A monotonic time as the wall clock's time of day, as the logs stamp it."""
    wall = time.time() - (time.monotonic() - monotonic)
    return time.strftime("%H:%M:%S", time.localtime(wall)) + f",{int(wall % 1 * 1000):03d}"


def keep_load_log(
    path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The load generator's own Kafka clients (its commands producer, its outcomes and
    events followers: kafka-python at INFO, the project's warnings) and the timeline
    (``Timeline.note``) logged to ``path`` with wall-clock times and thread names, beside
    the workers' logs; kafka-python's lines and the timeline are kept out of pytest's
    captured log, which the clients' expected complaints would flood. Undone when the test
    ends."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s [%(threadName)s] %(name)s %(message)s"))
    for name in ("kafka", timeline.name, "dispatch"):
        logger = logging.getLogger(name)
        monkeypatch.setattr(logger, "handlers", [*logger.handlers, handler])
        if name != "dispatch":  # its warnings go to pytest's log too, as before
            monkeypatch.setattr(logger, "propagate", False)
            caplog.set_level(logging.INFO, logger=name)


def record_outcomes(monkeypatch: pytest.MonkeyPatch, line: Timeline) -> None:
    """Make the simulator's transport note every outcome it is told, and when, in ``line``."""

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


def deploy(
    cluster: Cluster,
    fault: str,
    shards: int,
    data_dir: Path,
    line: Timeline,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> Settings:
    """The settings of a deployment on ``cluster`` under a fresh topic prefix
    (``<fault>-<hex>``), its topics made with three replicas; the load generator's outcomes
    recorded in ``line``; the load generator's Kafka clients logged to ``logs/load.log``
    under ``data_dir`` (``keep_load_log``), not to pytest's log."""
    prefix = f"{fault}-{uuid.uuid4().hex[:8]}"
    create_topics(cluster.bootstrap, prefix, shards, replication_factor=3)
    record_outcomes(monkeypatch, line)
    keep_load_log(data_dir / "logs" / "load.log", monkeypatch, caplog)
    return Settings(
        data_dir=data_dir, kafka_bootstrap=cluster.bootstrap, topic_prefix=prefix, shards=shards
    )


def run_load(
    settings: Settings,
    workers: int,
    log_dir: Path,
    line: Timeline,
    chaos: Callable[[threading.Event], None],
    after_s: float,
    told: Callable[[], str],
) -> float:
    """Run the load with ``workers`` worker processes; ``chaos(stop)`` runs on its own
    thread from the first tick (``stop`` is set when the load ends early: it must give up
    then) and sets ``line.fault`` and ``line.back``. The load stops ``after_s`` after
    ``line.back``; returns when (monotonic). A chaos error fails the load; ``told()`` is
    logged when the load fails."""

    def guarded(stop: threading.Event) -> None:
        try:
            chaos(stop)
        except BaseException as e:  # told to the test by the next tick
            line.chaos_error = e

    stop = threading.Event()
    chaos_thread = threading.Thread(target=guarded, args=(stop,), name="chaos")

    def on_tick(_now: float) -> None:
        if line.started is None:
            line.started = time.monotonic()
            chaos_thread.start()
        if line.chaos_error is not None:
            raise line.chaos_error
        if line.back is not None and time.monotonic() >= line.back + after_s:
            raise LoadDone

    try:
        sim_kafka.run_on_kafka(CONFIG, settings, workers, log_dir, on_tick=on_tick)
    except LoadDone:
        return time.monotonic()
    except BaseException:
        log.warning("the load failed; %s", told())
        raise
    else:
        pytest.fail("the simulation ended before the load was stopped")
    finally:
        stop.set()
        if chaos_thread.is_alive():  # at most a step of the chaos under way
            chaos_thread.join(timeout=180)


@dataclass(frozen=True)
class Checked:
    """The log as the independent count and ``replay verify`` read it."""

    count: LogCount
    checked: int  # events replay verify folded
    violations: list[object]


def read_back(cluster: Cluster, prefix: str, console_dir: Path, name: str) -> Checked:
    """The independent count of the log and ``replay verify`` over every shard (logged)."""
    count = count_log(cluster, prefix, console_dir)
    source = KafkaLogSource(cluster.bootstrap, prefix)
    try:
        checked, violations = verify(source)
    finally:
        source.close()
    log.warning(
        "%s: independent count %d commands, %d outcomes, %d events; replay verify %d "
        "events, %d violations",
        name, count.commands.total(), sum(map(len, count.outcomes.values())),
        count.event_count, checked, len(violations),
    )  # fmt: skip
    return Checked(count, checked, list(violations))


def assert_nothing_lost_doubled_or_double_booked(found: Checked, line: Timeline) -> None:
    count = found.count
    assert found.violations == [] and found.checked == count.event_count > 0
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


def busiest_leader(bootstrap: str, prefix: str) -> tuple[int, list[str]]:
    """The node leading most partitions of the shards' events, commands and outcomes topics
    (ties: more events partitions, then the lower id), and those partitions."""
    led = leaderships(bootstrap, prefix)
    of_events = f"{Topics(prefix).events}["
    events = Counter({n: sum(p.startswith(of_events) for p in ps) for n, ps in led.items()})

    def rank(node: int) -> tuple[int, int, int]:
        return (len(led[node]), events[node], -node)

    node = max((n for n in led if n >= 0), key=rank)
    return node, led[node]


def leaderships(bootstrap: str, prefix: str) -> dict[int, list[str]]:
    """The partitions of the shards' events, commands and outcomes topics by leader."""
    topics = Topics(prefix)
    states = describe_partitions(bootstrap, [topics.events, topics.commands, topics.outcomes])
    led: dict[int, list[str]] = {}
    for (topic, partition), state in sorted(states.items()):
        led.setdefault(state.leader, []).append(f"{topic}[{partition}]")
    return led


def leaders_moved(bootstrap: str, prefix: str, victim: int, within_s: float) -> float | None:
    """When (monotonic) no partition of the shards' topics named ``victim`` its leader any
    more, as the metadata of the nodes still up says; None if not within ``within_s``."""
    topics = Topics(prefix)
    names = [topics.events, topics.commands, topics.outcomes]
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            states = describe_partitions(bootstrap, names).values()
        except Exception:  # the metadata of a cluster losing a node may not answer at once
            states = None
        if states and all(s.leader not in (victim, -1) for s in states):
            return time.monotonic()
        time.sleep(0.1)
    return None


def shard_transactions(bootstrap: str, prefix: str, shards: Iterable[int]) -> dict[str, Any]:
    """The transactions of the shards' producers by transactional id, as their coordinators
    describe them (``describe_transactions``: coordinator id, producer id and epoch)."""
    admin = new_admin(bootstrap, request_timeout_ms=5_000)
    try:
        described: dict[str, Any] = admin.describe_transactions(
            [f"{prefix}.shard-{shard}" for shard in shards]
        )
    finally:
        admin.close()
    return described


def machine() -> str:
    models = [
        line.split(":", 1)[1].strip()
        for line in Path("/proc/cpuinfo").read_text().splitlines()
        if line.startswith("model name")
    ]
    return f"{len(models)} x {models[0]}" if models else "unknown CPU"
