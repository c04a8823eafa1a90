"""Read the events topic as ``LogEvent``s (read_committed): replay and projections on Kafka.

Positions are notification ids (offset + 1), as the Kafka persistence module assigns them.
A read goes from the position after ``after`` to the partition's end as it was when the
read started, so replay commands finish.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from uuid import UUID

import orjson
from eventsourcing.persistence import StoredEvent
from kafka import TopicPartition

from dispatch.eventstore.codec import decode_event
from dispatch.kafka.config import new_consumer
from dispatch.kafka.topics import Topics
from dispatch.log import LogEvent, decode, flatten, from_state


class _Notification:
    __slots__ = ("id", "originator_id", "originator_version", "state", "topic")

    def __init__(self, id: int, originator_id: str, version: int, topic: str, state: bytes) -> None:
        self.id, self.originator_id, self.originator_version = id, originator_id, version
        self.topic, self.state = topic, state


def decode_record(value: bytes, position: int, shard: int) -> LogEvent:
    """One parse of the record value: its ``state`` is already JSON (the common case)."""
    doc = orjson.loads(value)
    if doc.get("state_encoding") == "json":
        return from_state(
            shard,
            position,
            doc["originator_id"],
            doc["originator_version"],
            doc["topic"],
            flatten(doc["state"]),
        )
    d = decode_event(value)
    return decode(
        _Notification(position, d.originator_key, d.originator_version, d.topic, d.state), shard
    )


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


class KafkaFollowSource:
    """The events topic followed by a long-lived process (the API's views): one consumer per
    shard kept open, so each catch-up reads only what is new."""

    def __init__(self, bootstrap: str, prefix: str) -> None:
        self.bootstrap, self.topics = bootstrap, Topics(prefix)
        self._consumers: dict[int, Any] = {}
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
        if consumer.position(tp) != after:
            consumer.seek(tp, after)  # the next record after notification id `after`
        end = consumer.end_offsets([tp])[tp]
        while consumer.position(tp) < end:
            batch = consumer.poll(timeout_ms=200).get(tp, [])
            for record in batch:
                d = decode_event(record.value)
                yield decode(
                    _Notification(
                        record.offset + 1, d.originator_key, d.originator_version, d.topic, d.state
                    ),
                    shard,
                )
            if not batch:
                return

    def stored_events(self, shard: int, aggregate_id: UUID) -> list[StoredEvent]:
        return KafkaLogSource(self.bootstrap, self.topics.prefix).stored_events(shard, aggregate_id)

    def close(self) -> None:
        for consumer in self._consumers.values():
            consumer.close()
        self._consumers.clear()
