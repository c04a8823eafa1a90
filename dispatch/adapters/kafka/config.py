"""Kafka clients for the rest of the project: the event store's client settings
(``eventstore.clients``, the one place that decides them), an admin client, and helpers
to assign and position consumers."""

from __future__ import annotations

from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

from dispatch.adapters.kafka.eventstore.clients import (
    OFFSETS_TIMEOUT_MS,
    RECONNECT,
    TIMEOUTS,
    bootstrapped,
    end_offsets,
    new_consumer,
    new_producer,
)
from dispatch.adapters.kafka.eventstore.connection import (
    Connection,
    KafkaConnection,
    connection_config,
)
from dispatch.settings import Settings

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"
__all__ = [
    "DEFAULT_BOOTSTRAP",
    "assign_all",
    "new_admin",
    "new_consumer",
    "new_producer",
    "seek_since",
]


def connection_of(settings: Settings) -> Connection:
    """How the process with ``settings`` reaches the brokers: the bootstrap list alone when
    nothing of the security is set, else a ``KafkaConnection`` (a ValueError saying what is
    wrong or missing: a password file unreadable, SASL with no credentials, ...)."""
    if settings.kafka_bootstrap is None:
        raise ValueError("no Kafka bootstrap servers: set DISPATCH_KAFKA_BOOTSTRAP or pass --kafka")
    password = settings.kafka_password.get_secret_value() if settings.kafka_password else None
    if settings.kafka_password_file is not None:
        if password is not None:
            raise ValueError(
                "set DISPATCH_KAFKA_PASSWORD or DISPATCH_KAFKA_PASSWORD_FILE, not both"
            )
        try:
            lines = settings.kafka_password_file.read_text().splitlines()
        except OSError as error:
            raise ValueError(
                f"cannot read the Kafka password file {settings.kafka_password_file}: "
                f"{error.strerror or error}"
            ) from error
        password = lines[0] if lines and lines[0] else None  # the first line, as it is
        if password is None:
            raise ValueError(f"the Kafka password file {settings.kafka_password_file} is empty")
    plain = (
        settings.kafka_security_protocol == "PLAINTEXT"
        and settings.kafka_username is None
        and password is None
        and settings.kafka_ssl_cafile is None
    )
    if plain:
        return settings.kafka_bootstrap
    return KafkaConnection(
        settings.kafka_bootstrap,
        settings.kafka_security_protocol,
        settings.kafka_sasl_mechanism,
        settings.kafka_username,
        password,
        settings.kafka_ssl_cafile,
    )


def admin_config(bootstrap: Connection, **overrides: Any) -> dict[str, Any]:
    """Settings of an admin client: the event store's timeouts (``clients.TIMEOUTS``). An
    admin call given no ``timeout_ms`` waits at most the request timeout in all (5 s)."""
    config: dict[str, Any] = {**connection_config(bootstrap), **RECONNECT, **TIMEOUTS}
    config.update(overrides)
    return config


def new_admin(bootstrap: Connection, **overrides: Any) -> KafkaAdminClient:
    return bootstrapped(lambda c: KafkaAdminClient(**c), admin_config(bootstrap, **overrides))


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
    found = consumer.offsets_for_times(
        dict.fromkeys(tps, max(0, int(since_s * 1000))), timeout_ms=OFFSETS_TIMEOUT_MS
    )
    ends = end_offsets(consumer, tps)
    for tp in tps:
        at = found.get(tp)
        consumer.seek(tp, at.offset if at is not None else ends[tp])
    return ends
