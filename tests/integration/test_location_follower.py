"""LocationFollower on the real broker: every partition's pings reach the view, older pings
are not replayed, and bad records or a failing apply do not stop it."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Sequence
from typing import Any

import pytest

from dispatch.adapters.kafka import wire
from dispatch.adapters.kafka.config import new_producer
from dispatch.adapters.kafka.locations import LocationFollower
from dispatch.adapters.kafka.topics import Topics
from dispatch.messages import Ping

pytestmark = pytest.mark.kafka
WAIT_S = 10.0


class Sink:
    """Collects applied pings; a batch holding a ping of ``poisoned`` fails, like a bug in
    one view would (partitions are read in no set order, so it is chosen by content)."""

    def __init__(self, poisoned: uuid.UUID) -> None:
        self.poisoned = poisoned
        self.pings: list[Ping] = []
        self.changed = threading.Condition()

    def __call__(self, pings: Sequence[Ping]) -> None:
        with self.changed:
            if any(p.driver_id == self.poisoned for p in pings):
                raise RuntimeError("this batch fails")
            self.pings.extend(pings)
            self.changed.notify_all()

    def wait_for(self, n: int) -> list[Ping]:
        with self.changed:
            assert self.changed.wait_for(lambda: len(self.pings) >= n, WAIT_S), self.pings
            return list(self.pings)


def test_pings_on_every_partition_reach_the_view_past_bad_records(kafka_topics: Any) -> None:
    topic = Topics(kafka_topics.prefix).locations
    producer = new_producer(kafka_topics.bootstrap)
    now = time.time()
    stale = Ping(uuid.uuid4(), 37.77, -122.42, now - 120.0)
    producer.send(topic, wire.encode_pings([stale]), partition=0, timestamp_ms=int(stale.at * 1000))
    producer.flush()
    failing = Ping(uuid.uuid4(), 37.78, -122.41, now)
    sink = Sink(failing.driver_id)
    follower = LocationFollower(kafka_topics.bootstrap, kafka_topics.prefix, sink, ttl_s=30.0)
    follower.start()
    try:
        fresh = [Ping(uuid.uuid4(), 37.77 + p / 100, -122.42, now) for p in range(4)]
        producer.send(topic, wire.encode_pings([failing]), partition=0)
        producer.send(topic, b"not json", partition=1)
        for partition, ping in enumerate(fresh):
            producer.send(
                topic, wire.encode_pings([ping]), partition=partition % kafka_topics.partitions
            )
        producer.flush()
        got = sink.wait_for(len(fresh))
        assert sorted(got) == sorted(fresh)  # not the stale one, nor the one whose apply failed
        assert follower.applied == len(fresh)
        assert follower.skipped == 2  # the poison record and the batch whose apply failed
        assert follower.problem() is None
    finally:
        follower.stop()
        producer.close()
    assert follower.problem() is None  # stopped on purpose: nothing to report
