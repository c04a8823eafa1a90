"""On the real broker: a takeover from a checkpoint at any point of the log, plus the tail
after it, holds what a full replay of the events partition holds (issue #12).

A simulated city runs on Kafka once for the module (a worker process on a stream clock,
checkpoints off), which leaves a real events partition: one record a batch, ride
lifecycles, offers that expire or are declined, cancellations. Each example then picks a
position P anywhere in that log (the last event of a batch, where the shard worker takes
its checkpoints, or any event), a chunk size, how far the log moves on while the chunks
are written (the aggregates' snapshots are fuzzy: each taken when its chunk is made, at
its version then), an idempotency window (which decides which aggregates are live at P)
and whether a later checkpoint was left half written. It writes that checkpoint with the
shard's own ``CheckpointWriter`` into a checkpoints topic of its own, one chunk a Kafka
transaction as a batch would, and opens the shard with ``open_shard`` (the takeover path:
checkpoint chosen and read, local store holding only the events after P, snapshots loaded,
tail folded). What it holds must equal a full replay: the matcher's folded state, the last
event time, the live aggregates, and every aggregate it can be asked for. Driver positions
(the index, the pings warmed up) are not compared: pings are not events.

The SQLite/unit form of this property is in tests/e2e/test_checkpoint_restore.py.
"""

from __future__ import annotations

import bisect
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from hypothesis import HealthCheck, Phase, given, note, settings
from hypothesis import strategies as st
from test_kafka_checkpoints import state_of

from dispatch.adapters.kafka.checkpoints import CheckpointRecords
from dispatch.adapters.kafka.config import new_admin, new_producer
from dispatch.adapters.kafka.shard_host import open_shard
from dispatch.adapters.kafka.topics import SPECS_BY_ROLE, Topics, delete_topics
from dispatch.bootstrap import build_application, build_matcher, build_personal
from dispatch.checkpoints import CheckpointWriter, LiveRow, Snapshot, encode_chunks
from dispatch.matching.matcher import Matcher
from dispatch.matching.state import capture
from dispatch.settings import Settings
from dispatch.shard.application import ShardApplication
from dispatch.shard.live import LiveAggregates
from dispatch.shard.personal import Sealer
from dispatch.shard.worker import ShardWorker, snapshot_of
from dispatch.simulator.kafka import run_on_kafka
from dispatch.simulator.runner import SimConfig

pytestmark = pytest.mark.kafka

READ_ONLY = {"KAFKA_READ_ONLY": "y"}  # no producer: opening a shard fences no one
_SEALERS: dict[str, Sealer] = {}  # by topic prefix: the workers sealed the log's names


def sealer_of(s: Settings) -> Sealer:
    """What opens the log's sealed fields (one per log: it reads the keys topic once)."""
    if s.topic_prefix not in _SEALERS:
        _SEALERS[s.topic_prefix] = Sealer(build_personal(s))
    return _SEALERS[s.topic_prefix]


@dataclass(frozen=True, slots=True)
class ExampleTopics(Topics):
    """The deployment's topics, but the checkpoints in a topic of the example's own (a
    checkpoint restore takes the newest, so examples must not see one another's)."""

    checkpoints_topic: str = ""

    @property
    def checkpoints(self) -> str:
        return self.checkpoints_topic


@dataclass(repr=False)
class KafkaLog:
    """The module's simulated log on Kafka, and full replays of it by idempotency window."""

    settings: Settings
    bootstrap: str
    ids: list[int]  # every notification id, in log order
    batch_ends: list[int]  # the last id of each events record (a batch)
    versions: dict[UUID, tuple[list[int], list[int]]]  # aggregate -> (ids, versions)
    replays: dict[float, ShardWorker] = field(default_factory=dict)
    topics_made: list[str] = field(default_factory=list)

    def __repr__(self) -> str:
        return f"KafkaLog({self.settings.topic_prefix}, {len(self.ids)} events)"

    def windowed(self, retention_s: float) -> Settings:
        return self.settings.model_copy(update={"idempotency_window_s": retention_s})

    def replay(self, retention_s: float) -> ShardWorker:
        """A worker that folded the whole partition (no checkpoint store), kept per window."""
        if retention_s not in self.replays:
            s = self.windowed(retention_s)
            app = build_application(s, 0, READ_ONLY, sealer_of(s))
            worker = ShardWorker(0, app, lambda: build_matcher(s), time.time,
                                 live=LiveAggregates(retention_s))  # fmt: skip
            worker.restore()
            assert worker.restored_from is None
            self.replays[retention_s] = worker
        return self.replays[retention_s]

    def version_at(self, aggregate_id: UUID, position: int) -> int:
        """The aggregate's version once the log reached ``position``."""
        ids, versions = self.versions[aggregate_id]
        at = bisect.bisect_right(ids, position)
        assert at > 0, f"{aggregate_id} does not exist at {position}"
        return versions[at - 1]


@pytest.fixture(scope="module")
def kafka_log(kafka_bootstrap: str) -> Iterator[KafkaLog]:
    prefix = f"test-cpprop-{uuid.uuid4().hex[:8]}"
    s = Settings(kafka_bootstrap=kafka_bootstrap, topic_prefix=prefix, shards=1,
                 checkpoint_every_events=0)  # fmt: skip
    config = SimConfig(drivers=60, minutes=5, seed=5, demand_per_min=20, warmup_minutes=0,
                       drain_minutes=0)  # fmt: skip
    made: list[str] = []
    try:
        with pytest.MonkeyPatch.context() as mp, tempfile.TemporaryDirectory() as logs:
            mp.setenv("DISPATCH_CHECKPOINT_EVERY_EVENTS", "0")  # the worker process's
            report = run_on_kafka(config, s, 1, Path(logs)).finished
        assert report.events > 800 and report.served > 10, report
        log = KafkaLog(s, kafka_bootstrap, [], [], {}, topics_made=made)
        notifications = log.replay(86_400.0).app.recorder.select_notifications(1, 10_000_000)
        log.ids = [n.id for n in notifications]
        present = set(log.ids)
        log.batch_ends = [i for i in log.ids if i + 1 not in present]
        for n in notifications:
            aggregate = n.originator_id
            aggregate_id = aggregate if isinstance(aggregate, UUID) else UUID(str(aggregate))
            ids, versions = log.versions.setdefault(aggregate_id, ([], []))
            ids.append(n.id)
            versions.append(n.originator_version)
        assert len(log.batch_ends) > 30  # many batches
        yield log
        for worker in log.replays.values():
            worker.app.close()
    finally:
        if prefix in _SEALERS:
            _SEALERS.pop(prefix).personal.keys.close()
        delete_topics(kafka_bootstrap, prefix)
        if made:
            admin = new_admin(kafka_bootstrap)
            try:
                admin.delete_topics(made, raise_errors=False)
            finally:
                admin.close()


class FuzzySnapshots:
    """The live aggregates as a shard worker hands them to its checkpoint writer: the list
    fixed at P, each snapshot taken when its chunk is encoded, at the aggregate's version
    once the log has reached ``at`` (moved on between chunks by the test)."""

    def __init__(self, at_p: ShardWorker, log: KafkaLog, full: ShardApplication) -> None:
        self.at_p, self.log, self.full = at_p, log, full
        self.at = 0

    def live_rows(self) -> list[LiveRow]:
        return self.at_p.live_rows()

    def snapshot(self, aggregate_id: UUID) -> Snapshot | None:
        return snapshot_of(self.full, aggregate_id, self.log.version_at(aggregate_id, self.at))


def new_topic(log: KafkaLog, name: str) -> None:
    spec = SPECS_BY_ROLE["checkpoints"]
    admin = new_admin(log.bootstrap)
    try:
        wanted = {name: {"num_partitions": 1, "replication_factor": -1,
                         "configs": dict(spec.configs)}}  # fmt: skip
        admin.create_topics(wanted, timeout_ms=30_000)
        admin.wait_for_topics([name], timeout_ms=30_000)
    finally:
        admin.close()
    log.topics_made.append(name)


def write_checkpoint(
    log: KafkaLog,
    topic: str,
    at_p: ShardWorker,
    full: ShardApplication,
    position: int,
    rows: int,
    pace: float,
    half_written_at: int | None,
) -> int:
    """The checkpoint at ``position`` as a shard writes it (one chunk a transaction, the
    log moving on between chunks by ``pace``), then maybe the first chunks of a later one
    cut short; returns the complete one's chunk count."""
    source = FuzzySnapshots(at_p, log, full)
    source.at = position  # the first chunk is encoded at capture, at P
    writer = CheckpointWriter(1, rows, aggregates=source)
    writer.committed(None, 1, position, at_p.matcher, at_p.last_event_time, time.time())
    records = CheckpointRecords(topic, 0)
    producer = new_producer(log.bootstrap, transactional_id=f"{topic}.writer")
    end, chunks = log.ids[-1], 0
    try:
        producer.init_transactions()

        def send(chunk: Any) -> None:
            producer.begin_transaction()
            records.send(producer, chunk)
            producer.commit_transaction()
            records.committed(chunk)

        while (chunk := writer.next_chunk()) is not None:
            send(chunk)
            chunks += 1
            # Batches go by before the next chunk is made: its snapshots are later ones.
            source.at = position + int((end - position) * min(1.0, pace * chunks / 4))
            writer.committed(chunk, 0, source.at, at_p.matcher, at_p.last_event_time, 0.0)
        assert writer.written == 1
        if half_written_at is not None:  # a later checkpoint, its last chunk never sent
            state = capture(log.replay(86_400.0).matcher)  # (any state: never to be used)
            later = encode_chunks(state, half_written_at, at_p.last_event_time, 0.0, rows=1)
            for _ in range(2):
                part = next(later)
                assert not part.last
                send(part)
    finally:
        producer.close(timeout=5)
    return chunks


def reading(s: Settings) -> Callable[..., ShardApplication]:
    """``open_shard``'s application factory, read-only (the test's takeovers write nothing)."""

    def factory(shard: int, env: Mapping[str, str] | None = None) -> ShardApplication:
        return build_application(s, shard, {**(env or {}), **READ_ONLY}, sealer_of(s))

    return factory


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    # No shrinking: an example costs a second or two on the broker, and shrinking a failure
    # took over five minutes. The failing example is reported by ``note`` instead.
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
)
@given(
    where=st.floats(0.0, 1.0),
    at_batch_end=st.booleans(),
    rows=st.integers(30, 3_000),
    pace=st.floats(0.0, 1.0),
    retention_s=st.sampled_from([30.0, 120.0, 86_400.0]),
    half_written=st.booleans(),
)
def test_a_takeover_from_a_checkpoint_at_any_point_plus_the_tail_equals_a_full_replay(
    kafka_log: KafkaLog,
    matcher_state: Callable[[Matcher], dict[str, Any]],
    where: float,
    at_batch_end: bool,
    rows: int,
    pace: float,
    retention_s: float,
    half_written: bool,
) -> None:
    log = kafka_log
    anywhere = log.batch_ends if at_batch_end else log.ids
    position = anywhere[int(where * (len(anywhere) - 1))]
    end = log.ids[-1]
    s = log.windowed(retention_s)
    full = log.replay(retention_s)
    note(f"checkpoint at {position} (event {log.ids.index(position) + 1} of {len(log.ids)}, "
         f"a batch's last: {position in log.batch_ends}), {rows} rows a chunk, pace {pace}, "
         f"window {retention_s} s, a later one half written: {half_written}")  # fmt: skip

    # The shard as it stood at P: the matcher and the live aggregates folded up to there.
    at_p = ShardWorker(0, full.app, lambda: build_matcher(s), time.time,
                       live=LiveAggregates(retention_s))  # fmt: skip
    at_p.fold(1, position)
    live_at_p = {aggregate_id for aggregate_id, _, _ in at_p.live_rows()}

    topic = f"{s.topic_prefix}.checkpoints-{uuid.uuid4().hex[:8]}"
    new_topic(log, topic)
    next_id = log.ids[bisect.bisect_right(log.ids, position)] if position < end else None
    chunks = write_checkpoint(
        log, topic, at_p, full.app, position, rows, pace, next_id if half_written else None
    )
    assert chunks >= 1

    host = open_shard(s, 0, ExampleTopics(s.topic_prefix, topic), reading(s),
                      lambda: build_matcher(s), "wall")  # fmt: skip
    try:
        restored = host.worker
        assert restored.restored_from == position and restored.floor == position
        # The store holds the tail alone, all of it.
        tail = restored.app.recorder.select_notifications(1, 10_000_000)
        assert [n.id for n in tail] == [i for i in log.ids if i > position]

        assert matcher_state(restored.matcher) == matcher_state(full.matcher)
        assert restored.last_event_time == full.last_event_time
        assert restored.live is not None and full.live is not None
        assert sorted(restored.live.rows()) == sorted(full.live.rows())
        assert restored.app.stored_ids is restored.live

        # Every aggregate the restored shard may be asked for (live at P, or in the tail,
        # which covers everything live now) rebuilds to what the full replay holds.
        touched = {UUID(str(n.originator_id)) for n in tail}
        live_now = {aggregate_id for aggregate_id, _, _ in full.live.rows()}
        assert live_now <= live_at_p | touched
        for aggregate_id in sorted(live_at_p | touched):
            assert state_of(restored.app, aggregate_id) == state_of(full.app, aggregate_id), (
                aggregate_id
            )
    finally:
        host.close()


def _checkpoint_at_middle(log: KafkaLog, s: Settings) -> tuple[int, str]:
    """A complete checkpoint at a batch's end in the middle of the log, in a topic of its
    own; returns its position and the topic."""
    full = log.replay(86_400.0)
    position = log.batch_ends[len(log.batch_ends) // 2]
    at_p = ShardWorker(0, full.app, lambda: build_matcher(s), time.time,
                       live=LiveAggregates(86_400.0))  # fmt: skip
    at_p.fold(1, position)
    topic = f"{s.topic_prefix}.checkpoints-{uuid.uuid4().hex[:8]}"
    new_topic(log, topic)
    write_checkpoint(log, topic, at_p, full.app, position, 30, 0.0, None)
    return position, topic


def test_a_checkpoint_read_cut_short_falls_back_to_a_full_replay_on_the_same_consumer(
    kafka_log: KafkaLog,
    matcher_state: Callable[[Matcher], dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The consumer lent to a takeover's reads is left mid-read (assigned to the
    checkpoints partition, records fetched and not taken) by a failing checkpoint read:
    the full replay that follows reads the events partition with it, whole and once."""
    from dispatch.adapters.kafka import checkpoints as kafka_checkpoints
    from dispatch.adapters.kafka.follower import Follower

    log = kafka_log
    s = log.windowed(86_400.0)
    full = log.replay(86_400.0)
    _, topic = _checkpoint_at_middle(log, s)

    class Failing(Follower):
        def read_to_end(self, poll_ms: int = 500) -> Iterator[Any]:
            for records in super().read_to_end(poll_ms):
                yield records[:1]
                raise ConnectionError("the broker went away mid-read")

    monkeypatch.setattr(kafka_checkpoints, "Follower", Failing)
    with caplog.at_level("WARNING"):
        host = open_shard(s, 0, ExampleTopics(s.topic_prefix, topic), reading(s),
                          lambda: build_matcher(s), "wall")  # fmt: skip
    try:
        assert "checkpoints unreadable" in caplog.text and "whole log" in caplog.text
        restored = host.worker
        assert restored.restored_from is None and restored.floor == 0
        whole = restored.app.recorder.select_notifications(1, 10_000_000)
        assert [n.id for n in whole] == log.ids
        assert matcher_state(restored.matcher) == matcher_state(full.matcher)
        assert restored.last_event_time == full.last_event_time
    finally:
        host.close()


def test_a_recover_after_a_takeover_reads_the_checkpoints_with_a_consumer_of_its_own(
    kafka_log: KafkaLog,
    matcher_state: Callable[[Matcher], dict[str, Any]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The consumer lent to the takeover's reads is closed once the shard is open; a later
    recover (after a batch that was not saved) reads the checkpoints topic afresh."""
    log = kafka_log
    s = log.windowed(86_400.0)
    full = log.replay(86_400.0)
    position, topic = _checkpoint_at_middle(log, s)
    host = open_shard(s, 0, ExampleTopics(s.topic_prefix, topic), reading(s),
                      lambda: build_matcher(s), "wall")  # fmt: skip
    try:
        restored = host.worker
        assert restored.restored_from == position
        store = restored.checkpoint_store
        assert store is not None and getattr(store, "consumer", None) is None
        with caplog.at_level("WARNING"):
            restored.recover()
        assert "unreadable" not in caplog.text and "opened from" not in caplog.text
        assert restored.restored_from == position and restored.floor == position
        assert matcher_state(restored.matcher) == matcher_state(full.matcher)
        assert restored.last_event_time == full.last_event_time
    finally:
        host.close()
