"""A shard's restore reads the checkpoint, the log's tail and the pings with one consumer,
lent to each reader in turn: a reader given a consumer uses it and leaves it open (the
lender closes it), and a reader given none makes and closes its own."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from kafka import TopicPartition

from dispatch.adapters.kafka.eventstore import restore
from dispatch.adapters.kafka.eventstore.restore import lend_consumer, read_partition
from dispatch.adapters.kafka.follower import Follower

TOPIC = "dispatch.events"


class Consumer:
    """Enough of a KafkaConsumer for one partition holding ``records`` values."""

    def __init__(self, records: int = 3) -> None:
        self.values = [b"v%d" % i for i in range(records)]
        self.assigned: list[TopicPartition] = []
        self.at = 0
        self.closed = False

    def partitions_for_topic(self, topic: str) -> set[int]:
        return {0}

    def assign(self, tps: list[TopicPartition]) -> None:
        self.assigned, self.at = list(tps), 0

    def end_offsets(self, tps: list[TopicPartition], timeout_ms: int | None = None) -> Any:
        return dict.fromkeys(tps, len(self.values))

    def seek_to_beginning(self, tp: TopicPartition) -> None:
        self.at = 0

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.at = offset

    def position(self, tp: TopicPartition) -> int:
        return self.at

    def poll(self, timeout_ms: int = 0, max_records: int | None = None) -> Any:
        tp = self.assigned[0]
        batch = [
            SimpleNamespace(offset=i, key=None, value=v, headers=[])
            for i, v in enumerate(self.values)
            if i >= self.at
        ]
        self.at = len(self.values)
        return {tp: batch} if batch else {}

    def close(self) -> None:
        self.closed = True


def test_a_follower_reads_with_a_lent_consumer_and_leaves_it_open() -> None:
    lent = Consumer()
    follower = Follower("unused:9092", TOPIC, [0], consumer=lent)  # type: ignore[arg-type]
    assert lent.assigned == [TopicPartition(TOPIC, 0)]
    assert follower.end_offset(0) == 3
    with pytest.raises(ValueError, match="lent consumer"):
        follower.start(lambda partition, records: None)
    follower.close()
    assert not lent.closed


def test_a_lent_consumer_takes_no_settings() -> None:
    with pytest.raises(ValueError, match="no consumer settings"):
        Follower("unused:9092", TOPIC, [0], consumer=Consumer(), fetch_max_wait_ms=10)  # type: ignore[arg-type]


def test_the_restore_reads_with_the_consumer_lent_to_it(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[Consumer] = []

    def new_consumer(bootstrap: str, **overrides: Any) -> Consumer:
        made.append(Consumer())
        return made[-1]

    monkeypatch.setattr(restore, "new_consumer", new_consumer)
    lent, seen = Consumer(records=2), list[bytes | None]()

    def sink(offset: int, key: Any, value: bytes | None, headers: Any) -> None:
        seen.append(value)

    with lend_consumer(lent):  # type: ignore[arg-type]
        assert read_partition("unused:9092", TOPIC, 0, sink) == 2
    assert seen == [b"v0", b"v1"] and not lent.closed and not made
    # Outside the block: a consumer of its own, closed when done.
    assert read_partition("unused:9092", TOPIC, 0, sink) == 3
    assert len(made) == 1 and made[0].closed
