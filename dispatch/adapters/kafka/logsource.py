"""The log-source port on Kafka: the events topic read as ``LogEvent``s (read_committed), by
replay and by the API's views, through ``follower.Follower``.

Positions are notification ids, as the Kafka persistence module assigns them: a record holds
many events, and ``codec.notification_id(offset, index)`` / ``codec.record_position(id)``
map between ids and places in the log. A read after position ``p`` seeks to the record
holding ``p`` and skips the events of that record up to ``p``. A read of ``KafkaLogSource``
goes to the partition's end as it was when the read started, so replay commands finish;
``KafkaFollowSource`` may stop short of it (see there).
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any
from uuid import UUID

from eventsourcing.persistence import StoredEvent

from dispatch.adapters.kafka.eventstore.codec import (
    decode_events,
    event_documents,
    notification_id,
    record_position,
)
from dispatch.adapters.kafka.eventstore.connection import Connection
from dispatch.adapters.kafka.follower import Follower, partitions_of
from dispatch.adapters.kafka.topics import Topics
from dispatch.log import LogEvent, LogSource, decode_fields, flatten, from_state


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


class KafkaLogSource(LogSource):
    """The events topic read by a one-off process (replay): a read opens a follower of its
    shard and reads to the partition's end as it was when the read started."""

    def __init__(self, bootstrap: Connection, prefix: str, poll_ms: int = 500) -> None:
        self.bootstrap, self.topics, self.poll_ms = bootstrap, Topics(prefix), poll_ms

    def shards(self) -> list[int]:
        return partitions_of(self.bootstrap, self.topics.events)

    def read(self, shard: int, after: int = 0) -> Iterator[LogEvent]:
        for record in self._records(shard, after):
            yield from decode_records(record.value, record.offset, shard, after)

    def head(self, shard: int) -> None:
        """Not told: positions come from offsets, and the last one is only known by reading
        the partition's last records (transaction markers sit between them)."""
        return None

    def stored_events(self, shard: int, aggregate_id: UUID) -> list[StoredEvent]:
        if shard not in self.shards():
            return []
        key = str(aggregate_id)
        out = []
        for record in self._records(shard, 0):
            for d in decode_events(record.value, record.headers):
                if d.originator_key == key:
                    out.append(StoredEvent(aggregate_id, d.originator_version, d.topic, d.state))
        return out

    def cut(self, shard: int) -> int:
        """Every event of a record before the partition's end (read_committed: its last
        stable offset) is at or below the id the end's first event would have."""
        follower = Follower(self.bootstrap, self.topics.events, [shard])
        try:
            return notification_id(follower.end_offset(shard), 0) - 1
        finally:
            follower.close()

    def close(self) -> None:
        """Nothing to release: every read opens and closes its own follower."""

    def _records(self, shard: int, after: int) -> Iterator[Any]:
        follower = Follower(
            self.bootstrap, self.topics.events, [shard], fetch_max_bytes=64 * 1024 * 1024
        )
        try:
            follower.seek(shard, start_offset(after))
            for batch in follower.read_to_end(self.poll_ms):
                yield from batch
        finally:
            follower.close()


class KafkaFollowSource(KafkaLogSource):
    """The events topic followed by a long-lived process (the API's views): one follower per
    shard kept open, so each catch-up reads only what is new. A read goes towards the
    partition's end as it was when the read began and stops there, or once polls have
    brought nothing for its patience (``Follower.read_available``; 2 s unless
    ``set_read_patience`` says less), rather than wait for records that may be slow to
    come."""

    PATIENCE_S = 2.0  # the most a read waits for fetches that bring nothing
    POLL_MS = 200

    def __init__(self, bootstrap: Connection, prefix: str) -> None:
        super().__init__(bootstrap, prefix)
        self._followers: dict[int, Follower] = {}
        self._read_to: dict[int, int] = {}  # position the follower stands after, per shard
        self._patience_s, self._follow_poll_ms = self.PATIENCE_S, self.POLL_MS
        self._shards = super().shards()
        if not self._shards:
            raise RuntimeError(
                f"topic {self.topics.events} is missing: run `dispatch topics create` first"
            )

    def shards(self) -> list[int]:
        return list(self._shards)

    def set_read_patience(self, seconds: float) -> None:
        """Each read waits at most ``seconds`` (at most ``PATIENCE_S``) for polls that bring
        nothing, polling at most half of that at a time: a read of a stalled partition
        ends within about 1.5 times it (its offset lookup aside)."""
        self._patience_s = min(self.PATIENCE_S, max(seconds, 0.02))
        self._follow_poll_ms = max(10, min(self.POLL_MS, int(self._patience_s * 500)))

    def read(self, shard: int, after: int = 0) -> Iterator[LogEvent]:
        follower = self._followers.get(shard)
        if follower is None:
            follower = Follower(self.bootstrap, self.topics.events, [shard])
            self._followers[shard] = follower
        if self._read_to.get(shard) != after:
            # Not where the last read left off (a first read, another position, or a read
            # abandoned inside a record): seek to the record holding `after`.
            self._read_to.pop(shard, None)
            follower.seek(shard, start_offset(after))
        for batch in follower.read_available(self._follow_poll_ms, self._patience_s):
            self._read_to.pop(shard, None)  # the follower now stands after the whole batch
            for record in batch:
                for event in decode_records(record.value, record.offset, shard, after):
                    after = event.position
                    yield event
            self._read_to[shard] = after  # every event of the batch was read

    def reached_end(self, shard: int) -> bool:
        """Whether the last read of ``shard`` reached the partition's end as it was when
        the read began (not stopped by the follower's patience)."""
        follower = self._followers.get(shard)
        return follower is not None and follower.caught_up

    def close(self) -> None:
        for follower in self._followers.values():
            follower.close()
        self._followers.clear()
        self._read_to.clear()
