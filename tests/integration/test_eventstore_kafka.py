"""The Kafka event store against a real broker: fencing, atomicity, restart, transactions."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError, OperationalError, StoredEvent
from kafka import TopicPartition
from kafka.structs import OffsetAndMetadata

from dispatch.adapters.kafka.config import new_consumer, new_producer
from dispatch.adapters.kafka.eventstore import (
    FencedError,
    KafkaApplicationRecorder,
    KafkaFactory,
    ProducerLostError,
)
from dispatch.adapters.kafka.eventstore.codec import (
    EVENTS_PER_RECORD,
    encode_event,
    notification_id,
)
from dispatch.adapters.kafka.logsource import KafkaFollowSource, KafkaLogSource
from dispatch.adapters.kafka.topics import Topics

pytestmark = pytest.mark.kafka


class Tally(Aggregate):
    TOPIC = "test.eventstore.Tally"

    class Event(Aggregate.Event):
        pass

    class Created(Aggregate.Created):
        TOPIC = "test.eventstore.Tally.Started"
        name: str

    class Counted(Event):
        TOPIC = "test.eventstore.Tally.Counted"
        amount: int

        def apply(self, aggregate: Tally) -> None:
            aggregate.total += self.amount

    def __init__(self, name: str) -> None:
        self.name = name
        self.total = 0

    @classmethod
    def start(cls, name: str) -> Tally:
        return cls._create(cls.Created, name=name)

    def count(self, amount: int) -> None:
        self.trigger_event(self.Counted, amount=amount)


class Tallies(Application[UUID]):
    name = "tallies"


def event(originator_id: UUID, version: int, state: bytes = b'{"n":1}') -> StoredEvent:
    return StoredEvent(originator_id, version, "test.Event", state)


def read_committed(bootstrap: str, topic: str, partition: int = 0) -> list[Any]:
    """Every record a plain ``read_committed`` consumer sees in the partition."""
    consumer = new_consumer(bootstrap)
    try:
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        end = consumer.end_offsets([tp], timeout_ms=10_000)[tp]
        consumer.seek_to_beginning(tp)
        records: list[Any] = []
        for _ in range(40):  # at most about 20 s
            if consumer.position(tp) >= end:
                break
            records += consumer.poll(timeout_ms=500).get(tp, [])
        assert consumer.position(tp) >= end, f"{topic}[{partition}] not read to its end"
        return records
    finally:
        consumer.close()


def events_of(records: list[Any]) -> list[dict[str, Any]]:
    """The events JSON of events records, in log order (a record holds a batch of them)."""
    return [e for r in records for e in json.loads(r.value)["events"]]


@pytest.fixture
def factories(kafka_topics: Any) -> Iterator[Any]:
    """``make(**env)`` builds a factory on the test's topics; all are closed afterwards."""
    made: list[KafkaFactory] = []

    def make(shard: int = 0, **extra: str) -> KafkaFactory:
        made.append(KafkaFactory(kafka_topics.env(shard, **extra)))
        return made[-1]

    yield make
    for factory in reversed(made):
        factory.close()


def recorder_of(factory: KafkaFactory) -> KafkaApplicationRecorder:
    recorder = factory.application_recorder()
    assert isinstance(recorder, KafkaApplicationRecorder)
    return recorder


def test_a_new_owner_fences_the_old_one_whose_writes_fail_and_stay_invisible(
    kafka_topics: Any, factories: Any
) -> None:
    old = recorder_of(factories())
    agg = uuid4()
    old.insert_events([event(agg, 1)])

    new = recorder_of(factories())  # same shard, same transactional id: fences `old`

    with pytest.raises(FencedError):
        old.insert_events([event(agg, 2)])
    with pytest.raises(FencedError):  # and stays fenced
        old.insert_events([event(uuid4(), 1)])
    assert issubclass(FencedError, OperationalError)
    assert [e.originator_version for e in old.select_events(agg)] == [1]
    records = read_committed(kafka_topics.bootstrap, Topics(kafka_topics.prefix).events)
    assert [e["originator_version"] for e in events_of(records)] == [1]
    assert [e.originator_version for e in new.select_events(agg)] == [1]
    new.insert_events([event(agg, 2)])  # the new owner carries on


def test_a_fenced_owner_cannot_commit_its_open_transaction(
    kafka_topics: Any, factories: Any
) -> None:
    old = recorder_of(factories())
    agg = uuid4()
    old.insert_events([event(agg, 1)])
    producer = old.begin()
    old.insert_events([event(agg, 2)])  # produced and flushed, not committed
    producer.send(Topics(kafka_topics.prefix).outcomes, value=b"{}", partition=0)

    new = recorder_of(factories())  # init_transactions aborts the zombie's open transaction

    # kafka-python may tell this fencing only by refusing the commit, then the abort (its
    # epoch bump was refused): a producer that cannot abort is lost, as a fenced one is.
    with pytest.raises(ProducerLostError):
        old.commit()
    with pytest.raises(ProducerLostError):  # and it is never used again
        old.insert_events([event(uuid4(), 1)])
    assert [e.originator_version for e in old.select_events(agg)] == [1]
    assert [e.originator_version for e in new.select_events(agg)] == [1]
    topics = Topics(kafka_topics.prefix)
    assert len(read_committed(kafka_topics.bootstrap, topics.events)) == 1
    assert read_committed(kafka_topics.bootstrap, topics.outcomes) == []


def test_a_fenced_owner_fails_on_its_next_insert_inside_its_open_transaction(
    kafka_topics: Any, factories: Any
) -> None:
    old = recorder_of(factories())
    agg = uuid4()
    old.begin()
    old.insert_events([event(agg, 1)])

    recorder_of(factories())  # the new owner

    with pytest.raises(FencedError):
        old.insert_events([event(agg, 2)])
    old.abort()  # the worker's reaction; nothing left to undo on the broker
    assert old.select_events(agg) == []
    assert read_committed(kafka_topics.bootstrap, Topics(kafka_topics.prefix).events) == []


def test_an_integrity_error_inside_a_worker_transaction_keeps_the_rest_of_the_batch(
    kafka_topics: Any, factories: Any
) -> None:
    recorder = recorder_of(factories())
    taken, free = uuid4(), uuid4()
    recorder.insert_events([event(taken, 1)])
    with recorder.transaction():
        with pytest.raises(IntegrityError):  # a rejected command: nothing of it is produced
            recorder.insert_events([event(free, 1), event(taken, 1)])
        recorder.insert_events([event(free, 1)])  # the next command of the batch
    assert [e.originator_version for e in recorder.select_events(free)] == [1]
    records = read_committed(kafka_topics.bootstrap, Topics(kafka_topics.prefix).events)
    assert [e["originator_id"] for e in events_of(records)] == [str(taken), str(free)]


def test_a_batch_with_one_conflicting_event_writes_none_of_the_batch(
    kafka_topics: Any, factories: Any
) -> None:
    recorder = recorder_of(factories())
    existing, fresh = uuid4(), uuid4()
    recorder.insert_events([event(existing, 1)])
    tp = TopicPartition(Topics(kafka_topics.prefix).events, 0)
    consumer = new_consumer(kafka_topics.bootstrap)
    end_before = consumer.end_offsets([tp])[tp]

    with pytest.raises(IntegrityError):
        recorder.insert_events([event(fresh, 1), event(fresh, 2), event(existing, 1)])

    assert consumer.end_offsets([tp])[tp] == end_before  # nothing produced, not even a marker
    consumer.close()
    assert recorder.select_events(fresh) == []
    assert recorder.max_notification_id() == 1
    recorder.insert_events([event(fresh, 1)])  # the version index was not touched


@pytest.mark.parametrize("snapshotting", [False, True], ids=["events-only", "with-snapshots"])
def test_a_restarted_shard_restores_every_aggregate_exactly(
    kafka_topics: Any, factories: Any, snapshotting: bool
) -> None:
    env = {**kafka_topics.env(), "IS_SNAPSHOTTING_ENABLED": "y" if snapshotting else "n"}
    app = Tallies(env=env)
    tallies = [Tally.start(f"t{i}") for i in range(30)]
    for i, tally in enumerate(tallies):
        for amount in range(i % 5):
            tally.count(amount + 1)
    app.save(*tallies[:10])  # one transaction for ten aggregates
    for tally in tallies[10:]:
        app.save(tally)
    if snapshotting:
        for tally in tallies[::3]:
            app.take_snapshot(tally.id)
        for tally in tallies[::6]:  # events after the snapshot
            tally.count(100)
            app.save(tally)
    log_before = app.recorder.select_notifications(None, 1000)
    app.close()

    restarted = Tallies(env=env)
    try:
        assert restarted.recorder.select_notifications(None, 1000) == log_before
        for tally in tallies:
            restored = restarted.repository.get(tally.id)
            assert vars(restored) == vars(tally)
        if snapshotting:
            assert restarted.snapshots is not None
            for tally in tallies[::3]:
                (snapshot,) = restarted.snapshots.recorder.select_events(
                    tally.id, desc=True, limit=1
                )
                assert snapshot.originator_version <= tally.version
    finally:
        restarted.close()


def test_an_aborted_worker_transaction_leaves_nothing_visible_and_the_store_unchanged(
    kafka_topics: Any, factories: Any
) -> None:
    recorder = recorder_of(factories())
    topics = Topics(kafka_topics.prefix)
    old, new = uuid4(), uuid4()
    recorder.insert_events([event(old, 1)])
    notifications_before = recorder.select_notifications(None, 100)

    producer = recorder.begin()
    ids = recorder.insert_events([event(old, 2), event(new, 1)])
    producer.send(topics.outcomes, value=b'{"accepted":true}', partition=0)
    assert len(recorder.select_events(old)) == 2  # the transaction's thread reads its writes
    seen_elsewhere: list[int] = []
    reader = threading.Thread(
        target=lambda: seen_elsewhere.append(len(recorder.select_events(old)))
    )
    reader.start()
    reader.join(timeout=10)
    assert seen_elsewhere == [1]  # other threads see committed events only
    assert recorder.max_notification_id() == notifications_before[-1].id
    recorder.abort()

    assert ids is not None and len(ids) == 2
    assert recorder.select_notifications(None, 100) == notifications_before
    assert [e.originator_version for e in recorder.select_events(old)] == [1]
    assert recorder.select_events(new) == []
    assert len(read_committed(kafka_topics.bootstrap, topics.events)) == 1
    assert read_committed(kafka_topics.bootstrap, topics.outcomes) == []
    with pytest.raises(RuntimeError), recorder.transaction():
        recorder.insert_events([event(old, 2)])
        raise RuntimeError("the batch failed")
    assert recorder.select_notifications(None, 100) == notifications_before
    recorder.insert_events([event(old, 2), event(new, 1)])  # versions are free again


def test_a_worker_transaction_commits_events_outcomes_and_consumed_offsets_together(
    kafka_topics: Any, factories: Any
) -> None:
    topics, bootstrap = Topics(kafka_topics.prefix), kafka_topics.bootstrap
    plain = new_producer(bootstrap)
    plain.send(topics.commands, value=b'{"command_id":"c1"}', partition=0).get(timeout=10)
    plain.close()
    commands = TopicPartition(topics.commands, 0)
    consumer = new_consumer(bootstrap, group_id=f"{kafka_topics.prefix}.workers")
    consumer.assign([commands])
    polled: list[Any] = []
    for _ in range(20):
        polled += consumer.poll(timeout_ms=500).get(commands, [])
        if polled:
            break
    recorder = recorder_of(factories())

    with recorder.transaction() as producer:
        ids = recorder.insert_events([event(uuid4(), 1)])
        assert ids is not None
        outcome = {"command_id": "c1", "accepted": True, "position": ids[-1]}
        producer.send(topics.outcomes, value=json.dumps(outcome).encode(), partition=0)
        offsets = {commands: OffsetAndMetadata(polled[-1].offset + 1, "", -1)}
        producer.send_offsets_to_transaction(offsets, consumer.group_metadata())

    assert consumer.committed(commands, timeout_ms=10_000) == 1
    consumer.close()
    (seen,) = read_committed(bootstrap, topics.outcomes)
    assert json.loads(seen.value) == outcome
    assert recorder.max_notification_id() == ids[-1]


def test_a_plain_read_committed_consumer_sees_json_events_with_stable_topic_names(
    kafka_topics: Any,
) -> None:
    app = Tallies(env=kafka_topics.env())
    try:
        tally = Tally.start("plain")
        tally.count(5)
        app.save(tally)
    finally:
        app.close()
    records = read_committed(kafka_topics.bootstrap, Topics(kafka_topics.prefix).events)
    # One save, one record holding its events; keyed by the first event's aggregate.
    assert [r.key for r in records] == [str(tally.id).encode()]
    values = events_of(records)
    assert [v["topic"] for v in values] == [
        "test.eventstore.Tally.Started",
        "test.eventstore.Tally.Counted",
    ]
    assert [v["originator_version"] for v in values] == [1, 2]
    assert values[0]["originator_id"] == str(tally.id)
    assert values[0]["state"]["name"] == "plain"  # nested JSON, not an opaque string
    assert values[1]["state"]["amount"] == 5


def test_shards_are_independent_partitions_with_their_own_writers(
    kafka_topics: Any, factories: Any
) -> None:
    zero, one = recorder_of(factories(0)), recorder_of(factories(1))
    agg = uuid4()
    zero.insert_events([event(agg, 1)])
    one.insert_events([event(uuid4(), 1)])  # shard 1 does not fence shard 0
    zero.insert_events([event(agg, 2)])
    assert one.select_events(agg) == []
    events = Topics(kafka_topics.prefix).events
    assert len(read_committed(kafka_topics.bootstrap, events, 0)) == 2
    assert len(read_committed(kafka_topics.bootstrap, events, 1)) == 1


def test_a_read_only_recorder_reads_the_shard_without_fencing_its_writer(factories: Any) -> None:
    writer = recorder_of(factories())
    agg = uuid4()
    writer.insert_events([event(agg, 1)])
    reader = recorder_of(factories(KAFKA_READ_ONLY="y"))
    assert [e.originator_version for e in reader.select_events(agg)] == [1]
    writer.insert_events([event(agg, 2)])  # not fenced
    with pytest.raises(Exception, match="read-only"):
        reader.insert_events([event(agg, 3)])


def test_a_subscription_yields_events_once_their_transaction_commits(factories: Any) -> None:
    recorder = recorder_of(factories())
    agg = uuid4()
    received: list[int] = []
    arrived = threading.Condition()

    def collect() -> None:
        for notification in subscription:
            with arrived:
                received.append(notification.id)
                arrived.notify_all()

    def wait_for(count: int, timeout: float = 10) -> list[int]:
        with arrived:
            arrived.wait_for(lambda: len(received) >= count, timeout=timeout)
            return list(received)

    with recorder.subscribe(gt=None) as subscription:
        collector = threading.Thread(target=collect, daemon=True)
        collector.start()
        with recorder.transaction():
            ids = list(recorder.insert_events([event(agg, 1)]) or [])
            assert wait_for(1, timeout=0.5) == []  # not before the commit
        assert wait_for(1) == ids
        ids += recorder.insert_events([event(agg, 2)]) or []
        assert wait_for(2) == ids
    collector.join(timeout=10)
    assert not collector.is_alive()


def log_state(i: int) -> bytes:
    return json.dumps(
        {"timestamp": {"_type_": "datetime_iso", "_data_": "2024-01-01T00:00:00+00:00"}, "i": i}
    ).encode()


def test_records_of_one_event_from_before_batching_are_still_read_everywhere(
    kafka_topics: Any, factories: Any
) -> None:
    topics, bootstrap = Topics(kafka_topics.prefix), kafka_topics.bootstrap
    agg = uuid4()
    # The old format, as the module wrote it: one event a record, no headers, in transactions.
    old = new_producer(bootstrap, transactional_id=f"{kafka_topics.prefix}.shard-0")
    old.init_transactions()
    for version in (1, 2):
        old.begin_transaction()
        key, value = encode_event(StoredEvent(agg, version, "dispatch.T", log_state(version)))
        old.send(topics.events, key=key, value=value, partition=0)
        old.commit_transaction()
    old.close()
    recorder = recorder_of(factories())
    old_ids = [notification_id(0, 0), notification_id(2, 0)]  # 1 and 8193 (a marker at 1)
    assert [n.id for n in recorder.select_notifications(None, 10)] == old_ids
    ids = recorder.insert_events(
        [StoredEvent(agg, v, "dispatch.T", log_state(v)) for v in (3, 4, 5)]
    )
    assert ids == [notification_id(4, i) for i in range(3)]  # one record at offset 4
    assert [e.originator_version for e in recorder.select_events(agg)] == [1, 2, 3, 4, 5]

    source = KafkaLogSource(bootstrap, kafka_topics.prefix)
    everything = [(e.position, e.version) for e in source.read(0, 0)]
    assert everything == list(zip([*old_ids, *ids], (1, 2, 3, 4, 5), strict=True))
    assert [e.version for e in source.read(0, old_ids[0])] == [2, 3, 4, 5]
    assert [e.version for e in source.read(0, old_ids[0] + 1)] == [2, 3, 4, 5]  # id in a gap
    assert [e.version for e in source.read(0, old_ids[1])] == [3, 4, 5]
    assert [e.version for e in source.read(0, ids[0])] == [4, 5]  # after an id inside a record
    assert [e.version for e in source.read(0, ids[1])] == [5]
    assert list(source.read(0, ids[2])) == []
    assert [e.originator_version for e in source.stored_events(0, agg)] == [1, 2, 3, 4, 5]

    follow = KafkaFollowSource(bootstrap, kafka_topics.prefix)
    try:
        reader = follow.read(0, 0)
        assert [next(reader).version for _ in range(3)] == [1, 2, 3]
        reader.close()  # abandoned inside the record holding versions 3..5
        assert [e.version for e in follow.read(0, ids[0])] == [4, 5]
        recorder.insert_events([StoredEvent(agg, 6, "dispatch.T", log_state(6))])
        # Only what is new. A follower reads up to the partition's last stable offset,
        # which moves once the commit marker is written, a moment after the commit
        # returns: it sees the event within a few polls, not necessarily the first.
        deadline, new = time.monotonic() + 10, []
        while not new and time.monotonic() < deadline:
            new = [e.version for e in follow.read(0, ids[2])]
        assert new == [6]
    finally:
        follow.close()

    restarted = recorder_of(factories())  # fences the first, restores from the partition
    assert restarted.select_notifications(None, 10) == recorder.select_notifications(None, 10)


def test_a_batch_larger_than_a_record_is_split_and_stays_one_transaction(
    kafka_topics: Any, factories: Any
) -> None:
    recorder = recorder_of(factories())
    agg = uuid4()
    count = EVENTS_PER_RECORD + 10
    ids = recorder.insert_events([event(agg, v) for v in range(1, count + 1)])
    assert ids is not None and len(ids) == count
    records = read_committed(kafka_topics.bootstrap, Topics(kafka_topics.prefix).events)
    sizes = [len(json.loads(r.value)["events"]) for r in records]
    assert len(records) > 1 and sum(sizes) == count and max(sizes) <= EVENTS_PER_RECORD
    expected = [
        notification_id(r.offset, i) for r, n in zip(records, sizes, strict=True) for i in range(n)
    ]
    assert ids == expected  # contiguous within each record, a gap between records

    with pytest.raises(IntegrityError):  # checked whole before anything is produced
        recorder.insert_events(
            [event(agg, v) for v in range(count + 1, 2 * count)] + [event(agg, 1)]
        )
    after = read_committed(kafka_topics.bootstrap, Topics(kafka_topics.prefix).events)
    assert len(after) == len(records)

    restarted = recorder_of(factories())
    assert [n.id for n in restarted.select_notifications(None, 2 * count)] == ids
    assert restarted.max_notification_id() == ids[-1]
    split = sizes[0]  # a page across the boundary between two records
    page = restarted.select_notifications(ids[split - 2], 4)
    assert [n.id for n in page] == ids[split - 2 : split + 2]
