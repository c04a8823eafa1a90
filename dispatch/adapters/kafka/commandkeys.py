"""The one-time keys of sealed commands on Kafka (``dispatch.sealed_commands``,
docs/PRIVACY.md "Sealed commands"): the topic ``<prefix>.command-keys``, co-partitioned
(partition = the shard that decides the command), records as the subject keys'
(``keystore.key_record``): key = the subject id, value = ``{"kid", "key"}`` (or the key
wrapped under a key-encryption key: ``{"kid", "kek", "wrapped"}``), and a tombstone (null)
once the command is decided.

The API makes a key with ``CommandKeyWriter.make`` before it sends the command: written by
its idempotent producer and acknowledged by the in-sync replicas (``acks=all``) before it
returns, so the key is in the log before the command that needs it. The worker reads the
keys with a ``KafkaKeyStore`` on this topic (``keys_outside_batch=False``: it makes none)
and tombstones a command's key in the transaction of the batch that decides the command
(``tombstone``)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from dispatch.adapters.kafka.eventstore.clients import new_producer
from dispatch.adapters.kafka.eventstore.connection import Connection
from dispatch.adapters.kafka.keystore import SEND_TIMEOUT_S, key_record
from dispatch.domain.ids import shard_of
from dispatch.privacy import KeyWrap, NoWrap, SubjectKey, new_subject_key


class CommandKeyWriter:
    """The API's writer of command keys (one producer, thread-safe)."""

    def __init__(self, bootstrap: Connection, topic: str, wrap: KeyWrap | None = None) -> None:
        self.topic = topic
        self.wrap = wrap if wrap is not None else NoWrap()
        self._producer = new_producer(bootstrap)

    def make(self, subject: UUID) -> SubjectKey:
        """A new key for ``subject`` (a fresh id nobody else makes a key for), in the log
        when this returns; raises when the log did not acknowledge it."""
        made = new_subject_key(subject)
        partition, key, value = key_record(made, self.wrap)
        sent = self._producer.send(self.topic, key=key, value=value, partition=partition)
        sent.get(timeout=SEND_TIMEOUT_S)
        return made

    def close(self) -> None:
        self._producer.close(timeout=5)


def tombstone(producer: Any, topic: str, subject: UUID) -> None:
    """Delete a command's key: its tombstone, sent by ``producer`` (a batch's, in its
    transaction)."""
    producer.send(topic, key=str(subject).encode(), value=None, partition=shard_of(subject))
