"""The Kafka recorders: thin views over the shard writer and the local stores.

Writes go to Kafka through the shard writer (its open transaction or one of their own);
reads are served from the local stores. A factory shares one writer and one store per topic
among all the recorders it makes, so they never disagree about the shard.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from uuid import UUID

from eventsourcing.persistence import (
    AggregateRecorder,
    ApplicationRecorder,
    ListenNotifySubscription,
    Notification,
    Recorder,
    StoredEvent,
    Subscription,
)
from kafka import KafkaProducer

from dispatch.adapters.kafka.eventstore.codec import (
    EventRecord,
    encode_event,
    encode_events,
    notification_id,
)
from dispatch.adapters.kafka.eventstore.store import EventTable
from dispatch.adapters.kafka.eventstore.writer import PartitionWriter


class KafkaRecorder(Recorder):
    """Holds a reference to the shard writer and exposes its transaction API."""

    def __init__(self, writer: PartitionWriter, partition: int) -> None:
        self.writer = writer
        self.partition = partition
        self._closed = False
        writer.retain()

    @property
    def producer(self) -> KafkaProducer:
        """The shard's transactional producer, for the worker's own records."""
        return self.writer.producer

    @property
    def in_transaction(self) -> bool:
        return self.writer.in_transaction

    def begin(self) -> KafkaProducer:
        return self.writer.begin()

    def commit(self) -> None:
        self.writer.commit()

    def abort(self) -> None:
        self.writer.abort()

    @contextmanager
    def transaction(self) -> Iterator[KafkaProducer]:
        with self.writer.transaction() as producer:
            yield producer

    def close(self) -> None:
        """Release the writer; its producer closes when the last recorder using it does."""
        if not self._closed:
            self._closed = True
            self.writer.release()


class KafkaAggregateRecorder(KafkaRecorder, AggregateRecorder):
    """Stored events (or snapshots) of one partition of one topic.

    ``batched``: each insert is one record of many events (or a few, see ``codec``), as the
    events topic wants. Snapshots are one record per snapshot, keyed by aggregate id: their
    topic is compacted by key, so a record must never hold two aggregates.
    """

    def __init__(
        self,
        writer: PartitionWriter,
        partition: int,
        topic: str,
        table: EventTable,
        *,
        batched: bool = True,
    ) -> None:
        KafkaRecorder.__init__(self, writer, partition)
        self.topic = topic
        self.table = table
        self.batched = batched

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        self._insert_events(stored_events)
        return None

    def _insert_events(self, stored_events: Sequence[StoredEvent]) -> list[int]:
        records = self._encode(stored_events)
        if not records:
            return []
        with self.writer.writing():
            self.table.check(stored_events)  # the whole batch, before producing anything
            futures = [
                self.writer.send(self.topic, self.partition, r.key, r.value, r.headers)
                for r in records
            ]
            offsets = self.writer.flush(futures)
            ids = [
                notification_id(offset, i)
                for record, offset in zip(records, offsets, strict=True)
                for i in range(record.event_count)
            ]
            self.table.add_pending(stored_events, ids)
            self.writer.enlist(self.table)
        return ids

    def _encode(self, stored_events: Sequence[StoredEvent]) -> list[EventRecord]:
        if self.batched:
            return encode_events(stored_events)
        return [EventRecord(*encode_event(e), headers=[], event_count=1) for e in stored_events]

    def select_events(
        self,
        originator_id: UUID | str,
        *,
        gt: int | None = None,
        lte: int | None = None,
        desc: bool = False,
        limit: int | None = None,
    ) -> Sequence[StoredEvent]:
        return self.table.select_events(originator_id, gt=gt, lte=lte, desc=desc, limit=limit)


class KafkaApplicationRecorder(KafkaAggregateRecorder, ApplicationRecorder):
    """The shard's events partition as an application sequence (ids: ``codec.notification_id``)."""

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        return self._insert_events(stored_events)

    def select_notifications(
        self,
        start: int | None,
        limit: int,
        stop: int | None = None,
        topics: Sequence[str] = (),
        *,
        inclusive_of_start: bool = True,
    ) -> Sequence[Notification]:
        return self.table.select_notifications(
            start, limit, stop, topics, inclusive_of_start=inclusive_of_start
        )

    def select_rows(
        self, start: int, limit: int, stop: int | None = None
    ) -> Sequence[tuple[int, UUID | str, str, int]]:
        """Lean rows for a fold (``shard.worker.RowLog``): see ``EventTable.select_rows``."""
        return self.table.select_rows(start, limit, stop)

    def row_state(self, row: int) -> bytes:
        return self.table.row_state(row)

    def row_notification(self, row: int) -> Notification:
        return self.table.row_notification(row)

    def max_notification_id(self) -> int | None:
        return self.table.max_notification_id()

    def subscribe(
        self, gt: int | None = None, topics: Sequence[str] = ()
    ) -> Subscription[ApplicationRecorder]:
        return KafkaSubscription(self, gt=gt, topics=topics)


class KafkaSubscription(ListenNotifySubscription[KafkaApplicationRecorder]):
    """Yields notifications as their transactions commit (woken by the local store)."""

    def __init__(
        self, recorder: KafkaApplicationRecorder, gt: int | None = None, topics: Sequence[str] = ()
    ) -> None:
        super().__init__(recorder=recorder, gt=gt, topics=topics)
        recorder.table.listen(self._has_been_notified)
        self._has_been_notified.set()  # pull again: a commit may have landed before listening

    def stop(self) -> None:
        super().stop()
        self._recorder.table.unlisten(self._has_been_notified)
