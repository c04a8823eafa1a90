"""How a shard's outcomes go onto Kafka: the outcomes topic, each record keyed by its
command id (``wire.encode_outcome``), on the partition of the shard that decided it.

``KafkaBatch`` sends them this way in its transaction, and the command bus contract tests
send them the same way, so what the transport reads back is what a worker writes.
"""

from __future__ import annotations

from collections.abc import Iterable

from kafka import KafkaProducer

from dispatch.adapters.kafka import wire
from dispatch.adapters.kafka.topics import Topics
from schemas.commands import Outcome


def send_outcomes(
    producer: KafkaProducer, topics: Topics, shard: int, outcomes: Iterable[Outcome]
) -> None:
    """Send ``outcomes``, decided by ``shard``, with ``producer`` (in its transaction, if
    it has one open)."""
    for outcome in outcomes:
        key, value = wire.encode_outcome(outcome)
        producer.send(topics.outcomes, key=key, value=value, partition=shard)
