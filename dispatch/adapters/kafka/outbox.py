"""A shard worker's outbox on Kafka: outcomes and dead letters go into the open transaction."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from dispatch.adapters.kafka import wire
from dispatch.adapters.kafka.topics import Topics
from dispatch.messages import Poison
from schemas.commands import Outcome


class KafkaOutbox:
    """Sends with the shard's transactional producer, so the records commit with the batch."""

    def __init__(self, producer: Callable[[], Any], topics: Topics, shard: int) -> None:
        self._producer, self.topics, self.shard = producer, topics, shard

    def publish_outcomes(self, outcomes: Sequence[Outcome]) -> None:
        producer = self._producer()
        for outcome in outcomes:
            key, value = wire.encode_outcome(outcome)
            producer.send(self.topics.outcomes, key=key, value=value, partition=self.shard)

    def dead_letter(self, poison: Sequence[Poison]) -> None:
        producer = self._producer()
        for record in poison:
            producer.send(
                self.topics.dead_letters,
                key=str(self.shard).encode(),
                value=wire.encode_dead_letter(record),
                partition=0,
            )
