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
    ProcessRecorder,
    Recorder,
    StoredEvent,
    Subscription,
    Tracking,
    TrackingRecorder,
)
from kafka import KafkaProducer

from dispatch.adapters.kafka.eventstore.codec import (
    EventRecord,
    encode_event,
    encode_events,
    encode_tracking,
    notification_id,
)
from dispatch.adapters.kafka.eventstore.shard import ShardWriter
from dispatch.adapters.kafka.eventstore.store import EventTable
from dispatch.adapters.kafka.eventstore.tracking import TrackingTable


class KafkaRecorder(Recorder):
    """Holds a reference to the shard writer and exposes its transaction API."""

    def __init__(self, writer: ShardWriter, partition: int) -> None:
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
        writer: ShardWriter,
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
        self._insert_events(stored_events, **kwargs)
        return None

    def _insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> list[int]:
        records = self._encode(stored_events)
        if not records and not self._has_extra(kwargs):
            return []
        with self.writer.writing():
            self.table.check(stored_events)  # the whole batch, before producing anything
            self._check_extra(kwargs)
            futures = [
                self.writer.send(self.topic, self.partition, r.key, r.value, r.headers)
                for r in records
            ]
            futures += self._send_extra(kwargs)
            offsets = self.writer.flush(futures)
            ids = [
                notification_id(offset, i)
                for record, offset in zip(records, offsets[: len(records)], strict=True)
                for i in range(record.event_count)
            ]
            if records:
                self.table.add_pending(stored_events, ids)
                self.writer.enlist(self.table)
            self._add_extra(kwargs)
        return ids

    def _encode(self, stored_events: Sequence[StoredEvent]) -> list[EventRecord]:
        if self.batched:
            return encode_events(stored_events)
        return [EventRecord(*encode_event(e), headers=[], event_count=1) for e in stored_events]

    # Hooks for records written atomically with the events (tracking, in the process recorder).
    def _has_extra(self, kwargs: dict[str, Any]) -> bool:
        return False

    def _check_extra(self, kwargs: dict[str, Any]) -> None:
        pass

    def _send_extra(self, kwargs: dict[str, Any]) -> list[Any]:
        return []

    def _add_extra(self, kwargs: dict[str, Any]) -> None:
        pass

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
        return self._insert_events(stored_events, **kwargs)

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


class KafkaTrackingRecorder(KafkaRecorder, TrackingRecorder):
    """Tracking records in the shard's partition of the compacted tracking topic."""

    def __init__(
        self, writer: ShardWriter, partition: int, tracking_topic: str, tracking: TrackingTable
    ) -> None:
        KafkaRecorder.__init__(self, writer, partition)
        self.tracking_topic = tracking_topic
        self.tracking = tracking

    def insert_tracking(self, tracking: Tracking) -> None:
        with self.writer.writing():
            self.tracking.check(tracking)
            self.writer.flush([self._send_tracking(tracking)])
            self._add_tracking(tracking)

    def max_tracking_id(self, application_name: str) -> int | None:
        return self.tracking.max_tracking_id(application_name)

    def _send_tracking(self, tracking: Tracking) -> Any:
        key, value = encode_tracking(tracking)
        return self.writer.send(self.tracking_topic, self.partition, key, value)

    def _add_tracking(self, tracking: Tracking) -> None:
        self.tracking.add_pending(tracking)
        self.writer.enlist(self.tracking)


class KafkaProcessRecorder(KafkaTrackingRecorder, KafkaApplicationRecorder, ProcessRecorder):
    """Events and the tracking record of ``insert_events(..., tracking=...)`` in one transaction."""

    def __init__(
        self,
        writer: ShardWriter,
        partition: int,
        topic: str,
        table: EventTable,
        tracking_topic: str,
        tracking: TrackingTable,
    ) -> None:
        KafkaApplicationRecorder.__init__(self, writer, partition, topic, table)
        self.tracking_topic = tracking_topic
        self.tracking = tracking

    def _has_extra(self, kwargs: dict[str, Any]) -> bool:
        return kwargs.get("tracking") is not None

    def _check_extra(self, kwargs: dict[str, Any]) -> None:
        tracking: Tracking | None = kwargs.get("tracking")
        if tracking is not None:
            self.tracking.check(tracking)

    def _send_extra(self, kwargs: dict[str, Any]) -> list[Any]:
        tracking: Tracking | None = kwargs.get("tracking")
        return [] if tracking is None else [self._send_tracking(tracking)]

    def _add_extra(self, kwargs: dict[str, Any]) -> None:
        tracking: Tracking | None = kwargs.get("tracking")
        if tracking is not None:
            self._add_tracking(tracking)
