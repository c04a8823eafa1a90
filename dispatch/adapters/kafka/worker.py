"""``dispatch worker``: shard workers on Kafka, placed by a consumer group.

The process joins the group on the co-partitioned commands and locations topics (range
assignment keeps partition n of both with one member) and hosts one shard application and
matcher per owned partition. Each batch of a shard is ONE Kafka transaction: the new events
(through the Kafka persistence module), the outcomes, dead letters and the consumed
offsets (``send_offsets_to_transaction``) commit together, so after a crash the batch is
either wholly visible or redone from the committed offsets. A zombie that lost its shard is
fenced by the shard's transactional id.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kafka import ConsumerRebalanceListener, OffsetAndMetadata, TopicPartition
from kafka.coordinator.assignors.range import RangePartitionAssignor

from dispatch.adapters.kafka import wire
from dispatch.adapters.kafka.batch import KafkaBatch, Offsets
from dispatch.adapters.kafka.config import new_consumer
from dispatch.adapters.kafka.shard_host import ShardHost, open_shard
from dispatch.adapters.kafka.topics import Topics
from dispatch.matching.matcher import Matcher
from dispatch.messages import Inbound, Poison
from dispatch.settings import Settings
from dispatch.shard.application import ShardApplication

log = logging.getLogger(__name__)

SLOW_BATCH_S = 0.25  # batches slower than this are logged with their sizes


@dataclass
class WorkerStats:
    batches: int = 0
    commands: int = 0
    pings: int = 0
    events: int = 0
    aborted: int = 0
    fenced: int = 0
    restored: dict[int, float] = field(default_factory=dict)


class KafkaWorker:
    def __init__(
        self,
        settings: Settings,
        app_factory: Callable[[int], ShardApplication],
        matcher_factory: Callable[[], Matcher],
        clock_mode: str = "wall",
        tick_s: float = 0.2,
        member: str | None = None,
        **consumer_overrides: Any,
    ) -> None:
        assert settings.kafka_bootstrap is not None, "a Kafka worker needs bootstrap servers"
        self.settings, self.clock_mode, self.tick_s = settings, clock_mode, tick_s
        self.app_factory, self.matcher_factory = app_factory, matcher_factory
        self.topics = Topics(settings.topic_prefix)
        self.shards: dict[int, ShardHost] = {}
        self.stats = WorkerStats()
        self._stop = threading.Event()
        options: dict[str, Any] = {
            "group_id": f"{settings.topic_prefix}.workers",
            "client_id": member or "dispatch-worker",
            "partition_assignment_strategy": [RangePartitionAssignor],
            "max_poll_records": 5_000,
            "session_timeout_ms": 10_000,
            "heartbeat_interval_ms": 1_000,
            "max_poll_interval_ms": 120_000,
            "metadata_max_age_ms": 30_000,
        }
        self.consumer = new_consumer(settings.kafka_bootstrap, **(options | consumer_overrides))
        topics = [self.topics.commands, self.topics.locations]
        self._await_topics(topics)
        self.consumer.subscribe(topics, listener=_Rebalance(self))

    def _await_topics(self, topics: list[str], timeout_s: float = 30.0) -> None:
        """Join the group only once the topics' partitions are known: a member that joins
        before would be assigned nothing until its next metadata refresh."""
        deadline = time.monotonic() + timeout_s
        while not all(self.consumer.partitions_for_topic(t) for t in topics):
            if time.monotonic() > deadline:
                raise RuntimeError(f"topics {topics} not found: run `dispatch topics create`")
            time.sleep(0.2)

    # -- shard lifecycle ----------------------------------------------------------------
    def assign(self, shards: set[int]) -> None:
        for shard in sorted(shards - set(self.shards)):
            started = time.perf_counter()
            self.shards[shard] = open_shard(
                self.settings,
                shard,
                self.topics,
                self.app_factory,
                self.matcher_factory,
                self.clock_mode,
            )
            self.stats.restored[shard] = time.perf_counter() - started
            log.info("shard %s restored in %.2f s", shard, self.stats.restored[shard])
        _freeze()

    def revoke(self, shards: set[int]) -> None:
        # Frozen objects are never collected: unfreeze, so that dropped shards can go (the
        # next assignment freezes what remains again).
        gc.unfreeze()
        for shard in sorted(shards & set(self.shards)):
            self.shards.pop(shard).close()
            log.info("shard %s released", shard)

    # -- the loop ---------------------------------------------------------------------------
    def run(self, until: Callable[[], bool] | None = None) -> None:
        while not self._stop.is_set() and not (until is not None and until()):
            self.run_once()

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        self.revoke(set(self.shards))
        self.consumer.close()

    def run_once(self, timeout_ms: int = 100) -> None:
        polled = self.consumer.poll(timeout_ms=timeout_ms)
        inbound: dict[int, Inbound] = {}
        offsets: dict[int, dict[TopicPartition, OffsetAndMetadata]] = {}
        for tp, records in polled.items():
            shard = tp.partition
            box = inbound.setdefault(shard, Inbound())
            for record in records:
                where = f"{tp.topic}[{tp.partition}]@{record.offset}"
                if tp.topic == self.topics.commands:
                    decoded = wire.decode_command(record.value, where)
                    if isinstance(decoded, Poison):
                        box.poison.append(decoded)
                    else:
                        box.commands.append(decoded)
                else:
                    pings, poison = wire.decode_pings(record.value, where)
                    box.pings.extend(pings)
                    box.poison.extend(poison)
            offsets.setdefault(shard, {})[tp] = OffsetAndMetadata(records[-1].offset + 1, "", -1)
        for shard, host in list(self.shards.items()):
            found = inbound.get(shard)
            if found or host.tick_due(self.tick_s):
                self._process(shard, host, found or Inbound(), offsets.get(shard, {}))

    def _process(self, shard: int, host: ShardHost, box: Inbound, offsets: Offsets) -> None:
        ended = KafkaBatch(host, self.topics, self.consumer).run(box, offsets)
        if ended.state == "fenced":
            self.stats.fenced += 1
            self.shards.pop(shard).close()
            return
        if ended.state == "aborted":
            self.stats.aborted += 1
            gc.unfreeze()  # the refolded matcher replaced the old one: let it be collected
            _freeze()
            return
        report = ended.report
        assert report is not None
        elapsed = ended.decided_s + ended.committed_s
        if elapsed > SLOW_BATCH_S:
            log.warning(
                "shard %s: slow batch %.0f ms (%d commands, %d pings, %d events; decided in "
                "%.0f ms, committed in %.0f ms)",
                shard,
                elapsed * 1000,
                report.commands,
                report.pings,
                report.events,
                ended.decided_s * 1000,
                ended.committed_s * 1000,
            )
        self.stats.batches += 1
        self.stats.commands += report.commands
        self.stats.pings += report.pings
        self.stats.events += report.events


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, worker: KafkaWorker) -> None:
        self.worker = worker

    def on_partitions_revoked(self, revoked: Any) -> None:
        self.worker.revoke({tp.partition for tp in revoked})

    def on_partitions_assigned(self, assigned: Any) -> None:
        self.worker.assign({tp.partition for tp in assigned})


def _freeze() -> None:
    """A restored shard is a large, long-lived heap (its local store): keep the cyclic
    collector from rescanning it on every full collection, which stalls batches."""
    gc.collect()
    gc.freeze()
