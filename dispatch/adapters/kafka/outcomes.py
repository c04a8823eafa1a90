"""How a shard's outcomes go onto Kafka: the outcomes topic, each record keyed by its
command id (``wire.encode_outcome``), on the partition of the shard that decided it, with
the command's trace context in a ``traceparent`` header when it has one.

``KafkaBatch`` sends them this way in its transaction, and the command bus contract tests
send them the same way, so what the transport reads back is what a worker writes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from kafka import KafkaProducer

from dispatch.adapters.kafka import wire
from dispatch.adapters.kafka.topics import Topics
from schemas.commands import Outcome


def send_outcomes(
    producer: KafkaProducer,
    topics: Topics,
    shard: int,
    outcomes: Iterable[Outcome],
    traces: Mapping[str, str] | None = None,
) -> None:
    """Send ``outcomes``, decided by ``shard``, with ``producer`` (in its transaction, if
    it has one open); each with the W3C trace context ``traces`` has for its reply key in
    its headers."""
    for outcome in outcomes:
        key, value = wire.encode_outcome(outcome)
        parent = traces.get(outcome.reply_key) if traces else None
        producer.send(
            topics.outcomes,
            key=key,
            value=value,
            partition=shard,
            headers=wire.trace_headers(parent),
        )
