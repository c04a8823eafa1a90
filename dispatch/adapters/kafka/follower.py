"""One way to read topics outside a consumer group: ``Follower``.

The log sources (replay, and the API's views following the events topic), the location and
outcome followers and the simulator read topics alike: partitions assigned (no group,
nothing committed), positioned, polled read_committed. ``Follower`` does that once. It is
read either by its caller (``poll``, ``batches_to_end``) or on a thread of its own
(``start``), which hands each partition's records to a callback, logs and backs off when a
poll fails, and says so through ``problem()`` (for readiness) until a poll succeeds.

The shard workers' group consumer (``worker.py``) is not a follower: it commits its
offsets in its batch transactions.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from dispatch.adapters.kafka.config import assign_all, new_consumer, seek_since
from dispatch.adapters.kafka.eventstore.clients import beginning_offsets, end_offsets, position
from dispatch.adapters.kafka.eventstore.connection import Connection

log = logging.getLogger(__name__)

Records = list[Any]  # kafka-python's ConsumerRecords of one partition, in offset order
Handle = Callable[[int, Records], None]


def partitions_of(bootstrap: Connection, topic: str) -> list[int]:
    """The topic's partitions, in order (none when the topic is missing)."""
    consumer = new_consumer(bootstrap, group_id=None)
    try:
        return sorted(consumer.partitions_for_topic(topic) or [])
    finally:
        consumer.close()


class Follower:
    """A consumer of ``partitions`` of ``topic`` (every one when None; a missing topic is a
    RuntimeError saying how to create it). ``overrides`` are consumer settings.

    ``consumer``: a consumer lent by the caller (no group, as ``new_consumer`` makes it),
    assigned to this follower's partitions instead of making a new one (each new consumer
    spends about 0.1 s fetching the cluster's metadata before its first read). It stays
    the caller's: ``close`` leaves it open, and it cannot be followed on a thread."""

    def __init__(
        self,
        bootstrap: Connection,
        topic: str,
        partitions: Sequence[int] | None = None,
        name: str | None = None,
        consumer: KafkaConsumer | None = None,
        **overrides: Any,
    ) -> None:
        self.topic, self.name = topic, name or f"{topic} follower"
        self._owned = consumer is None
        if consumer is not None and overrides:
            raise ValueError("a lent consumer takes no consumer settings")
        if consumer is None:
            consumer = new_consumer(bootstrap, group_id=None, **overrides)
        self._consumer = consumer
        try:
            if partitions is None:
                self._tps = assign_all(self._consumer, topic)
            else:
                self._tps = [TopicPartition(topic, p) for p in partitions]
                self._consumer.assign(self._tps)
        except BaseException:
            if self._owned:
                self._consumer.close()
            raise
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing: str | None = None  # the last poll's error, until a poll succeeds
        # Whether the last ``read_available`` reached the end it set out for (not stopped by
        # its patience, nor left before its end by its reader).
        self.caught_up = False

    @property
    def partitions(self) -> list[int]:
        return [tp.partition for tp in self._tps]

    # -- positions ------------------------------------------------------------------------
    def seek(self, partition: int, offset: int) -> None:
        self._consumer.seek(self._tp(partition), offset)

    def seek_to_end(self) -> None:
        """Every partition at its end as it is now (resolved at once, not at the next poll,
        so nothing produced after this call is missed)."""
        self._consumer.seek_to_end(*self._tps)
        for tp in self._tps:
            position(self._consumer, tp)

    def seek_since(self, since_s: float) -> None:
        """Every partition at its first record timestamped at or after ``since_s``."""
        seek_since(self._consumer, self._tps, since_s)

    def position(self, partition: int) -> int:
        """The offset of the next record to read from ``partition``."""
        return position(self._consumer, self._tp(partition))

    def beginning_offset(self, partition: int) -> int:
        """The offset of the partition's first record still kept."""
        tp = self._tp(partition)
        return int(beginning_offsets(self._consumer, [tp])[tp])

    def end_offset(self, partition: int) -> int:
        """The offset after the partition's last committed record."""
        tp = self._tp(partition)
        return int(end_offsets(self._consumer, [tp])[tp])

    # -- read by the caller ----------------------------------------------------------------
    def poll(self, timeout_ms: int = 200, max_records: int | None = None) -> dict[int, Records]:
        """The records fetched within ``timeout_ms``, by partition."""
        polled = self._consumer.poll(timeout_ms=timeout_ms, max_records=max_records)
        return {tp.partition: records for tp, records in polled.items()}

    def read_to_end(self, poll_ms: int = 500) -> Iterator[Records]:
        """The records of a follower of one partition, from its position to its end as it
        is when the read starts, a poll at a time; it waits for every one of them."""
        partition = self._only()
        end = self.end_offset(partition)
        while self.position(partition) < end:
            batch = self.poll(poll_ms).get(partition, [])
            if batch and batch[-1].offset >= end:
                kept = [record for record in batch if record.offset < end]
                if kept:
                    yield kept
                return
            if batch:
                yield batch

    def read_available(self, poll_ms: int = 200, patience_s: float = 2.0) -> Iterator[Records]:
        """The records of a follower of one partition, from its position towards its end as
        it is now, a poll at a time. It stops at that end, or once polls have brought
        nothing for ``patience_s`` (a follower must not block for long; a fetch slow under
        load is still waited for). Polls are yielded whole: the consumer then stands after
        all they hold. ``caught_up`` says afterwards whether it reached that end."""
        partition = self._only()
        self.caught_up = False
        end = self.end_offset(partition)
        deadline = time.monotonic() + patience_s
        while self.position(partition) < end:
            batch = self.poll(poll_ms).get(partition, [])
            if batch:
                yield batch
                deadline = time.monotonic() + patience_s
            elif time.monotonic() >= deadline:
                return
        self.caught_up = True

    # -- follow on a thread ----------------------------------------------------------------
    def start(
        self,
        handle: Handle,
        poll_ms: int = 200,
        max_records: int | None = None,
        backoff_s: float = 1.0,
    ) -> None:
        """Poll on a thread until ``stop``, handing each partition's records to ``handle``
        (the consumer is the thread's from now on; it closes it when it ends). A failing
        poll is logged and retried after ``backoff_s``; a failing ``handle`` is logged and
        following goes on."""
        if not self._owned:
            raise ValueError(f"{self.name}: a lent consumer is not followed on a thread")
        self._thread = threading.Thread(
            target=self._follow, args=(handle, poll_ms, max_records, backoff_s), daemon=True
        )
        self._thread.name = self.name
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop following and close the consumer."""
        self._stop.set()
        if self._thread is None:
            if self._owned:
                self._consumer.close()
        else:
            self._thread.join(timeout=timeout_s)

    close = stop

    def problem(self) -> str | None:
        """Why the records may not be arriving right now, or None (also once stopped)."""
        if self._thread is None or self._stop.is_set():
            return None
        if not self._thread.is_alive():
            return f"{self.name} stopped"
        if self._failing is not None:
            return f"{self.topic.rpartition('.')[2]} topic unreadable: {self._failing}"
        return None

    def _follow(
        self, handle: Handle, poll_ms: int, max_records: int | None, backoff: float
    ) -> None:
        try:
            while not self._stop.is_set():
                try:
                    batches = self.poll(poll_ms, max_records)
                except Exception as error:
                    self._failing = repr(error)
                    log.exception("%s: poll failed; retrying in %.1f s", self.name, backoff)
                    self._stop.wait(backoff)
                    continue
                self._failing = None
                for partition, records in batches.items():
                    try:
                        handle(partition, records)
                    except Exception:
                        log.exception("%s: handling %d records failed", self.name, len(records))
        finally:
            self._consumer.close()

    def _only(self) -> int:
        """The one partition followed (a poll of several would pass records over)."""
        if len(self._tps) != 1:
            raise ValueError(f"{self.name} follows {len(self._tps)} partitions, not one")
        return int(self._tps[0].partition)

    def _tp(self, partition: int) -> TopicPartition:
        return TopicPartition(self.topic, partition)


def shard_follower(
    bootstrap: Connection, topic: str, shards: int, name: str, missing: str
) -> Follower:
    """A follower of every partition of ``topic``, a topic co-partitioned with the shards:
    with fewer partitions than ``shards`` it is closed and a RuntimeError says so, and
    ``missing`` what that breaks."""
    follower = Follower(bootstrap, topic, name=name)
    found = len(follower.partitions)
    if found < shards:
        follower.close()
        raise RuntimeError(
            f"{topic} has {found} partitions for {shards} shards: {missing} "
            "(`dispatch topics check` says more)"
        )
    return follower
