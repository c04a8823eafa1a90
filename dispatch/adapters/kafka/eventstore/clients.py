"""Client settings of the event store's Kafka clients, and the naming of its topics.

One place decides the settings that matter for correctness: transactional, idempotent
producers with ``acks=all``; ``read_committed`` consumers; no topic auto-creation (a typo
must not create a one-partition topic that breaks co-partitioning). The rest of the
project's Kafka clients are built from these too; this module imports nothing of it.
"""

from __future__ import annotations

from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from dispatch.adapters.kafka.eventstore.connection import Connection, connection_config

DEFAULT_PREFIX = "dispatch"


def topic_name(prefix: str, role: str) -> str:
    """Every topic is named ``<prefix>.<role>``."""
    return f"{prefix}.{role}"


DEFAULT_BOOTSTRAP = "127.0.0.1:9092"
# A broker that went away is tried again at most a second apart (kafka-python's backoff
# grows to 30 s, so a client could miss a restarted broker, or a new leader on it, for that
# long).
RECONNECT = {"reconnect_backoff_max_ms": 1_000}


def producer_config(bootstrap: Connection, **overrides: Any) -> dict[str, Any]:
    """Settings of an idempotent (and, with ``transactional_id``, transactional) producer.

    ``acks=all`` and idempotence cannot be overridden (a ValueError): with them a write is
    acknowledged only once ``min.insync.replicas`` replicas have it, and a retried send is
    written once, which is what the topics' durability (``kafka.durability``) rests on.
    """
    weakened = {
        key: overrides[key]
        for key, safe in (("acks", ("all", -1)), ("enable_idempotence", (True,)))
        if key in overrides and overrides[key] not in safe
    }
    if weakened:
        raise ValueError(
            f"producers write with acks=all and idempotence; refusing {weakened}: a write "
            "acknowledged by fewer replicas, or written twice on a retry, may be lost or doubled"
        )
    config: dict[str, Any] = {
        **connection_config(bootstrap),
        **RECONNECT,
        # Leaders looked up at least every 5 s: a producer whose partition's leader died
        # held its records for the dead node for 30 s in a CI run of fault 1 (kafka-python's
        # default is 5 minutes between lookups), though the leadership had moved in 3 s.
        "metadata_max_age_ms": 5_000,
        "enable_idempotence": True,
        "acks": "all",
        "linger_ms": 0,
        "max_block_ms": 30_000,
        "allow_auto_create_topics": False,
    }
    config.update(overrides)
    return config


def consumer_config(bootstrap: Connection, **overrides: Any) -> dict[str, Any]:
    """Settings of a ``read_committed`` consumer that commits nothing unless told to."""
    config: dict[str, Any] = {
        **connection_config(bootstrap),
        **RECONNECT,
        "isolation_level": "read_committed",
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "allow_auto_create_topics": False,
        "max_poll_records": 10_000,
        "max_partition_fetch_bytes": 8 * 1024 * 1024,
    }
    config.update(overrides)
    return config


def new_producer(bootstrap: Connection, **overrides: Any) -> KafkaProducer:
    return KafkaProducer(**producer_config(bootstrap, **overrides))


def new_consumer(bootstrap: Connection, **overrides: Any) -> KafkaConsumer:
    return KafkaConsumer(**consumer_config(bootstrap, **overrides))


OFFSET_ATTEMPTS = 3


def end_offsets(
    consumer: KafkaConsumer, tps: list[TopicPartition], timeout_ms: int | None = None
) -> dict[TopicPartition, int]:
    """``consumer.end_offsets``, asked again when kafka-python 3.0 drops a partition from
    its answer (a ``KeyError`` from inside the call, seen about once in ten runs of the
    benchmark scripts on a loaded broker)."""
    return _offsets(consumer.end_offsets, tps, timeout_ms)


def beginning_offsets(
    consumer: KafkaConsumer, tps: list[TopicPartition], timeout_ms: int | None = None
) -> dict[TopicPartition, int]:
    """``consumer.beginning_offsets``, asked again as ``end_offsets`` is."""
    return _offsets(consumer.beginning_offsets, tps, timeout_ms)


def _offsets(
    ask: Any, tps: list[TopicPartition], timeout_ms: int | None
) -> dict[TopicPartition, int]:
    for attempt in range(OFFSET_ATTEMPTS):
        try:
            found: dict[TopicPartition, int] = ask(tps, timeout_ms=timeout_ms)
            return found
        except KeyError:
            if attempt + 1 == OFFSET_ATTEMPTS:
                raise
    raise AssertionError("unreachable")
