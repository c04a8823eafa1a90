"""Fault 3 (issue #16): one ``dispatch worker`` is cut off from the brokers under load past
its consumer session (10 s), then let back.

On a fresh three-node cluster, topics with three replicas over ``SHARDS`` shards: one
worker runs under a user id of its own (tests/faults/cut_off.py), the other is the load's
(tests/faults/under_load.py, as fault 1); the group gives each a shard. ``CUT_AFTER_S`` of
load in, a firewall rule drops the first one's loopback TCP traffic for ``CUT_S``: its
connections stay open and carry nothing. Expected: the group coordinator evicts it a
session after its last heartbeat, and its shard moves to the other worker, whose new
producer (the shard's transactional id) fences the old one; let back, the cut worker
gives the shard up without writing (a write would be refused as fenced, or the group's
word that it owns the shard is missing) and rejoins the group.

Checked afterwards:

- ``replay verify`` clean and the independent count (Kafka's console consumer,
  read_committed): nothing lost, nothing doubled (no command decided, no event version
  written, by two owners), no driver double-booked;
- the shard's producer (its transactional id, ``describe_transactions``) has a newer epoch
  once the new owner opened it;
- who wrote what, from the brokers' own files: every record batch of the deployment's
  written topics, as Kafka's ``DumpLogSegments`` reads node 1's segment files (its
  committed records are as many as the console consumer read, and each partition's dump
  ends at the partition's end offset, read with the workers stopped: node 1 holds the
  whole log), carries its producer's id and epoch. With the partitions' end offsets taken
  right after the cut and again just before the return: (1) no committed batch of the cut
  worker's producer (the shard's producer id, an epoch older than the new owner's) lies
  past the ends at the cut, on any partition: nothing it sent after the cut was
  committed, during the cut or after its return; (2) no batch of that producer, whatever
  became of it (committed, aborted, left open), lies past the ends at the return, nor has
  a create time after the return: nothing it sent after its return reached the log at
  all, not even a batch built during the cut and sent once let back; (3) every committed
  batch of the cut shard's own partitions past the cut carries the shard's producer id
  with the new owner's epoch or a later one, and each such epoch is one a worker's log
  says it was given (kafka-python's ``ProducerId set to P with epoch E``): the new owner's
  after the cut, or the cut worker's after its return only if that init is the one it
  then opened the shard with (its next line about that shard, before any other init of
  the producer id, says it restored or reopened the shard in place);
- the cut worker's own log, up to the test's stop signal (so a clean stop's "released"
  lines and kafka-python's "Revoking ... on close" never count): for each of its shards a
  line saying it lost the shard (its producer fenced, or given up and not used again, or
  the group's word that it was evicted or that another member has the shard); and if it
  still held the shard when let back, such a line comes before any batch of that shard is
  logged after the return.

Recorded and logged (``-rA``): when the shard moved (goal: the session timeout plus 5 s),
the recovery of the outcomes and outcomes/s before, during and after the cut, the epochs
and their writers, what the cut worker said after its return and when; reported,
asserted only within ``RECOVERY_BOUND_S``.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pytest
from cut_off import Firewall, LogBatch, as_user, dump_batches, own_user
from kafka import TopicPartition
from local_cluster import Cluster
from under_load import (
    RECOVERY_BOUND_S,
    Timeline,
    assert_nothing_lost_doubled_or_double_booked,
    deploy,
    machine,
    read_back,
    run_load,
    shard_transactions,
)

from dispatch.adapters.kafka.config import new_admin, new_consumer
from dispatch.adapters.kafka.eventstore.clients import end_offsets
from dispatch.adapters.kafka.processes import start_worker, stop_worker
from dispatch.adapters.kafka.topics import Topics

pytestmark = pytest.mark.fault
log = logging.getLogger(__name__)

SHARDS = 2
CUT = "cut-worker"  # the cut worker's member name (its client id)
OTHER = "sim-worker-0"  # the load's worker (``spawn_workers``), its log worker-0.log
CUT_AFTER_S = 25.0  # wall seconds of load before the cut
CUT_S = 25.0  # the worker stays cut off this long: past its session, and the move's goal
AFTER_S = 30.0  # load after it is let back
SESSION_S = 10.0  # the workers' session_timeout_ms (dispatch/adapters/kafka/worker.py)
GOAL_S = SESSION_S + 5.0  # issue #16: the shards move within the session timeout + 5 s


@dataclass
class CutOff(Timeline):
    """The timeline; ``fault`` is the cut, ``back`` the rule's removal."""

    shards: list[int] = field(default_factory=list)  # the cut worker's at the cut
    cut_wall: float | None = None  # time.time() of the cut
    moved: float | None = None  # the group first gave its shards to the other worker
    producers: dict[int, int] = field(default_factory=dict)  # shard -> its producer id
    epochs: dict[int, tuple[int, int | None]] = field(default_factory=dict)
    # shard -> its producer's epoch at the cut, and once the new owner opened it (None:
    # not seen to change within CUT_S)
    ends_at_cut: dict[tuple[str, int], int] = field(default_factory=dict)
    # (topic, partition) -> its end offset (high watermark) right after the cut
    ends_at_return: dict[tuple[str, int], int] = field(default_factory=dict)
    # (topic, partition) -> its end offset just before the rule's removal
    back_wall: float | None = None  # time.time() of the rule's removal
    stop_wall: float | None = None  # time.time() just before the cut worker was told to stop

    def told(self) -> str:
        moved = f"{self.moved - self.fault:.1f} s" if self.moved and self.fault else "not seen"
        return f"{CUT} cut off (shards {self.shards}), moved {moved}; {self.outcomes_after_fault()}"


def owners(bootstrap: str, prefix: str) -> dict[str, set[int]]:
    """The shards (commands partitions) the workers' group assigns, by member client id;
    empty while the group is not stable."""
    group = f"{prefix}.workers"
    admin = new_admin(bootstrap, request_timeout_ms=5_000)
    try:
        described = admin.describe_groups([group])[group]
    finally:
        admin.close()
    if described.get("group_state") != "Stable":
        return {}
    commands = Topics(prefix).commands
    found: dict[str, set[int]] = {}
    for member in described.get("members", []):
        assignment = member.get("member_assignment")
        topics = assignment.get("assigned_partitions", []) if isinstance(assignment, dict) else []
        found.setdefault(member["client_id"], set()).update(
            p for t in topics if t["topic"] == commands for p in t["partitions"]
        )
    return found


def wait_owned(
    bootstrap: str, prefix: str, member: str, shards: set[int], within_s: float
) -> float | None:
    """When (monotonic) the group, stable, gave ``member`` every one of ``shards``."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            if shards <= owners(bootstrap, prefix).get(member, set()):
                return time.monotonic()
        except Exception:  # a group in the middle of a change may not answer
            pass
        time.sleep(0.25)
    return None


def chaos(
    bootstrap: str, prefix: str, firewall: Firewall, line: CutOff, stop: threading.Event
) -> None:
    """Cut the worker off CUT_AFTER_S into the load; let it back CUT_S later (the rule is
    removed whatever happens)."""
    assert line.started is not None
    if stop.wait(max(0.0, line.started + CUT_AFTER_S - time.monotonic())):
        return
    shards = owners(bootstrap, prefix).get(CUT, set())
    assert shards, f"{CUT} owns no shard before the cut: {owners(bootstrap, prefix)}"
    line.shards = sorted(shards)
    before = {s: producer(bootstrap, prefix, s) for s in shards}
    line.producers = {s: pid for s, (pid, _) in before.items()}
    try:
        firewall.cut()
        line.fault, line.cut_wall = time.monotonic(), time.time()
        line.ends_at_cut = log_ends(bootstrap, written_topics(prefix))
        line.moved = wait_owned(bootstrap, prefix, OTHER, shards, CUT_S)
        deadline = line.fault + CUT_S
        line.epochs = {
            s: (e, new_epoch(bootstrap, prefix, s, e, deadline)) for s, (_, e) in before.items()
        }
        stop.wait(max(0.0, deadline - time.monotonic()))
        # Just before the return: a batch of the old producer at or past these was
        # appended after it, whatever its create time (stamped when it was built) says.
        line.ends_at_return = log_ends(bootstrap, written_topics(prefix))
    finally:
        firewall.restore()
    line.back, line.back_wall = time.monotonic(), time.time()


def producer(bootstrap: str, prefix: str, shard: int) -> tuple[int, int]:
    """The id and epoch of the shard's producer (its transactional id's), as its
    coordinator says."""
    found = shard_transactions(bootstrap, prefix, [shard])[f"{prefix}.shard-{shard}"]
    return int(found.producer_id), int(found.producer_epoch)


def epoch(bootstrap: str, prefix: str, shard: int) -> int:
    return producer(bootstrap, prefix, shard)[1]


def written_topics(prefix: str) -> list[str]:
    """The topics a shard's batches write to (its transactions)."""
    t = Topics(prefix)
    return [t.events, t.outcomes, t.snapshots, t.checkpoints, t.dead_letters,
            t.shard_messages, t.driver_availability]  # fmt: skip


def own_topics(prefix: str) -> list[str]:
    """The topics whose partition N only shard N's batches write."""
    t = Topics(prefix)
    return [t.events, t.outcomes, t.snapshots, t.checkpoints, t.driver_availability]


def log_ends(bootstrap: str, topics: list[str], attempts: int = 3) -> dict[tuple[str, int], int]:
    """Every partition's end offset (its high watermark: read_uncommitted), by (topic,
    partition)."""
    for attempt in range(attempts):
        consumer = new_consumer(bootstrap, group_id=None, isolation_level="read_uncommitted")
        try:
            tps = [TopicPartition(t, p) for t in topics for p in consumer.partitions_for_topic(t)]
            ends = end_offsets(consumer, tps, timeout_ms=10_000)
            return {(tp.topic, tp.partition): offset for tp, offset in ends.items()}
        except Exception:
            if attempt + 1 == attempts:
                raise
        finally:
            consumer.close()
    raise AssertionError("unreachable")


def new_epoch(bootstrap: str, prefix: str, shard: int, old: int, deadline: float) -> int | None:
    """The shard producer's epoch once it is past ``old`` (a new owner's init_transactions
    fenced the producer of ``old``); None if not by ``deadline`` (monotonic)."""
    while time.monotonic() < deadline:
        try:
            now = epoch(bootstrap, prefix, shard)
        except Exception:  # a coordinator in the middle of a change may not answer
            now = old
        if now != old:
            return now
        time.sleep(0.25)
    return None


STAMP = "%Y-%m-%d %H:%M:%S,%f"  # the workers' log lines begin so (dispatch/cli/ops.py)


def stamped(worker_log: Path) -> list[tuple[float, str]]:
    """The log's lines with their time (time.time()); a line without a stamp (a traceback,
    the final stats) gets the time of the line before it."""
    lines, last = [], 0.0
    for text in worker_log.read_text(errors="replace").splitlines():
        with contextlib.suppress(ValueError):  # no stamp: a line continued
            last = datetime.strptime(text[:23], STAMP).timestamp()
        lines.append((last, text))
    return lines


def opened_after(worker_log: Path, shard: int, after_wall: float) -> float | None:
    """When (time.time()) the worker logged that it opened ``shard`` (``shard N restored``),
    the first time after ``after_wall``."""
    for stamp, text in stamped(worker_log):
        if f" shard {shard} restored in " in text and stamp >= after_wall:
            return stamp
    return None


def lost_it(text: str, shard: int, commands: str) -> str | None:
    """What a cut worker's log line says about losing ``shard``: ``fenced`` (its producer
    refused as fenced), ``given up`` (its producer lost without a fence and not used
    again), ``evicted`` (the group's word that this member is out), ``moved`` (the group
    gave the shard to another member); None for any other line. The worker's words
    (dispatch/adapters/kafka/worker.py, batch.py, eventstore/writer.py) and kafka-python's
    when its heartbeat learns the member is gone; a clean stop's ("shard N released",
    "Revoking previously assigned partitions ... on close") are none of these."""
    n = f"shard {shard}"
    if re.search(
        rf"dispatch\.adapters\.kafka\.\w+ {n}(:| released:) .*fenced by a newer owner", text
    ):
        return "fenced"
    if f"kafka.worker {n} released: its producer was lost" in text:
        return "given up"
    if f"kafka.worker {n} (lost here) is now assigned to another member" in text:
        return "moved"
    if f"kafka.worker {n} not reopened yet (" in text and (
        "evicted" in text or "another member" in text or "no longer assigned" in text
    ):
        return "evicted"
    if "lost membership; forcibly revoking" in text and (
        f"TopicPartition(topic='{commands}', partition={shard})" in text
    ):
        return "evicted"
    return None


def wrote(text: str, shard: int) -> bool:
    """A log line of a batch of ``shard`` that the worker ran (committed slowly, or
    aborted): the only batches its log names."""
    return f"kafka.batch shard {shard}: batch aborted" in text or (
        f"kafka.worker shard {shard}: slow batch" in text
    )


PRODUCER_ID_SET = re.compile(r"ProducerId set to (\d+) with epoch (\d+)")


def given(worker_log: Path, producer_id: int) -> list[tuple[float, int]]:
    """(when, epoch) of every epoch of ``producer_id`` the worker's producers were given
    (kafka-python logs ``ProducerId set to P with epoch E`` at each init)."""
    found: list[tuple[float, int]] = []
    for stamp, text in stamped(worker_log):
        m = PRODUCER_ID_SET.search(text)
        if m and int(m[1]) == producer_id:
            found.append((stamp, int(m[2])))
    return found


def opened_with(
    worker_log: Path, producers: dict[int, int], since_wall: float
) -> list[tuple[int, int, float]]:
    """(producer id, epoch, when) of each init of a shard's producer (``producers``: shard
    -> its producer id) logged from ``since_wall`` on that the worker then opened the shard
    with: the shard's next line after it is ``shard N restored in`` (the group gave it the
    shard) or ``shard N reopened in place`` (reopened after a loss, only once the group
    confirmed this member owns it: ``KafkaWorker._ownership_doubt``), with no other init of
    that producer id in between (a later init replaces it: an open that failed, an epoch
    bump). Lines in the log's order."""
    shard_of = {pid: s for s, pid in producers.items()}
    pending: dict[int, tuple[int, float]] = {}  # producer id -> (epoch, when), unpaired
    paired: list[tuple[int, int, float]] = []
    for stamp, text in stamped(worker_log):
        if stamp < since_wall:
            continue
        m = PRODUCER_ID_SET.search(text)
        if m and int(m[1]) in shard_of:
            pending[int(m[1])] = (int(m[2]), stamp)
            continue
        for pid, (e, when) in list(pending.items()):
            s = shard_of[pid]
            if f" shard {s} restored in " in text or f" shard {s} reopened in place " in text:
                paired.append((pid, e, when))
                del pending[pid]
    return paired


def test_a_worker_cut_off_past_its_session_loses_its_shard_and_writes_nothing_after_the_cut(
    local_cluster: Cluster,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    line = CutOff()
    settings = deploy(local_cluster, "fault3", SHARDS, tmp_path, line, monkeypatch, caplog)
    bootstrap, prefix = local_cluster.bootstrap, settings.topic_prefix
    logs = tmp_path / "logs"
    cut_log, other_log = logs / f"{CUT}.log", logs / "worker-0.log"
    with own_user() as (uid, firewall, data_dir):
        cut_settings = settings.model_copy(update={"data_dir": data_dir})
        with monkeypatch.context() as env:  # its home and numba's cache: dirs it may write
            env.setenv("HOME", str(data_dir))
            env.setenv("NUMBA_CACHE_DIR", str(data_dir / "numba"))
            worker = start_worker(cut_settings, cut_log, CUT, "stream", as_user(uid))
        try:
            joined = wait_owned(bootstrap, prefix, CUT, set(range(SHARDS)), 60)
            assert joined is not None, f"{CUT} did not take the shards: see {cut_log}"
            ended = run_load(
                settings,
                1,
                logs,
                line,
                lambda stop: chaos(bootstrap, prefix, firewall, line, stop),
                AFTER_S,
                line.told,
            )
        finally:
            line.stop_wall = time.time()
            stop_worker(worker)
    assert line.started and line.fault and line.back and line.cut_wall and line.shards
    assert line.back_wall and line.stop_wall and line.ends_at_cut and line.ends_at_return
    recovery, pause = line.recovery()
    before, during, after = line.rates(ended)
    opened = {s: opened_after(other_log, s, line.cut_wall) for s in line.shards}
    took_over = max((t for t in opened.values() if t is not None), default=None)
    topics = Topics(prefix)

    # The cut worker's log from the cut to the test's stop signal (not the stop's lines).
    said = [(t, x) for t, x in stamped(cut_log) if line.cut_wall <= t < line.stop_wall]
    lost = {s: [(t, why, x) for t, x in said if (why := lost_it(x, s, topics.commands))]
            for s in line.shards}  # fmt: skip
    held_at_return = {
        s: not any(t < line.back_wall and why != "evicted" for t, why, _ in lost[s])
        for s in line.shards
    }
    after_return = {
        s: [(t, why or ("wrote" if wrote(x, s) else "restored"), x) for t, x in said
            if t >= line.back_wall and ((why := lost_it(x, s, topics.commands))
                                        or wrote(x, s) or f" shard {s} restored in " in x)]
        for s in line.shards
    }  # fmt: skip

    # Who wrote what: every batch of the written topics, from node 1's segment files, with
    # the partitions' ends (both workers stopped) read before and after the dump.
    found = read_back(local_cluster, prefix, tmp_path / "console", "fault 3")
    ends_before_dump = log_ends(bootstrap, written_topics(prefix))
    batches = dump_batches(
        local_cluster.classpath(), local_cluster.state_dir / "node-1" / "data",
        written_topics(prefix), tmp_path / "dump",
    )  # fmt: skip
    ends_after_dump = log_ends(bootstrap, written_topics(prefix))
    dumped_ends: dict[tuple[str, int], int] = {}
    for b in batches:
        tp = (b.topic, b.partition)
        dumped_ends[tp] = max(dumped_ends.get(tp, 0), b.last_offset + 1)
    # Node 1's dump of each partition ends where the partition does (a lagging node 1
    # would hide a tail): between its end before the dump and after (equal when nothing
    # was written meanwhile, as expected with the workers stopped).
    dump_short = {
        tp: (end, dumped_ends.get(tp, 0), ends_after_dump.get(tp))
        for tp, end in ends_before_dump.items()
        if not end <= dumped_ends.get(tp, 0) <= ends_after_dump.get(tp, -1)
    }
    olds = {s: line.producers[s] for s in line.shards}
    news = {s: new for s, (_, new) in line.epochs.items()}

    def past_cut(b: LogBatch) -> bool:
        return b.base_offset >= line.ends_at_cut[(b.topic, b.partition)]

    def past_return(b: LogBatch) -> bool:
        return b.base_offset >= line.ends_at_return[(b.topic, b.partition)]

    def old(b: LogBatch) -> bool:  # a batch of a cut shard's producer before its new owner
        for s, pid in olds.items():
            new = news[s]
            if b.producer_id == pid and (new is None or b.producer_epoch < new):
                return True
        return False

    # Record batches (the markers are the transaction coordinator's, not the producer's).
    data = [b for b in batches if b.state != "marker"]
    old_past_cut = Counter(b.state for b in data if old(b) and past_cut(b))
    old_past_return = Counter(b.state for b in data if old(b) and past_return(b))
    old_after_return = [b for b in data if old(b) and b.create_time_ms >= line.back_wall * 1000]
    own = {(t, s) for t in own_topics(prefix) for s in line.shards}
    on_shard_past_cut = [
        b for b in data if (b.topic, b.partition) in own and past_cut(b)
        and b.state in ("committed", "plain")
    ]  # fmt: skip
    epochs_after = Counter((b.producer_id, b.producer_epoch) for b in on_shard_past_cut)
    writers: dict[tuple[int, int], list[str]] = {}
    for name, worker_log, since in (
        (OTHER, other_log, line.cut_wall),
        (CUT, cut_log, line.back_wall),
    ):
        for pid in set(olds.values()):
            for stamp, e in given(worker_log, pid):
                if stamp >= since:
                    writers.setdefault((pid, e), []).append(
                        f"{name} at +{stamp - line.cut_wall:.1f} s"
                    )
    # An epoch given to the cut worker after its return counts only if it then opened
    # that shard with it (the init's shard's next restored / reopened-in-place line).
    cut_opened = opened_with(cut_log, olds, line.back_wall)
    cut_reopened = {(pid, e) for pid, e, _ in cut_opened}

    log.warning(
        "fault 3: %s (shards %s) cut off %.0f s into the load for %.1f s; the group gave "
        "its shards to %s %s s later, which opened them %s s after the cut (goal %.0f s: "
        "%s); recovery %.1f s (the outcomes paused %.1f s); outcomes/s before %.1f, during "
        "the cut %.1f, after %.1f; producer (id: epoch at the cut -> after the move) %s; "
        "committed batches on the cut shards' partitions past the cut by (producer id, "
        "epoch): %s, epochs given to %s, the cut worker's opened with after its return %s; "
        "batches of the cut worker's old producer past the cut: %s, past the ends at its "
        "return: %s, created after its return: %d; node 1's dump short of a partition's "
        "end: %s; the cut worker held the shards when let back: %s; its lines on losing "
        "them: %s; after its return: %s; %s",
        CUT, line.shards, line.fault - line.started, line.back - line.fault, OTHER,
        f"{line.moved - line.fault:.1f}" if line.moved else "not",
        f"{took_over - line.cut_wall:.1f}" if took_over else "not",
        GOAL_S, "met" if took_over and took_over - line.cut_wall <= GOAL_S else "NOT met",
        recovery, pause, before, during, after,
        {f"{olds[s]}": line.epochs.get(s) for s in line.shards}, dict(epochs_after),
        writers,
        [f"{pid}:{e} at +{t - line.back_wall:.1f} s after the return" for pid, e, t in cut_opened],
        dict(old_past_cut), dict(old_past_return), len(old_after_return), dump_short,
        held_at_return,
        {s: [f"+{t - line.cut_wall:.1f} s {why}" for t, why, _ in ls] for s, ls in lost.items()},
        {s: [f"+{t - line.back_wall:.1f} s {why}: {x[24:200]}" for t, why, x in ls[:4]]
         for s, ls in after_return.items()},
        machine(),
    )  # fmt: skip

    assert recovery <= RECOVERY_BOUND_S, f"the outcomes came back {recovery:.0f} s after"
    assert line.moved is not None and took_over is not None, "the shards never moved"
    assert after > 0, (before, during, after)
    # The new owner fenced the cut worker's producer: its transactional id has a new epoch.
    assert all(new is not None for _, new in line.epochs.values()), line.epochs
    # The dump read the whole log: each partition to its end, and as many committed
    # records as the console consumer read.
    assert dump_short == {}, dump_short
    for topic in (topics.events, topics.outcomes):
        for s in range(SHARDS):
            here = [b for b in data if (b.topic, b.partition) == (topic, s)]
            dumped = sum(b.count for b in here if b.state in ("committed", "plain"))
            assert dumped == len(found.count.written.get((topic, s), [])), (topic, s)
    # (1) Nothing the cut worker's producer sent after the cut was committed, anywhere.
    assert old_past_cut.get("committed", 0) == 0, old_past_cut
    # (2) Nothing it sent after its return even reached the log: nothing of it appended
    # past the ends at the return (whatever became of it: committed, aborted, left open),
    # and nothing of it created after the return.
    assert old_past_return == {}, old_past_return
    assert old_after_return == [], old_after_return[:5]
    # (3) What was committed on its shards' partitions after the cut was written by the
    # shard's producer, opened anew: by the new owner, or by the cut worker once the group
    # gave the shard back to it after its return.
    assert on_shard_past_cut, "nothing committed on the cut shards after the cut"
    stale = {
        (pid, e) for pid, e in epochs_after
        if not any(pid == p and (news[s] or 0) <= e for s, p in olds.items())
    }  # fmt: skip
    assert stale == set(), epochs_after
    unknown = {
        k for k in epochs_after
        if not any(w.startswith(OTHER) for w in writers.get(k, [])) and k not in cut_reopened
    }  # fmt: skip
    assert unknown == set(), (unknown, writers, cut_reopened)
    # The cut worker's own word, before it was told to stop: it lost each shard.
    assert all(lost.values()), "\n".join(x for _, x in said[-40:])
    # Held when let back: its log says it lost the shard before any batch of it is logged.
    for s, held in held_at_return.items():
        if held:
            first = next((why for _, why, _ in after_return[s]), None)
            assert first in ("fenced", "given up", "evicted", "moved"), after_return[s][:5]
    assert_nothing_lost_doubled_or_double_booked(found, line)
