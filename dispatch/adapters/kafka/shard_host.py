"""One shard hosted by a Kafka worker: its application and shard writer, its worker
(matcher included) and its clock. Its batches are run by ``batch.KafkaBatch``."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from dispatch.adapters.kafka import wire
from dispatch.adapters.kafka.checkpoints import CheckpointRecords, KafkaCheckpointStore
from dispatch.adapters.kafka.eventstore.recorders import KafkaRecorder
from dispatch.adapters.kafka.eventstore.writer import PartitionWriter
from dispatch.adapters.kafka.follower import Follower
from dispatch.adapters.kafka.topics import Topics
from dispatch.checkpoints import CheckpointWriter
from dispatch.matching.matcher import Matcher
from dispatch.messages import Inbound
from dispatch.settings import Settings
from dispatch.shard.application import ShardApplication
from dispatch.shard.worker import ShardWorker

log = logging.getLogger(__name__)


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
    ) -> None:
        self.shard, self.app, self.writer, self.worker = shard, app, writer, worker
        self.stream_clock = clock
        self.checkpoints = checkpoints  # sends the batches' checkpoint chunks
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
    app_factory: Callable[[int], ShardApplication],
    matcher_factory: Callable[[], Matcher],
    clock_mode: str,
) -> ShardHost:
    """Restore a shard (log -> local store; newest usable checkpoint + the events after it
    -> matcher) and warm its matcher with recent pings. ``app_factory`` builds the shard's
    application on this Kafka store (the composition root's), ``matcher_factory`` its
    matcher."""
    assert settings.kafka_bootstrap is not None
    store = KafkaCheckpointStore(settings.kafka_bootstrap, topics.checkpoints, shard)
    store.require_topic()  # before the application starts a producer
    app = app_factory(shard)
    stream_clock = StreamClock() if clock_mode == "stream" else None
    clock: Callable[[], float] = stream_clock if stream_clock is not None else time.time
    recorder = app.recorder
    if not isinstance(recorder, KafkaRecorder):
        raise TypeError(f"shard {shard}: a Kafka worker needs the Kafka event store")
    records = CheckpointRecords(topics.checkpoints, shard)
    writer = CheckpointWriter(settings.checkpoint_every_events, settings.checkpoint_chunk_rows)
    worker = ShardWorker(
        shard, app, matcher_factory, clock,
        checkpoints=writer, checkpoint_store=store, chunks_with_events=False,
    )  # fmt: skip
    worker.restore()
    records.restored(*store.found())
    if stream_clock is not None:
        stream_clock.now = worker.last_event_time
    warm_up(settings, topics, shard, worker, clock())
    return ShardHost(shard, app, recorder.writer, worker, stream_clock, records)


def warm_up(settings: Settings, topics: Topics, shard: int, worker: ShardWorker, now: float) -> int:
    """Feed the matcher the pings of the last TTL, so matching resumes at once after a
    takeover instead of waiting a full ping period. Returns the pings read. (Records that
    do not decode are skipped here: the batch that reads them from the group's position
    dead-letters them.)"""
    assert settings.kafka_bootstrap is not None
    follower = Follower(
        settings.kafka_bootstrap, topics.locations, [shard], name=f"shard {shard} warm-up"
    )
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
