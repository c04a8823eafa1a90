"""One shard hosted by a Kafka worker: its application and shard writer, its worker
(matcher included) and its clock. Its batches are run by ``batch.KafkaBatch``."""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable, Mapping
from typing import Protocol

from kafka import KafkaConsumer

from dispatch.adapters.kafka import wire
from dispatch.adapters.kafka.checkpoints import CheckpointRecords, KafkaCheckpointStore
from dispatch.adapters.kafka.config import connection_of
from dispatch.adapters.kafka.eventstore.clients import new_consumer
from dispatch.adapters.kafka.eventstore.codec import EVENTS_PER_RECORD, DecodedEvent
from dispatch.adapters.kafka.eventstore.connection import Connection
from dispatch.adapters.kafka.eventstore.recorders import KafkaAggregateRecorder, KafkaRecorder
from dispatch.adapters.kafka.eventstore.restore import lend_consumer
from dispatch.adapters.kafka.eventstore.writer import PartitionWriter
from dispatch.adapters.kafka.follower import Follower
from dispatch.adapters.kafka.keystore import KafkaKeyStore
from dispatch.adapters.kafka.topics import Topics
from dispatch.checkpoints import CheckpointWriter, Restored, restore_matcher
from dispatch.markets import handoffs
from dispatch.matching.matcher import Matcher
from dispatch.privacy import Opener, as_is
from dispatch.settings import Settings
from dispatch.shard.application import ShardApplication
from dispatch.shard.inbound import Inbound
from dispatch.shard.live import LiveAggregates
from dispatch.shard.worker import ShardWorker

log = logging.getLogger(__name__)


class AppFactory(Protocol):
    """Builds a shard's application on the Kafka store; ``env`` adds to its environment."""

    def __call__(self, shard: int, env: Mapping[str, str] | None = None) -> ShardApplication: ...


class StreamClock:
    """Time as the input stream tells it: the latest command or ping time seen (monotonic).

    Used when a simulator drives simulated time through Kafka; real deployments use the
    wall clock."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def advance(self, inbound: Inbound) -> None:
        latest = max((p.at for p in inbound.pings), default=self.now)
        latest = max([latest, *(c.issued_at.timestamp() for c in inbound.commands)])
        self.now = max(self.now, latest)


class ShardHost:
    def __init__(
        self,
        shard: int,
        app: ShardApplication,
        writer: PartitionWriter,
        worker: ShardWorker,
        clock: StreamClock | None,
        checkpoints: CheckpointRecords | None = None,
        tells_others: bool = False,
        keys: KafkaKeyStore | None = None,
    ) -> None:
        """``tells_others``: the city has other shards, whose matchers this shard's batches
        tell of its drivers' availability (adapters/kafka/availability.py); the first
        committed one tells of all of them. ``keys``: the process's subject keys, which
        each batch joins, when the application seals (docs/PRIVACY.md)."""
        self.shard, self.app, self.writer, self.worker = shard, app, writer, worker
        self.stream_clock = clock
        self.checkpoints = checkpoints  # sends the batches' checkpoint chunks
        self.tells_others = self.announce = tells_others
        self.keys = keys
        self._last_tick = 0.0

    def advance(self, inbound: Inbound) -> None:
        """A batch is about to run: move the stream clock, note the tick."""
        if self.stream_clock is not None:
            self.stream_clock.advance(inbound)
        self._last_tick = time.monotonic()

    def tick_due(self, every_s: float) -> bool:
        return time.monotonic() - self._last_tick >= every_s

    def close(self) -> None:
        self.app.close()


def open_shard(
    settings: Settings,
    shard: int,
    topics: Topics,
    app_factory: AppFactory,
    matcher_factory: Callable[[], Matcher],
    clock_mode: str,
    keys: KafkaKeyStore | None = None,
    open: Opener = as_is,
) -> ShardHost:
    """Restore a shard and warm its matcher with recent pings. ``keys`` and ``open``: the
    process's subject keys, and how the checkpoint's sealed ride rows are opened, when its
    applications seal (docs/PRIVACY.md).

    The newest usable checkpoint is chosen first. When it carries the live aggregates, the
    local store reads only the events after it (``KAFKA_EVENTS_AFTER``) and starts its
    snapshots from the checkpoint's: cost follows the live state and the tail, not the
    history. Otherwise (no checkpoint, or one without aggregates) the store reads the whole
    partition, and the matcher starts from the checkpoint or from nothing.

    The cyclic collector pauses meanwhile: a restore builds hundreds of thousands of
    long-lived objects and few cycles, and the collections their allocations set off
    rescanned the growing heap again and again (about a tenth of the takeover). A Kafka
    worker keeps it paused until the shards it opens are frozen (``worker._opening``)."""
    assert settings.kafka_bootstrap is not None
    started = time.perf_counter()
    was_enabled = gc.isenabled()
    gc.disable()
    # One consumer reads the checkpoint, the log's tail and the pings in turn.
    reader: KafkaConsumer | None = None
    try:
        reader = new_consumer(connection_of(settings), group_id=None,
                              client_id=f"shard-{shard}-restore")  # fmt: skip
        with lend_consumer(reader):
            return _restore(settings, shard, topics, app_factory, matcher_factory,
                            clock_mode, reader, started, keys, open)  # fmt: skip
    finally:
        if reader is not None:
            reader.close()
        if was_enabled:
            gc.enable()


def _restore(
    settings: Settings,
    shard: int,
    topics: Topics,
    app_factory: AppFactory,
    matcher_factory: Callable[[], Matcher],
    clock_mode: str,
    reader: KafkaConsumer,
    started: float,
    keys: KafkaKeyStore | None,
    open: Opener,
) -> ShardHost:
    assert settings.kafka_bootstrap is not None
    store = KafkaCheckpointStore(connection_of(settings), topics.checkpoints, shard)
    store.consumer = reader
    try:
        store.require_topic()  # before the application starts a producer
        log_end = _events_end(connection_of(settings), topics.events, shard, reader)
        loaded, chosen = restore_matcher(store, matcher_factory, log_end, shard, open=open)
        tail_only = chosen is not None and chosen.aggregates is not None
        read = time.perf_counter()
        if tail_only:
            assert chosen is not None
            app = app_factory(shard, _tail_env(chosen.position))
            _load_snapshots(app, chosen)
        else:
            app = app_factory(shard)
    finally:
        store.consumer = None  # later reads (a restore after a failed batch) make their own
    opened = time.perf_counter()
    stream_clock = StreamClock() if clock_mode == "stream" else None
    clock: Callable[[], float] = stream_clock if stream_clock is not None else time.time
    recorder = app.recorder
    if not isinstance(recorder, KafkaRecorder):
        raise TypeError(f"shard {shard}: a Kafka worker needs the Kafka event store")
    # While the tail is folded: the topics the shard's batches send to.
    recorder.writer.prefetch(_sent_to(topics, settings.shards, keys is not None))
    records = CheckpointRecords(topics.checkpoints, shard)
    writer = CheckpointWriter(
        settings.checkpoint_every_events,
        settings.checkpoint_chunk_rows,
        seal_ride=app.seal_ride,
        seal_place=app.seal_place,
    )
    worker = ShardWorker(
        shard, app, matcher_factory, clock,
        checkpoints=writer, checkpoint_store=store, chunks_with_events=False,
        live=LiveAggregates(settings.idempotency_window_s), peers=range(settings.shards),
        **handoffs(settings),
    )  # fmt: skip
    if tail_only:
        assert chosen is not None
        worker.floor = chosen.position
    events = worker.restore(chosen, loaded)
    records.restored(*store.found())
    if stream_clock is not None:
        stream_clock.now = worker.last_event_time
    folded = time.perf_counter()
    pings = warm_up(settings, topics, shard, worker, clock(), reader)
    log.info(
        "shard %s: checkpoint chosen in %.2f s (%s); log %s read in %.2f s; %d events "
        "folded in %.2f s; %d pings warmed in %.2f s", shard, read - started,
        f"at {chosen.position}" if chosen is not None else "none",
        "tail" if tail_only else "whole", opened - read, events, folded - opened, pings,
        time.perf_counter() - folded,
    )  # fmt: skip
    tells_others = settings.shards > 1
    if app.sealer is None:
        keys = None  # nothing sealed: no key is made
    host = ShardHost(shard, app, recorder.writer, worker, stream_clock, records, tells_others, keys)
    # Tell the others of all its drivers only where nothing was ever told (compaction keeps
    # each driver's last record): not at every takeover.
    host.announce = tells_others and _partition_empty(
        settings, topics.driver_availability, shard, reader
    )
    return host


def _sent_to(topics: Topics, shards: int, keys: bool = False) -> list[str]:
    """The topics a shard's batches send to."""
    sent = [topics.events, topics.outcomes, topics.snapshots, topics.checkpoints,
            topics.dead_letters]  # fmt: skip
    if keys:
        sent.append(topics.subject_keys)
    if shards > 1:
        sent += [topics.shard_messages, topics.driver_availability]
    return sent


def _partition_empty(
    settings: Settings, topic: str, shard: int, reader: KafkaConsumer | None = None
) -> bool:
    """Whether the partition holds no committed record (an aborted transaction's records
    and markers move its end offset, so the records are read, read_committed)."""
    assert settings.kafka_bootstrap is not None
    follower = Follower(connection_of(settings), topic, [shard], name=f"shard {shard} told",
                        consumer=reader)  # fmt: skip
    try:
        if follower.end_offset(shard) == 0:
            return True
        follower.seek(shard, follower.beginning_offset(shard))
        return not any(batch for batch in follower.read_to_end())
    finally:
        follower.close()


def _events_end(bootstrap: Connection, topic: str, shard: int, reader: KafkaConsumer | None) -> int:
    """An upper bound of the shard's log positions now (a checkpoint beyond it belongs to
    another log: a topic deleted and made again)."""
    follower = Follower(bootstrap, topic, [shard], name=f"shard {shard} log end", consumer=reader)
    try:
        return follower.end_offset(shard) * EVENTS_PER_RECORD
    finally:
        follower.close()


def _tail_env(position: int) -> dict[str, str]:
    return {"KAFKA_EVENTS_AFTER": str(position), "KAFKA_RESTORE_SNAPSHOTS": "no"}


def _load_snapshots(app: ShardApplication, chosen: Restored) -> None:
    """The checkpoint's aggregates into the local snapshots store, where the repository
    finds them (then their events after each snapshot's version, from the tail)."""
    snapshots = app.snapshots
    recorder = snapshots.recorder if snapshots is not None else None
    if not isinstance(recorder, KafkaAggregateRecorder):
        raise TypeError("restoring from a checkpoint's aggregates needs the Kafka snapshots store")
    rows = [
        DecodedEvent(aggregate_id, True, version, topic, state)
        for aggregate_id, (version, topic, state) in chosen.snapshots()
    ]
    recorder.table.load_record(1, rows)


def warm_up(
    settings: Settings,
    topics: Topics,
    shard: int,
    worker: ShardWorker,
    now: float,
    reader: KafkaConsumer | None = None,
) -> int:
    """Feed the matcher the pings of the last TTL, so matching resumes at once after a
    takeover instead of waiting a full ping period. Returns the pings read. (Records that
    do not decode are skipped here: the batch that reads them from the group's position
    dead-letters them.) ``reader``: a consumer to read with (else a new one)."""
    assert settings.kafka_bootstrap is not None
    follower = Follower(
        connection_of(settings), topics.locations, [shard], name=f"shard {shard} warm-up",
        consumer=reader,
    )  # fmt: skip
    try:
        follower.seek_since(now - settings.ping_ttl_s)
        count = 0
        for records in follower.read_to_end():
            for record in records:
                pings, _ = wire.decode_pings(record.value, "warm-up")
                for p in pings:
                    worker.matcher.ping(p.driver_id, p.lat, p.lng, p.at)
                count += len(pings)
        return count
    finally:
        follower.close()
