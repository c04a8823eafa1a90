"""Every driver's pings for an API process's location view, whichever process took them.

On Kafka, pings reach the shard workers through the locations topic; an API process that
only applied the pings it received itself would show a partial map as soon as there are two
of them. ``LocationFollower`` follows every partition of the locations topic on a thread,
starting at the pings of the last TTL (older ones cannot show anyway), and hands each
record's pings to ``apply``. Pings are not transactional: they are read as produced. A
record that is not a valid batch of pings is skipped and counted (the worker owning the
partition dead-letters it); a ping no newer than the view's last one for that driver
changes nothing, so a process re-reading the pings it applied itself is harmless.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from dispatch.adapters.kafka import wire
from dispatch.adapters.kafka.eventstore.connection import Connection
from dispatch.adapters.kafka.follower import Follower
from dispatch.adapters.kafka.topics import Topics
from dispatch.messages import Ping

log = logging.getLogger(__name__)


class LocationFollower:
    def __init__(
        self,
        bootstrap: Connection,
        prefix: str,
        apply: Callable[[Sequence[Ping]], None],
        ttl_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.bootstrap, self.topic = bootstrap, Topics(prefix).locations
        self.apply, self.ttl_s, self.clock = apply, ttl_s, clock
        self.applied = 0  # pings handed to ``apply``
        self.skipped = 0  # invalid pings or records
        self._follower: Follower | None = None

    def start(self) -> None:
        """Start following; returns once positioned (the last TTL of pings is then being
        read), or raises if the broker cannot be reached or the topic is missing."""
        follower = Follower(self.bootstrap, self.topic, name="location follower")
        try:
            follower.seek_since(self.clock() - self.ttl_s)
        except BaseException:
            follower.close()
            raise
        follower.start(self._apply_records, poll_ms=200, max_records=1_000)
        self._follower = follower

    def stop(self) -> None:
        if self._follower is not None:
            self._follower.stop()

    def problem(self) -> str | None:
        """Why the location view may be missing pings right now, or None."""
        return self._follower.problem() if self._follower is not None else None

    def _apply_records(self, _partition: int, records: list[Any]) -> None:
        for record in records:
            self._apply(record)

    def _apply(self, record: Any) -> None:
        pings, bad = wire.decode_pings(record.value, f"offset {record.offset}")
        self.skipped += len(bad)
        if not pings:
            return
        try:
            self.apply(pings)
        except Exception:  # keep following: one bad batch must not stop the view for good
            log.exception("location follower: applying %d pings failed", len(pings))
            self.skipped += len(pings)
            return
        self.applied += len(pings)
