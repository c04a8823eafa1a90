"""Client configuration shared by every Kafka client the project builds.

One place decides the settings that matter for correctness: transactional, idempotent
producers with ``acks=all``; ``read_committed`` consumers; no topic auto-creation (a typo
must not create a one-partition topic that breaks co-partitioning).
"""

from __future__ import annotations

from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"


def producer_config(bootstrap: str, **overrides: Any) -> dict[str, Any]:
    """Settings of an idempotent (and, with ``transactional_id``, transactional) producer."""
    config: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "enable_idempotence": True,
        "acks": "all",
        "linger_ms": 0,
        "max_block_ms": 30_000,
        "allow_auto_create_topics": False,
    }
    config.update(overrides)
    return config


def consumer_config(bootstrap: str, **overrides: Any) -> dict[str, Any]:
    """Settings of a ``read_committed`` consumer that commits nothing unless told to."""
    config: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "isolation_level": "read_committed",
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "allow_auto_create_topics": False,
        "max_poll_records": 10_000,
        "max_partition_fetch_bytes": 8 * 1024 * 1024,
    }
    config.update(overrides)
    return config


def new_producer(bootstrap: str, **overrides: Any) -> KafkaProducer:
    return KafkaProducer(**producer_config(bootstrap, **overrides))


def new_consumer(bootstrap: str, **overrides: Any) -> KafkaConsumer:
    return KafkaConsumer(**consumer_config(bootstrap, **overrides))


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
    ends: dict[TopicPartition, int] = consumer.end_offsets(tps)
    for tp in tps:
        at = found.get(tp)
        consumer.seek(tp, at.offset if at is not None else ends[tp])
    return ends
