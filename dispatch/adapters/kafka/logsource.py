"""Read the events topic as ``LogEvent``s (read_committed): replay and projections on Kafka.

Positions are notification ids, as the Kafka persistence module assigns them: a record holds
many events, and ``codec.notification_id(offset, index)`` / ``codec.record_position(id)``
map between ids and places in the log. A read after position ``p`` seeks to the record
holding ``p`` and skips the events of that record up to ``p``. A read goes to the
partition's end as it was when the read started, so replay commands finish.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any
from uuid import UUID

from eventsourcing.persistence import StoredEvent
from kafka import TopicPartition

from dispatch.adapters.kafka.config import new_consumer
from dispatch.adapters.kafka.eventstore.codec import (
    decode_events,
    event_documents,
    notification_id,
    record_position,
)
from dispatch.adapters.kafka.topics import Topics
from dispatch.log import LogEvent, decode_fields, flatten, from_state


def decode_records(value: bytes, offset: int, shard: int, after: int = 0) -> Iterator[LogEvent]:
    """The events of the record at ``offset`` whose ids exceed ``after``: one JSON parse of
    the whole record (its events' ``state`` is JSON already in the common case)."""
    first = notification_id(offset, 0)
    docs = event_documents(value)
    skip = after - first + 1 if after >= first else 0
    for index in range(skip, len(docs)):
        doc = docs[index]
        if doc["state_encoding"] == "json":
            yield from_state(
                shard,
                first + index,
                doc["originator_id"],
                doc["originator_version"],
                doc["topic"],
                flatten(doc["state"]),
            )
        else:
            yield decode_fields(
                shard,
                first + index,
                doc["originator_id"],
                doc["originator_version"],
                doc["topic"],
                base64.b64decode(doc["state"]),
            )


def start_offset(after: int) -> int:
    """The offset of the first record that may hold events after position ``after``."""
    return record_position(after)[0] if after > 0 else 0


class KafkaLogSource:
    def __init__(self, bootstrap: str, prefix: str, poll_ms: int = 500) -> None:
        self.bootstrap, self.topics, self.poll_ms = bootstrap, Topics(prefix), poll_ms

    def shards(self) -> list[int]:
        consumer = new_consumer(self.bootstrap, group_id=None)
        try:
            return sorted(consumer.partitions_for_topic(self.topics.events) or [])
        finally:
            consumer.close()

    def _records(self, shard: int, after: int) -> Iterator[Any]:
        consumer = new_consumer(self.bootstrap, group_id=None, fetch_max_bytes=64 * 1024 * 1024)
        tp = TopicPartition(self.topics.events, shard)
        try:
            consumer.assign([tp])
            end = consumer.end_offsets([tp])[tp]
            consumer.seek(tp, start_offset(after))
            while consumer.position(tp) < end:
                for records in consumer.poll(timeout_ms=self.poll_ms).values():
                    for record in records:
                        if record.offset >= end:
                            return
                        yield record
        finally:
            consumer.close()

    def read(self, shard: int, after: int = 0) -> Iterator[LogEvent]:
        for record in self._records(shard, after):
            yield from decode_records(record.value, record.offset, shard, after)

    def stored_events(self, shard: int, aggregate_id: UUID) -> list[StoredEvent]:
        key = str(aggregate_id)
        out = []
        for record in self._records(shard, 0):
            for d in decode_events(record.value, record.headers):
                if d.originator_key == key:
                    out.append(StoredEvent(aggregate_id, d.originator_version, d.topic, d.state))
        return out


class KafkaFollowSource:
    """The events topic followed by a long-lived process (the API's views): one consumer per
    shard kept open, so each catch-up reads only what is new."""

    def __init__(self, bootstrap: str, prefix: str) -> None:
        self.bootstrap, self.topics = bootstrap, Topics(prefix)
        self._consumers: dict[int, Any] = {}
        self._read_to: dict[int, int] = {}  # position the consumer stands after, per shard
        probe = new_consumer(bootstrap, group_id=None)
        try:
            self._shards = sorted(probe.partitions_for_topic(self.topics.events) or [])
        finally:
            probe.close()
        if not self._shards:
            raise RuntimeError(
                f"topic {self.topics.events} is missing: run `dispatch topics create` first"
            )

    def shards(self) -> list[int]:
        return list(self._shards)

    def read(self, shard: int, after: int = 0) -> Iterator[LogEvent]:
        tp = TopicPartition(self.topics.events, shard)
        consumer = self._consumers.get(shard)
        if consumer is None:
            consumer = new_consumer(self.bootstrap, group_id=None)
            consumer.assign([tp])
            self._consumers[shard] = consumer
        if self._read_to.get(shard) != after:
            # Not where the last read left off (a first read, another position, or a read
            # abandoned inside a record): seek to the record holding `after`.
            self._read_to.pop(shard, None)
            consumer.seek(tp, start_offset(after))
        end = consumer.end_offsets([tp])[tp]
        while consumer.position(tp) < end:
            batch = consumer.poll(timeout_ms=200).get(tp, [])
            if not batch:
                return
            self._read_to.pop(shard, None)  # the consumer now stands after the whole batch
            for record in batch:
                for event in decode_records(record.value, record.offset, shard, after):
                    after = event.position
                    yield event
            self._read_to[shard] = after  # every event of the batch was read

    def stored_events(self, shard: int, aggregate_id: UUID) -> list[StoredEvent]:
        return KafkaLogSource(self.bootstrap, self.topics.prefix).stored_events(shard, aggregate_id)

    def close(self) -> None:
        for consumer in self._consumers.values():
            consumer.close()
        self._consumers.clear()
        self._read_to.clear()
