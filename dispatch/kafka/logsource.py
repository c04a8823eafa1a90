"""Read the events topic as ``LogEvent``s (read_committed): replay and projections on Kafka.

Positions are notification ids (offset + 1), as the Kafka persistence module assigns them.
A read goes from the position after ``after`` to the partition's end as it was when the
read started, so replay commands finish.
"""

from __future__ import annotations

from collections.abc import Iterator
from uuid import UUID

from eventsourcing.persistence import StoredEvent
from kafka import TopicPartition

from dispatch.eventstore.codec import decode_event
from dispatch.kafka.config import new_consumer
from dispatch.kafka.topics import Topics
from dispatch.log import LogEvent, decode


class _Notification:
    __slots__ = ("id", "originator_id", "originator_version", "state", "topic")

    def __init__(self, id: int, originator_id: str, version: int, topic: str, state: bytes) -> None:
        self.id, self.originator_id, self.originator_version = id, originator_id, version
        self.topic, self.state = topic, state


class KafkaLogSource:
    def __init__(self, bootstrap: str, prefix: str, poll_ms: int = 500) -> None:
        self.bootstrap, self.topics, self.poll_ms = bootstrap, Topics(prefix), poll_ms

    def shards(self) -> list[int]:
        consumer = new_consumer(self.bootstrap, group_id=None)
        try:
            return sorted(consumer.partitions_for_topic(self.topics.events) or [])
        finally:
            consumer.close()

    def _records(self, shard: int, after: int) -> Iterator[tuple[int, bytes]]:
        consumer = new_consumer(self.bootstrap, group_id=None, fetch_max_bytes=64 * 1024 * 1024)
        tp = TopicPartition(self.topics.events, shard)
        try:
            consumer.assign([tp])
            end = consumer.end_offsets([tp])[tp]
            consumer.seek(tp, after)  # notification id = offset + 1
            while consumer.position(tp) < end:
                for records in consumer.poll(timeout_ms=self.poll_ms).values():
                    for record in records:
                        if record.offset >= end:
                            return
                        yield record.offset + 1, record.value
        finally:
            consumer.close()

    def read(self, shard: int, after: int = 0) -> Iterator[LogEvent]:
        for position, value in self._records(shard, after):
            d = decode_event(value)
            yield decode(
                _Notification(position, d.originator_key, d.originator_version, d.topic, d.state),
                shard,
            )

    def stored_events(self, shard: int, aggregate_id: UUID) -> list[StoredEvent]:
        key = str(aggregate_id)
        out = []
        for _, value in self._records(shard, 0):
            d = decode_event(value)
            if d.originator_key == key:
                out.append(StoredEvent(aggregate_id, d.originator_version, d.topic, d.state))
        return out
