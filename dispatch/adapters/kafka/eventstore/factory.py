"""The infrastructure factory: reads the Kafka settings and builds the shard's recorders."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from threading import RLock
from typing import NoReturn, TypeVar

from eventsourcing.persistence import (
    AggregateRecorder,
    ApplicationRecorder,
    InfrastructureFactory,
    InfrastructureFactoryError,
    TrackingRecorder,
)
from eventsourcing.utils import Environment, EnvType, resolve_topic, strtobool

from dispatch.adapters.kafka.eventstore.clients import DEFAULT_PREFIX, topic_name
from dispatch.adapters.kafka.eventstore.connection import Connection, KafkaConnection
from dispatch.adapters.kafka.eventstore.errors import UnsupportedRecorderError
from dispatch.adapters.kafka.eventstore.recorders import (
    KafkaAggregateRecorder,
    KafkaApplicationRecorder,
)
from dispatch.adapters.kafka.eventstore.restore import restore_events
from dispatch.adapters.kafka.eventstore.store import EventTable
from dispatch.adapters.kafka.eventstore.writer import PartitionWriter, ReadOnlyWriter

_T = TypeVar("_T", bound=type)


@dataclass(frozen=True, slots=True)
class KafkaSettings:
    bootstrap: Connection
    prefix: str
    shard: int
    transactional_id: str
    read_only: bool = False
    restore_timeout_s: float = 300.0
    write_timeout_s: float = 30.0
    events_after: int = 0  # restore only the events after this notification id
    restore_snapshots: bool = True  # read the snapshots partition (else start it empty)

    def topic(self, role: str) -> str:
        """The name of this store's topic of ``role`` (events, snapshots)."""
        return topic_name(self.prefix, role)


class KafkaFactory(InfrastructureFactory[TrackingRecorder]):
    """Builds the recorders of one shard (``KAFKA_SHARD``) from the environment.

    All recorders of a factory share one shard writer (one transactional producer) and one
    local store per topic, restored from the partition when first needed, after the writer
    has fenced any previous owner. The writer closes with the last recorder using it, or
    with the factory.

    Application events only: asking for a tracking or process recorder raises
    ``UnsupportedRecorderError`` before anything is opened (no producer, so no owner of the
    shard is fenced).
    """

    KAFKA_BOOTSTRAP_SERVERS = "KAFKA_BOOTSTRAP_SERVERS"
    KAFKA_TOPIC_PREFIX = "KAFKA_TOPIC_PREFIX"
    # The connection's security (``connection.KafkaConnection``); none set: plaintext.
    KAFKA_SECURITY_PROTOCOL = "KAFKA_SECURITY_PROTOCOL"
    KAFKA_SASL_MECHANISM = "KAFKA_SASL_MECHANISM"
    KAFKA_SASL_USERNAME = "KAFKA_SASL_USERNAME"
    KAFKA_SASL_PASSWORD = "KAFKA_SASL_PASSWORD"
    KAFKA_SSL_CAFILE = "KAFKA_SSL_CAFILE"
    KAFKA_SHARD = "KAFKA_SHARD"
    KAFKA_TRANSACTIONAL_ID = "KAFKA_TRANSACTIONAL_ID"
    KAFKA_READ_ONLY = "KAFKA_READ_ONLY"
    KAFKA_RESTORE_TIMEOUT = "KAFKA_RESTORE_TIMEOUT"
    KAFKA_WRITE_TIMEOUT = "KAFKA_WRITE_TIMEOUT"
    KAFKA_EVENTS_AFTER = "KAFKA_EVENTS_AFTER"
    KAFKA_RESTORE_SNAPSHOTS = "KAFKA_RESTORE_SNAPSHOTS"

    aggregate_recorder_class = KafkaAggregateRecorder
    application_recorder_class = KafkaApplicationRecorder

    def __init__(self, env: Environment | EnvType | None) -> None:
        super().__init__(env)
        self.settings = self._read_settings()
        self._lock = RLock()
        self._writer: PartitionWriter | None = None
        self._tables: dict[str, EventTable] = {}

    def aggregate_recorder(self, purpose: str = "events") -> AggregateRecorder:
        if purpose not in ("events", "snapshots"):
            raise InfrastructureFactoryError(f"no Kafka topic for recorder purpose {purpose!r}")
        topic = self.settings.topic(purpose)
        return self.aggregate_recorder_class(
            self.writer(),
            self.settings.shard,
            topic,
            self._table(purpose),
            batched=purpose == "events",
        )

    def application_recorder(self) -> ApplicationRecorder:
        cls = self._resolve(self.APPLICATION_RECORDER_TOPIC, self.application_recorder_class)
        return cls(
            self.writer(), self.settings.shard, self.settings.topic("events"), self._table("events")
        )

    def tracking_recorder(
        self, tracking_recorder_class: type[TrackingRecorder] | None = None
    ) -> NoReturn:
        raise self._unsupported("tracking")

    def process_recorder(self) -> NoReturn:
        raise self._unsupported("process")

    def writer(self) -> PartitionWriter:
        """The shard writer (created, and the previous owner fenced, on first use)."""
        with self._lock:
            if self._writer is None or self._writer.closed:
                s = self.settings
                if s.read_only:
                    self._writer = ReadOnlyWriter(s.transactional_id)
                else:
                    self._writer = PartitionWriter(
                        s.bootstrap, s.transactional_id, s.write_timeout_s
                    )
            return self._writer

    def close(self) -> None:
        with self._lock:
            if self._writer is not None:
                self._writer.close()

    # -- internals ------------------------------------------------------------------------------
    def _table(self, role: str) -> EventTable:
        with self._lock:
            table = self._tables.get(role)
            if table is None:
                self.writer()  # fence first: then the partition's end is stable
                s = self.settings
                after = s.events_after if role == "events" else 0
                table = EventTable(monotonic=role == "events", floor=after)
                topic = s.topic(role)
                if role == "events" or s.restore_snapshots:
                    self._restore(
                        lambda: restore_events(
                            s.bootstrap, topic, s.shard, table, s.restore_timeout_s, after
                        )
                    )
                self._tables[role] = table
            return table

    def _restore(self, read: Callable[[], int]) -> None:
        try:
            read()
        except BaseException:
            self.close()  # a factory that cannot read its shard must not keep the producer
            raise

    def _unsupported(self, kind: str) -> UnsupportedRecorderError:
        keys = " or ".join(self.env.create_keys(self.PERSISTENCE_MODULE))
        return UnsupportedRecorderError(
            f"{__package__} records application events only: it has no {kind} recorder. "
            f"Give the application that needs one a persistence module that has it (set "
            f"{keys}, e.g. to eventsourcing.sqlite or eventsourcing.postgres)."
        )

    def _resolve(self, key: str, default: _T) -> _T:
        topic = self.env.get(key)
        if not topic:
            return default
        cls = resolve_topic(topic)
        if not (isinstance(cls, type) and issubclass(cls, default)):
            raise InfrastructureFactoryError(f"{key}={topic} is not a subclass of {default}")
        return cls  # type: ignore[return-value]

    def _read_settings(self) -> KafkaSettings:
        bootstrap = self.env.get(self.KAFKA_BOOTSTRAP_SERVERS)
        if not bootstrap:
            keys = ", ".join(self.env.create_keys(self.KAFKA_BOOTSTRAP_SERVERS))
            raise InfrastructureFactoryError(f"Kafka bootstrap servers not set (env keys: {keys})")
        prefix = self.env.get(self.KAFKA_TOPIC_PREFIX) or DEFAULT_PREFIX
        shard_text = self.env.get(self.KAFKA_SHARD)
        if shard_text is None or not shard_text.strip().isdigit():
            keys = ", ".join(self.env.create_keys(self.KAFKA_SHARD))
            raise InfrastructureFactoryError(
                f"Kafka shard (partition index) not set or invalid: {shard_text!r} "
                f"(env keys: {keys})"
            )
        shard = int(shard_text)
        return KafkaSettings(
            bootstrap=self._connection(bootstrap),
            prefix=prefix,
            shard=shard,
            transactional_id=self.env.get(self.KAFKA_TRANSACTIONAL_ID) or f"{prefix}.shard-{shard}",
            read_only=strtobool(self.env.get(self.KAFKA_READ_ONLY) or "no"),
            restore_timeout_s=float(self.env.get(self.KAFKA_RESTORE_TIMEOUT) or 300),
            write_timeout_s=float(self.env.get(self.KAFKA_WRITE_TIMEOUT) or 30),
            events_after=self._count(self.KAFKA_EVENTS_AFTER),
            restore_snapshots=strtobool(self.env.get(self.KAFKA_RESTORE_SNAPSHOTS) or "yes"),
        )

    def _connection(self, servers: str) -> Connection:
        protocol = self.env.get(self.KAFKA_SECURITY_PROTOCOL) or "PLAINTEXT"
        username = self.env.get(self.KAFKA_SASL_USERNAME) or None
        cafile = self.env.get(self.KAFKA_SSL_CAFILE) or None
        password = self.env.get(self.KAFKA_SASL_PASSWORD) or None
        if protocol == "PLAINTEXT" and username is None and password is None and cafile is None:
            return servers
        try:
            return KafkaConnection(
                servers,
                protocol,  # type: ignore[arg-type]  # checked by KafkaConnection
                self.env.get(self.KAFKA_SASL_MECHANISM) or "SCRAM-SHA-512",  # type: ignore[arg-type]
                username,
                password,
                Path(cafile) if cafile else None,
            )
        except ValueError as error:
            raise InfrastructureFactoryError(f"Kafka connection: {error}") from error

    def _count(self, key: str) -> int:
        text = (self.env.get(key) or "0").strip()
        if not text.isdigit():
            keys = ", ".join(self.env.create_keys(key))
            raise InfrastructureFactoryError(
                f"{key} must be a whole number >= 0: {text!r} ({keys})"
            )
        return int(text)
