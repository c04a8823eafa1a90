"""One shard batch on Kafka, owned from its first record to its commit or abort.

``KafkaBatch.run`` begins the shard writer's transaction; the worker decides and saves the
batch's events in it; the outcomes, dead letters, messages and acks to other shards, and
the availability of the drivers it changed (for other shards' matchers) go into it; so do
the consumed offsets (``send_offsets_to_transaction``); then it commits, and only then are
the commit listeners told. Any failure aborts all of it together: the shard's state is
refolded from the log and the consumer rewound to the committed offsets, so the batch is
read and decided again. A writer whose producer is lost (fenced, or unable to abort) can
write no more: the batch reports it as lost ("fenced") and does nothing more.

When the shard's application seals personal fields, the batch joins the process's key
store: a subject key made while it decides is sent in its transaction (docs/PRIVACY.md),
and forgotten, by the store and the sealer's cache, if it does not commit. The bodies of
the messages it sends to other shards are sealed as the stored ones are.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Literal

from kafka import KafkaConsumer, OffsetAndMetadata, TopicPartition

from dispatch import logs
from dispatch.adapters.kafka import wire
from dispatch.adapters.kafka.commandkeys import tombstone
from dispatch.adapters.kafka.eventstore import ProducerLostError
from dispatch.adapters.kafka.outcomes import send_outcomes
from dispatch.adapters.kafka.shard_host import ShardHost
from dispatch.adapters.kafka.topics import Topics
from dispatch.shard.inbound import Inbound
from dispatch.shard.worker import Batch, BatchReport

log = logging.getLogger(__name__)

Offsets = dict[TopicPartition, OffsetAndMetadata]


@dataclass(frozen=True, slots=True)
class Ended:
    """How a batch ended, its report when committed, and where its time went."""

    state: Literal["committed", "aborted", "fenced"]
    report: BatchReport | None = None
    decided_s: float = 0.0
    committed_s: float = 0.0


class KafkaBatch:
    def __init__(self, host: ShardHost, topics: Topics, consumer: KafkaConsumer) -> None:
        self.host, self.topics, self.consumer = host, topics, consumer

    def run(self, inbound: Inbound, offsets: Offsets) -> Ended:
        """See the batch through (its shard and number in the log context)."""
        with logs.bound(shard=self.host.shard, batch=self.host.worker.next_batch()):
            return self._run(inbound, offsets)

    def _run(self, inbound: Inbound, offsets: Offsets) -> Ended:
        host, started = self.host, time.perf_counter()
        host.advance(inbound)
        decided = started
        try:
            with host.writer.transaction() as producer:
                if host.keys is not None:
                    host.keys.begin(producer)
                batch = host.worker.process(inbound)
                decided = time.perf_counter()
                self._send(producer, batch)
                for subject in inbound.spent_keys:  # the sealed commands it decided
                    tombstone(producer, self.topics.command_keys, subject)
                if batch.checkpoint is not None and host.checkpoints is not None:
                    host.checkpoints.send(producer, batch.checkpoint)
                if offsets:
                    host.writer.send_offsets(offsets, self.consumer.group_metadata())
        except ProducerLostError as e:  # FencedError included
            self._forget_keys()
            log.warning("shard %s: %s", host.shard, e)
            return Ended("fenced")
        except Exception:
            self._forget_keys()
            log.exception("shard %s: batch aborted; rewinding to the committed offsets", host.shard)
            host.worker.recover()
            self._rewind()
            return Ended("aborted")
        except BaseException:  # an interrupt: the store must not stay joined (review 8)
            self._forget_keys()
            raise
        if host.keys is not None:
            host.keys.committed()
        host.worker.committed(batch)
        host.announce = False
        if host.checkpoints is not None:
            host.checkpoints.committed(batch.checkpoint)
        now = time.perf_counter()
        return Ended("committed", batch.report, decided - started, now - decided)

    def _send(self, producer: Any, batch: Batch) -> None:
        """The batch's outcomes, dead letters, and messages and acks to other shards (each
        to its receiver's partition of shard-messages), into its transaction: visible only
        if the batch commits."""
        shard = self.host.shard
        send_outcomes(producer, self.topics, shard, batch.outcomes, batch.traces)
        for poison in batch.poison:
            value = wire.encode_dead_letter(poison)
            key = str(shard).encode()
            producer.send(self.topics.dead_letters, key=key, value=value, partition=0)
        between = self.topics.shard_messages
        sealer = self.host.app.sealer
        seal = sealer.seal_message if sealer is not None else None
        for message in batch.messages:
            key, value = wire.encode_shard_message(message, seal)
            producer.send(between, key=key, value=value, partition=message.receiver)
        for ack in batch.acks:
            key, value = wire.encode_ack(ack)
            producer.send(between, key=key, value=value, partition=ack.receiver)
        if self.host.tells_others:
            self._send_availability(producer, batch)

    def _send_availability(self, producer: Any, batch: Batch) -> None:
        """The state now of each driver whose availability the batch changed (of every
        driver of the shard, in the first batch of a shard just opened), for the others."""
        host = self.host
        states = host.worker.local_drivers() if host.announce else batch.told
        topic = self.topics.driver_availability
        for state in states:
            key, value = wire.encode_availability(state)
            producer.send(topic, key=key, value=value, partition=host.shard)

    def _forget_keys(self) -> None:
        """The keys the batch made were never stored: forgotten, so its retry makes and
        sends new ones."""
        keys, sealer = self.host.keys, self.host.app.sealer
        if keys is not None:
            dropped = keys.aborted()
            if sealer is not None:
                sealer.forget(dropped)

    def _rewind(self) -> None:
        for topic in self.topics.consumed:
            tp = TopicPartition(topic, self.host.shard)
            committed = self.consumer.committed(tp)
            if committed is None:
                self.consumer.seek_to_beginning(tp)
            else:
                self.consumer.seek(tp, committed)
