"""The read-audit port (``dispatch.read_audit.ReadAudit``) on the ``<prefix>.operator-reads``
topic: one JSON record per read, key = the operator's id, one partition (the trail in the
order the brokers took it).

The writer is made when the serving process starts: it checks that the topic exists (made
by `dispatch topics create`; a topic the brokers would make on first use would have none of
its settings) and makes its producer. ``record`` sends with the producers' guarantees
(``acks=all``, idempotence: the topic's in-sync replicas have it when it returns), all
within ``RECORD_TIMEOUT_S``: the wait for the topic's metadata, the send and its
acknowledgement. A record that is not acknowledged by then is refused to its read; the
producer may still deliver it later (``delivery_timeout_ms``), so on Kafka the trail may
hold a read that was refused: it was asked for. ``read_kafka_records`` reads the topic from
its start to its end as it was when the read began.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import orjson

from dispatch.adapters.kafka.config import assign_all, new_consumer, new_producer
from dispatch.adapters.kafka.eventstore.clients import end_offsets, position
from dispatch.adapters.kafka.eventstore.connection import Connection
from dispatch.adapters.kafka.topics import Topics
from dispatch.read_audit import ReadAuditUnavailable, ReadRecord

# A new leader is elected within a few seconds of a broker's death (docs/RELIABILITY.md);
# an operator's read waits that long for its record rather than be refused at once.
RECORD_TIMEOUT_S = 10.0
READ_IDLE_S = 10.0  # a read that has reached no further for this long gives up


class KafkaReadAudit:
    """Sends records to the topic. Made only where the topic exists (else RuntimeError)."""

    def __init__(self, bootstrap: Connection, prefix: str) -> None:
        self._bootstrap = bootstrap
        self.topic = Topics(prefix).name("operator-reads")
        _require_topic(bootstrap, self.topic)
        self._lock = threading.Lock()
        self._producer: Any = None
        self._producer = self._new_producer()

    def _new_producer(self) -> Any:
        timeout_ms = int(RECORD_TIMEOUT_S * 1000)
        return new_producer(
            self._bootstrap,
            max_block_ms=timeout_ms,  # the metadata wait within a send
            delivery_timeout_ms=timeout_ms + 1_000,  # not retried long after it was refused
        )

    def record(self, entry: ReadRecord) -> None:
        body = orjson.dumps(entry.as_json())
        deadline = time.monotonic() + RECORD_TIMEOUT_S
        try:
            with self._lock:
                if self._producer is None:  # closed, and used again (a lifespan ran twice)
                    self._producer = self._new_producer()
                producer = self._producer
            sent = producer.send(self.topic, key=entry.operator_id.encode(), value=body)
            sent.get(timeout=max(0.0, deadline - time.monotonic()))
        except Exception as error:  # kafka-python's errors, and its ValueErrors on metadata
            raise ReadAuditUnavailable(f"topic {self.topic}: {error!r}") from error

    def read(self) -> Iterator[ReadRecord]:
        return read_kafka_records(self._bootstrap, self.topic)

    def close(self) -> None:
        with self._lock:
            producer, self._producer = self._producer, None
        if producer is not None:
            producer.close(timeout=5)


def _require_topic(bootstrap: Connection, topic: str) -> None:
    consumer = new_consumer(bootstrap)
    try:
        if not consumer.partitions_for_topic(topic):
            raise RuntimeError(
                f"topic {topic} is missing: run `dispatch topics create` (and, on a secured "
                "cluster, `dispatch topics acls --apply`) to add it"
            )
    finally:
        consumer.close()


def read_kafka_records(bootstrap: Connection, topic: str) -> Iterator[ReadRecord]:
    """Every record of ``topic`` from its start to its end as it was when the read began; a
    record that cannot be decoded is a ``ValueError`` naming its offset."""
    consumer = new_consumer(bootstrap)
    try:
        tps = assign_all(consumer, topic)
        ends = end_offsets(consumer, tps)
        consumer.seek_to_beginning(*tps)
        for tp in tps:
            reached, idle_since = position(consumer, tp), time.monotonic()
            while reached < ends[tp]:
                for message in consumer.poll(timeout_ms=500).get(tp, []):
                    yield _decoded(message.value, message.offset, topic)
                now_at = position(consumer, tp)
                if now_at > reached:
                    reached, idle_since = now_at, time.monotonic()
                elif time.monotonic() - idle_since > READ_IDLE_S:
                    raise ReadAuditUnavailable(
                        f"topic {topic}: no record read past offset {reached} of {ends[tp]} "
                        f"in {READ_IDLE_S:g} s"
                    )
    finally:
        consumer.close()


def _decoded(value: bytes, offset: int, topic: str) -> ReadRecord:
    try:
        return ReadRecord.from_json(orjson.loads(value))
    except (orjson.JSONDecodeError, ValueError) as error:
        raise ValueError(f"{topic}: the record at offset {offset} is damaged: {error}") from None
