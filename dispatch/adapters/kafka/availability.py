"""Other shards' drivers, as a Kafka worker's matchers see them (a city over several shards).

Each shard tells the others which of its drivers are free: every batch that changes a
driver's availability writes the driver's state now to the shard's partition of the
compacted driver-availability topic, in the batch's transaction (``KafkaBatch``), so what
others read is what the owner committed. A shard opened by a worker writes all of its
drivers once with its first batch (``ShardHost.announce``): a log that predates the topic,
or a partition compacted in between, is whole again after one takeover.

``AvailabilityBoard`` is the reading side, one per worker process: it reads every
partition from the beginning before the worker joins its group (compaction keeps that to
about one record per driver), then follows on a thread. What it hands a hosted shard is
read-only knowledge for its matcher (``Inbound.foreign``): the owner is still asked for
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
from dispatch.adapters.kafka.follower import Follower
from dispatch.domain.driver import Driver

log = logging.getLogger(__name__)

RESET = Driver.Created.TOPIC
Change = tuple[int, UUID, tuple[str, ...]]  # owner partition, driver, event types


class AvailabilityBoard:
    def __init__(self, bootstrap: str, topic: str) -> None:
        self.topic = topic
        self.latest: dict[UUID, tuple[int, tuple[str, ...]]] = {}
        self.skipped = 0  # records that are not a driver's availability
        self._arrived: deque[Change] = deque()
        self._lock = threading.Lock()
        self._follower = Follower(bootstrap, topic, name="driver availability")

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

    def drain(self) -> list[Change]:
        """The changes read since the last call, in order; ``latest`` includes them."""
        with self._lock:
            changes = list(self._arrived)
            self._arrived.clear()
        for partition, driver, leads_to in changes:
            self.latest[driver] = (partition, leads_to)
        return changes

    def known_to(self, shard: int) -> list[tuple[UUID, str]]:
        """Every driver of the other shards, for a matcher that knows none of them yet."""
        return for_shard(((p, d, t) for d, (p, t) in self.latest.items()), shard)

    def _take(self, partition: int, records: Iterable[Any]) -> None:
        changes: list[Change] = []
        for record in records:
            try:
                driver, leads_to = wire.decode_availability(record.key, record.value)
            except ValueError as error:
                self.skipped += 1
                log.warning("%s[%d]@%d skipped: %s", self.topic, partition, record.offset, error)
                continue
            changes.append((partition, driver, leads_to))
        with self._lock:
            self._arrived.extend(changes)


def for_shard(changes: Iterable[Change], shard: int) -> list[tuple[UUID, str]]:
    """The changes a hosted shard's matcher takes (other shards' drivers, in order), each
    a state: it starts from a registered driver (``Driver.Created``), whatever the matcher
    had folded before."""
    return [
        (driver, topic)
        for partition, driver, leads_to in changes
        if partition != shard
        for topic in (RESET, *leads_to)
    ]
