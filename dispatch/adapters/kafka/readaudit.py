"""The read-audit port (``dispatch.read_audit.ReadAudit``) on the ``<prefix>.operator-reads``
topic: one JSON record per read, key = the operator's id, one partition (the trail in the
order the brokers took it).

``record`` sends with the producers' guarantees (``acks=all``, idempotence: the topic's
in-sync replicas have it when it returns) and waits at most ``RECORD_TIMEOUT_S`` for the
acknowledgement; a read whose record is not acknowledged by then is refused by the API.
``read`` reads the topic from its start to its end as it was when the read began.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import orjson
from kafka.errors import KafkaError

from dispatch.adapters.kafka.config import assign_all, new_consumer, new_producer
from dispatch.adapters.kafka.eventstore.clients import end_offsets, position
from dispatch.adapters.kafka.eventstore.connection import Connection
from dispatch.adapters.kafka.topics import Topics
from dispatch.read_audit import ReadAuditUnavailable, ReadRecord

log = logging.getLogger(__name__)

# A new leader is elected within a few seconds of a broker's death (docs/RELIABILITY.md);
# an operator's read waits that long for its record rather than be refused at once.
RECORD_TIMEOUT_S = 10.0
READ_IDLE_S = 10.0  # a read that has reached no further for this long gives up


class KafkaReadAudit:
    """Sends records to the topic (a producer made at the first record) and reads them."""

    def __init__(self, bootstrap: Connection, prefix: str) -> None:
        self._bootstrap = bootstrap
        self.topic = Topics(prefix).name("operator-reads")
        self._producer: Any = None

    def record(self, entry: ReadRecord) -> None:
        body = orjson.dumps(entry.as_json())
        try:
            if self._producer is None:
                self._producer = new_producer(self._bootstrap)
            sent = self._producer.send(
                self.topic, key=entry.operator_id.encode(), value=body, partition=0
            )
            sent.get(timeout=RECORD_TIMEOUT_S)
        except KafkaError as error:
            raise ReadAuditUnavailable(f"topic {self.topic}: {error}") from error

    def read(self) -> Iterator[ReadRecord]:
        consumer = new_consumer(self._bootstrap)
        try:
            tps = assign_all(consumer, self.topic)
            ends = end_offsets(consumer, tps)
            consumer.seek_to_beginning(*tps)
            for tp in tps:
                reached, idle_since = position(consumer, tp), time.monotonic()
                while reached < ends[tp]:
                    batch = consumer.poll(timeout_ms=500).get(tp, [])
                    for message in batch:
                        yield from _decoded(message.value, message.offset, self.topic)
                    now_at = position(consumer, tp)
                    if now_at > reached:
                        reached, idle_since = now_at, time.monotonic()
                    elif time.monotonic() - idle_since > READ_IDLE_S:
                        raise ReadAuditUnavailable(
                            f"topic {self.topic}: no record read past offset {reached} of "
                            f"{ends[tp]} in {READ_IDLE_S:g} s"
                        )
        finally:
            consumer.close()

    def close(self) -> None:
        if self._producer is not None:
            self._producer.close(timeout=5)
            self._producer = None


def _decoded(value: bytes, offset: int, topic: str) -> Iterator[ReadRecord]:
    try:
        yield ReadRecord.from_json(orjson.loads(value))
    except (orjson.JSONDecodeError, ValueError) as error:
        log.warning("%s: record at offset %d skipped: %s", topic, offset, error)
