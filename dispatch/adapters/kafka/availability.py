"""Other shards' drivers, as a Kafka worker's matchers see them (a city over several shards).

Each shard tells the others which of its drivers are free: every batch that changes a
driver's availability writes the driver's state now to the shard's partition of the
compacted driver-availability topic, in the batch's transaction (``KafkaBatch``), so what
others read is what the owner committed. Compaction keeps each driver's last record. A
shard opened on an empty partition of the topic (a log that predates it, or a topic made
again) writes all of its drivers with its first batch (``ShardHost.announce``).

``AvailabilityBoard`` is the reading side, one per worker process: it reads every
partition from the beginning before the worker joins its group (compaction keeps that to
about one record per driver), then follows on a thread. What it hands a hosted shard is
read-only knowledge for its matcher (``Inbound.foreign``; the shard worker keeps each
driver's newest tenure's word, ``ShardWorker._take_foreign``): the owner is still asked for
the driver and decides (docs/ARCHITECTURE.md, "Offers across shards"), so a stale entry
costs an ask, never a double booking.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Iterable
from typing import Any
from uuid import UUID

from dispatch.adapters.kafka import wire
from dispatch.adapters.kafka.eventstore.connection import Connection
from dispatch.adapters.kafka.follower import shard_follower
from dispatch.shard.inbound import ForeignDriver

log = logging.getLogger(__name__)


class AvailabilityBoard:
    def __init__(self, bootstrap: Connection, topic: str, shards: int) -> None:
        self.topic = topic
        self.latest: dict[UUID, ForeignDriver] = {}  # each driver's newest tenure's word
        self.skipped = 0  # records that are not a driver's availability
        self._arrived: deque[ForeignDriver] = deque()
        self._lock = threading.Lock()
        self._follower = shard_follower(
            bootstrap, topic, shards, "driver availability",
            "a shard's batches could not tell the others of its drivers",
        )  # fmt: skip

    def start(self, timeout_s: float = 60.0) -> int:
        """Read every partition to its end as it is now, then follow on a thread. Returns
        the drivers known."""
        follower = self._follower
        ends = {p: follower.end_offset(p) for p in follower.partitions}
        for partition in follower.partitions:
            follower.seek(partition, follower.beginning_offset(partition))
        deadline = time.monotonic() + timeout_s
        while any(follower.position(p) < end for p, end in ends.items()):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.topic}: not read to its end in {timeout_s:.0f} s")
            for partition, records in follower.poll(200).items():
                self._take(partition, records)
        self.drain()
        follower.start(self._take, poll_ms=200, max_records=5_000)
        return len(self.latest)

    def stop(self) -> None:
        self._follower.stop()

    def problem(self) -> str | None:
        return self._follower.problem()

    def drain(self) -> list[ForeignDriver]:
        """The records read since the last call, in order; ``latest`` includes them."""
        with self._lock:
            changes = list(self._arrived)
            self._arrived.clear()
        latest = self.latest
        for change in changes:
            known = latest.get(change.driver_id)
            if known is None or change.epoch >= known.epoch:  # older tenures' words: past
                latest[change.driver_id] = change
        return changes

    def known_to(self, shard: int) -> list[ForeignDriver]:
        """Every driver other shards serve (or handed off), for a matcher that knows none."""
        return for_shard(self.latest.values(), shard)

    def _take(self, partition: int, records: Iterable[Any]) -> None:
        changes: list[ForeignDriver] = []
        for record in records:
            try:
                changes.append(wire.decode_availability(record.key, record.value, partition))
            except ValueError as error:
                self.skipped += 1
                log.warning("%s[%d]@%d skipped: %s", self.topic, partition, record.offset, error)
        with self._lock:
            self._arrived.extend(changes)


def for_shard(changes: Iterable[ForeignDriver], shard: int) -> list[ForeignDriver]:
    """What a hosted shard takes: other shards' words, in order (the shard worker keeps
    each driver's newest tenure's)."""
    return [change for change in changes if change.owner != shard]
