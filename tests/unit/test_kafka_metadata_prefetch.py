"""A shard's producer fetches the metadata of the topics its batches send to while the shard
is restored (kafka-python spaces a producer's metadata requests 100 ms apart, so the first
batch waited for each new topic); a fetch that fails is logged and changes nothing."""

from __future__ import annotations

import logging
import threading

import pytest

from dispatch.adapters.kafka.eventstore.writer import PartitionWriter, ReadOnlyWriter
from dispatch.adapters.kafka.shard_host import _sent_to
from dispatch.adapters.kafka.topics import Topics


class Producer:
    def __init__(self, failing: set[str]) -> None:
        self.failing, self.asked = failing, set[str]()
        self.lock = threading.Lock()

    def partitions_for(self, topic: str) -> set[int]:
        with self.lock:
            self.asked.add(topic)
        if topic in self.failing:
            raise TimeoutError("no metadata")
        return {0}


def writer_with(producer: Producer) -> PartitionWriter:
    writer = PartitionWriter.__new__(PartitionWriter)
    writer._init_state("dispatch.shard-0", 1.0)
    writer.producer = producer  # type: ignore[assignment]
    return writer


def test_every_topic_is_fetched_and_a_failure_is_only_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    producer = Producer(failing={"b"})
    with caplog.at_level(logging.INFO):
        for thread in writer_with(producer).prefetch(["a", "b", "c"]):
            thread.join(timeout=5)
    assert producer.asked == {"a", "b", "c"}
    assert "metadata of b not fetched ahead" in caplog.text
    assert "metadata of a" not in caplog.text


def test_a_closed_writer_says_nothing(caplog: pytest.LogCaptureFixture) -> None:
    writer = writer_with(Producer(failing={"a"}))
    writer._closed = True
    with caplog.at_level(logging.INFO):
        for thread in writer.prefetch(["a"]):
            thread.join(timeout=5)
    assert "not fetched ahead" not in caplog.text


@pytest.mark.parametrize("shards", [1, 3])
def test_the_topics_a_batch_sends_to(shards: int) -> None:
    topics = Topics("city")
    sent = _sent_to(topics, shards)
    assert sent[:2] == [topics.events, topics.outcomes]  # every batch, nearly every batch
    assert {topics.snapshots, topics.checkpoints, topics.dead_letters} <= set(sent)
    between = {topics.shard_messages, topics.driver_availability}
    assert between <= set(sent) if shards > 1 else not between & set(sent)


def test_a_read_only_writer_fetches_nothing() -> None:
    assert ReadOnlyWriter("dispatch.shard-0").prefetch(["a"]) == []
