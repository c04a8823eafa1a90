"""kafka-python 3.0 sometimes drops a partition from an offsets answer (a ``KeyError`` from
inside ``end_offsets``): the project asks again, a bounded number of times."""

from __future__ import annotations

from typing import Any

import pytest
from kafka import TopicPartition

from dispatch.adapters.kafka.eventstore.clients import OFFSET_ATTEMPTS, end_offsets

TP = TopicPartition("dispatch.events", 0)


class Consumer:
    def __init__(self, failures: int) -> None:
        self.failures, self.asked = failures, 0

    def end_offsets(self, tps: list[TopicPartition], timeout_ms: int | None = None) -> Any:
        self.asked += 1
        if self.asked <= self.failures:
            raise KeyError(TP)
        return dict.fromkeys(tps, 42)


def test_an_answer_missing_a_partition_is_asked_again() -> None:
    consumer = Consumer(failures=OFFSET_ATTEMPTS - 1)
    assert end_offsets(consumer, [TP]) == {TP: 42}  # type: ignore[arg-type]
    assert consumer.asked == OFFSET_ATTEMPTS


def test_a_partition_missing_every_time_is_an_error() -> None:
    consumer = Consumer(failures=OFFSET_ATTEMPTS)
    with pytest.raises(KeyError):
        end_offsets(consumer, [TP])  # type: ignore[arg-type]
    assert consumer.asked == OFFSET_ATTEMPTS
