"""Kafka clients for the rest of the project: the event store's client settings
(``eventstore.clients``, the one place that decides them), an admin client, and helpers
to assign and position consumers."""

from __future__ import annotations

from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

from dispatch.adapters.kafka.eventstore.clients import (
    end_offsets,
    new_consumer,
    new_producer,
)

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"
__all__ = [
    "DEFAULT_BOOTSTRAP",
    "assign_all",
    "new_admin",
    "new_consumer",
    "new_producer",
    "seek_since",
]


def new_admin(bootstrap: str, **overrides: Any) -> KafkaAdminClient:
    config: dict[str, Any] = {"bootstrap_servers": bootstrap, "request_timeout_ms": 15_000}
    config.update(overrides)
    return KafkaAdminClient(**config)


def assign_all(consumer: KafkaConsumer, topic: str) -> list[TopicPartition]:
    """Assign every partition of ``topic`` to ``consumer`` (no group), in partition order;
    a missing topic is a RuntimeError that says how to create it."""
    partitions = consumer.partitions_for_topic(topic)
    if not partitions:
        raise RuntimeError(f"topic {topic} is missing: run `dispatch topics create` first")
    tps = [TopicPartition(topic, p) for p in sorted(partitions)]
    consumer.assign(tps)
    return tps


def seek_since(
    consumer: KafkaConsumer, tps: list[TopicPartition], since_s: float
) -> dict[TopicPartition, int]:
    """Put each partition at its first record timestamped at or after ``since_s`` (epoch
    seconds), or at its end when there is none; returns the end offsets."""
    found = consumer.offsets_for_times(dict.fromkeys(tps, max(0, int(since_s * 1000))))
    ends = end_offsets(consumer, tps)
    for tp in tps:
        at = found.get(tp)
        consumer.seek(tp, at.offset if at is not None else ends[tp])
    return ends
