"""Read one partition from its beginning to its last stable offset, ``read_committed``.

Called after the shard writer's ``init_transactions``: the new owner has fenced the old one
and aborted its open transaction, so the last stable offset is the end of the shard's log.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from queue import Full, Queue
from threading import Event, Thread
from time import monotonic
from typing import Any

from eventsourcing.persistence import OperationalError
from kafka import KafkaConsumer, TopicPartition

from dispatch.adapters.kafka.eventstore.clients import end_offsets, new_consumer, position
from dispatch.adapters.kafka.eventstore.codec import (
    decode_events,
    notification_id,
    record_position,
)
from dispatch.adapters.kafka.eventstore.connection import Connection
from dispatch.adapters.kafka.eventstore.store import EventTable

Headers = Sequence[tuple[str, bytes]]
Sink = Callable[[int, bytes | None, bytes | None, Headers], None]

# A consumer lent to the restores made in this context (``lend_consumer``), used instead of
# a new one: each new consumer spends about 0.1 s fetching the cluster's metadata first.
_LENT: ContextVar[KafkaConsumer | None] = ContextVar("restore_consumer", default=None)


@contextmanager
def lend_consumer(consumer: KafkaConsumer) -> Iterator[None]:
    """Within this block, ``read_partition`` reads with ``consumer`` (made by
    ``clients.new_consumer``, no group; it stays the caller's, who closes it)."""
    token = _LENT.set(consumer)
    try:
        yield
    finally:
        _LENT.reset(token)


def read_partition(
    bootstrap: Connection,
    topic: str,
    partition: int,
    sink: Sink,
    timeout_s: float = 300.0,
    start_offset: int = 0,
) -> int:
    """Pass ``(offset, key, value, headers)`` of each committed record from ``start_offset``
    on to ``sink``; return the count.

    Raises ``OperationalError`` if the topic or partition is missing, or if the end is not
    reached within ``timeout_s``.
    """
    deadline = monotonic() + timeout_s
    lent = _LENT.get()
    consumer = lent or new_consumer(bootstrap, client_id=f"restore-{topic}-{partition}")
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            raise OperationalError(
                f"topic {topic} does not exist: create it first (`dispatch topics create`)"
            )
        if partition not in partitions:
            raise OperationalError(f"topic {topic} has no partition {partition}")
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        end = end_offsets(consumer, [tp], int(timeout_s * 1000))[tp]
        if start_offset > 0:
            consumer.seek(tp, start_offset)
        else:
            consumer.seek_to_beginning(tp)
        count = 0
        timeout_error = f"restoring {topic}[{partition}] timed out after {timeout_s}s"
        for records in _prefetched(consumer, tp, end, deadline, timeout_error):
            for record in records:
                if record.offset < end:
                    sink(record.offset, record.key, record.value, record.headers or ())
                    count += 1
        return count
    finally:
        if lent is None:
            consumer.close()


def _prefetched(
    consumer: KafkaConsumer, tp: TopicPartition, end: int, deadline: float, timeout_error: str
) -> Iterator[list[Any]]:
    """The polled batches of ``tp`` up to ``end``, polled by a thread while the caller loads
    the previous batch: kafka-python reads its socket only inside ``poll``, so polling and
    loading in turn leaves the transfer stalled for the whole time a batch is loaded."""
    batches: Queue[list[Any] | BaseException | None] = Queue(maxsize=4)
    stop = Event()

    def put(item: list[Any] | BaseException | None) -> None:
        while not stop.is_set():
            try:
                batches.put(item, timeout=0.1)
                return
            except Full:
                continue

    def poll() -> None:
        try:
            while not stop.is_set() and position(consumer, tp) < end:
                if monotonic() > deadline:
                    raise OperationalError(timeout_error)
                records = consumer.poll(timeout_ms=500).get(tp)
                if records:
                    put(records)
            put(None)
        except BaseException as e:  # handed to the reading thread, which raises it
            put(e)

    thread = Thread(target=poll, name=f"restore-{tp.topic}-{tp.partition}", daemon=True)
    thread.start()
    try:
        while (item := batches.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join()


def restore_events(
    bootstrap: Connection,
    topic: str,
    partition: int,
    table: EventTable,
    timeout_s: float,
    after_id: int = 0,
) -> int:
    """Load a stored-event partition into ``table`` (ids: ``codec.notification_id``): the
    events after notification id ``after_id`` (0: all of them)."""
    start = record_position(after_id)[0] if after_id > 0 else 0

    def sink(offset: int, key: bytes | None, value: bytes | None, headers: Headers) -> None:
        if value is None:  # a tombstone (compacted topics) carries nothing to load
            return
        first = notification_id(offset, 0)
        events = decode_events(value, headers)
        if first <= after_id:  # the record holding ``after_id``: only the events after it
            skip = after_id - first + 1
            events, first = events[skip:], first + skip
        if events:
            table.load_record(first, events)

    return read_partition(bootstrap, topic, partition, sink, timeout_s, start)
