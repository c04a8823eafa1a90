"""A Kafka batch sends its messages and acks to other shards to their receivers'
partitions of shard-messages, in its transaction (their personal fields sealed, when its
application seals), and rewinds that partition with the others when it aborts."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import TopicPartition

from dispatch.adapters.kafka import wire
from dispatch.adapters.kafka.batch import KafkaBatch
from dispatch.adapters.kafka.topics import Topics
from dispatch.bootstrap import build_embedded_engine
from dispatch.domain.ids import new_id
from dispatch.messages import Poison
from dispatch.privacy import is_sealed
from dispatch.settings import Settings
from dispatch.shard.crossshard.messages import Envelope, OpenRide
from dispatch.shard.inbound import Inbound
from dispatch.shard.worker import ShardWorker
from schemas import commands as c
from schemas.common import LatLng

T0 = 1_767_600_000.0
OPEN = Envelope(
    0, 1, 1, OpenRide(str(new_id(1)), str(new_id(0)), 37.3382, -121.8863, 37.344, -121.88, T0)
)


class _Producer:
    """What a batch sends in its transaction, kept with keys and partitions."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes, int]] = []

    def send(
        self, topic: str, key: bytes, value: bytes, partition: int, headers: Any = None
    ) -> None:
        self.sent.append((topic, key, value, partition))

    def on(self, topic: str) -> list[tuple[bytes, Any, int]]:
        return [(k, orjson.loads(v), p) for t, k, v, p in self.sent if t == topic]


class _Host:
    """The part of a ``ShardHost`` a ``KafkaBatch`` uses, around an embedded shard worker."""

    def __init__(self, worker: ShardWorker) -> None:
        self.shard, self.worker, self.writer = worker.shard, worker, self
        self.app = worker.app
        self.keys: Any = None  # the Kafka key store a batch joins
        self.producer, self.checkpoints = _Producer(), None
        self.tells_others = self.announce = False  # no driver-availability records here

    def advance(self, inbound: Inbound) -> None:
        pass

    @contextmanager
    def transaction(self) -> Iterator[_Producer]:
        yield self.producer


def _envelope(n: int, command: Any) -> c.CommandEnvelope:
    issued = datetime.fromtimestamp(T0, UTC)
    return c.CommandEnvelope(command_id=f"cmd-{n}", issued_at=issued, command=command)


def test_a_batch_sends_its_messages_and_acks_to_their_receivers_partitions(
    tmp_path: Path,
) -> None:
    engine = build_embedded_engine(Settings(data_dir=tmp_path, shards=2), lambda: T0)
    topics = Topics("dispatch")
    home, ride_shard = _Host(engine.workers[0]), _Host(engine.workers[1])
    rider, ride = new_id(0), new_id(1)
    pickup, dropoff = LatLng(lat=37.3382, lng=-121.8863), LatLng(lat=37.344, lng=-121.88)
    commands = [
        _envelope(1, c.RegisterRider(rider_id=rider, name="Ray")),
        _envelope(2, c.RequestRide(ride_id=ride, rider_id=rider, pickup=pickup, dropoff=dropoff)),
    ]
    batch = KafkaBatch(home, topics, consumer=None)  # type: ignore[arg-type]
    assert batch.run(Inbound(commands=commands), {}).state == "committed"

    sent = home.producer.on(topics.shard_messages)
    # (the first batch after a restore also sends every unacknowledged message again, the
    # new one included: a repeat the receiver drops)
    assert sent and all(s == sent[0] for s in sent)
    key, record, partition = sent[0]
    assert (key, partition) == (b"0", 1)
    assert record["message"]["kind"] == "OpenRide" and record["message"]["to"] == 1
    # the rider's coordinates sealed under the rider's key (the embedded workers seal)
    body = record["message"]["body"]
    coordinates = ("pickup_lat", "pickup_lng", "dropoff_lat", "dropoff_lng")
    assert all(is_sealed(body[name]) for name in coordinates), body
    assert b"37.3382" not in sent_value(home.producer, topics.shard_messages)
    unopened = wire.decode_shard_message(orjson.dumps(record), "m", partition)
    assert isinstance(unopened, Poison)  # a reader without the keys cannot take it
    receiver = engine.workers[1].app.sealer
    assert receiver is not None
    message = wire.decode_shard_message(orjson.dumps(record), "m", partition, receiver.open_record)
    assert isinstance(message, Envelope)
    assert isinstance(message.body, OpenRide) and message.body.pickup_lat == 37.3382

    batch = KafkaBatch(ride_shard, topics, consumer=None)  # type: ignore[arg-type]
    assert batch.run(Inbound(messages=[message]), {}).state == "committed"
    ((key, record, partition),) = ride_shard.producer.on(topics.shard_messages)
    assert (key, record, partition) == (b"1", {"ack": {"from": 1, "to": 0, "upto": 1}}, 0)
    assert engine.workers[1].app.repository.get(ride).rider_id == rider


def sent_value(producer: _Producer, topic: str) -> bytes:
    return b"".join(v for t, _k, v, _p in producer.sent if t == topic)


class _Consumer:
    def __init__(self, committed: dict[str, int]) -> None:
        self._committed = committed
        self.seeks: list[tuple[TopicPartition, int]] = []

    def committed(self, tp: TopicPartition) -> Any:
        return self._committed.get(tp.topic)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.seeks.append((tp, offset))

    def seek_to_beginning(self, tp: TopicPartition) -> None:
        self.seeks.append((tp, 0))


def test_an_aborted_batch_rewinds_the_shard_messages_partition_with_the_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = build_embedded_engine(Settings(data_dir=tmp_path, shards=2), lambda: T0)
    topics = Topics("dispatch")
    host = _Host(engine.workers[1])

    def fails(inbound: Inbound) -> Any:
        raise RuntimeError("the broker went away")

    monkeypatch.setattr(host.worker, "process", fails)
    consumer = _Consumer({topics.commands: 5, topics.shard_messages: 9})
    ended = KafkaBatch(host, topics, consumer).run(Inbound(messages=[OPEN]), {})  # type: ignore[arg-type]
    assert ended.state == "aborted"
    assert sorted(consumer.seeks) == sorted(
        [
            (TopicPartition(topics.commands, 1), 5),
            (TopicPartition(topics.locations, 1), 0),
            (TopicPartition(topics.shard_messages, 1), 9),
        ]
    )


class _Keys:
    """The key store's side of a joined batch: what the batch told it."""

    def __init__(self, made: list[Any]) -> None:
        self.made: list[Any] = made
        self.calls: list[str] = []

    def begin(self, producer: Any) -> None:
        self.calls.append("begin")

    def committed(self) -> None:
        self.calls.append("committed")

    def aborted(self) -> list[Any]:
        self.calls.append("aborted")
        return self.made


@pytest.mark.parametrize("failure", ["aborted", "fenced"])
def test_a_batch_that_does_not_commit_forgets_the_keys_it_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: str
) -> None:
    """Review finding 6: the keys an aborted or fenced batch made (or the erasure it sent)
    are forgotten by the store and by the sealer's cache, so its retry makes new ones."""
    from dispatch.adapters.kafka.eventstore import ProducerLostError

    engine = build_embedded_engine(Settings(data_dir=tmp_path, shards=2), lambda: T0)
    topics = Topics("dispatch")
    host = _Host(engine.workers[1])
    subject = new_id(1)
    sealer = host.app.sealer
    assert sealer is not None
    cached = sealer.key(subject)  # as if the batch made it
    host.keys = _Keys([subject])

    def fails(inbound: Inbound) -> Any:
        if failure == "fenced":
            raise ProducerLostError("fenced by a newer owner")
        raise RuntimeError("the broker went away")

    monkeypatch.setattr(host.worker, "process", fails)
    consumer = _Consumer({})
    ended = KafkaBatch(host, topics, consumer).run(Inbound(messages=[OPEN]), {})  # type: ignore[arg-type]
    assert ended.state == failure
    assert host.keys.calls == ["begin", "aborted"]
    forgotten = sealer._keys.get(subject)  # the cache dropped it: the next key is the store's
    assert forgotten is None and cached is not None


def test_a_batch_that_commits_tells_the_key_store(tmp_path: Path) -> None:
    engine = build_embedded_engine(Settings(data_dir=tmp_path, shards=2), lambda: T0)
    host = _Host(engine.workers[0])
    host.keys = _Keys([])
    ended = KafkaBatch(host, Topics("dispatch"), consumer=None).run(Inbound(), {})  # type: ignore[arg-type]
    assert ended.state == "committed" and host.keys.calls == ["begin", "committed"]
