"""Every driver's pings for an API process's location view, whichever process took them.

On Kafka, pings reach the shard workers through the locations topic; an API process that
only applied the pings it received itself would show a partial map as soon as there are two
of them. ``LocationFollower`` reads every partition of the locations topic on a thread,
starting at the pings of the last TTL (older ones cannot show anyway), and hands each
record's pings to ``apply``. Pings are not transactional: they are read as produced. A
record that is not a valid batch of pings is skipped and counted (the worker owning the
partition dead-letters it); a ping no newer than the view's last one for that driver
changes nothing, so a process re-reading the pings it applied itself is harmless.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from dispatch.adapters.kafka import wire
from dispatch.adapters.kafka.config import assign_all, new_consumer, seek_since
from dispatch.adapters.kafka.topics import Topics
from dispatch.messages import Ping

log = logging.getLogger(__name__)


class LocationFollower:
    def __init__(
        self,
        bootstrap: str,
        prefix: str,
        apply: Callable[[Sequence[Ping]], None],
        ttl_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.bootstrap, self.topic = bootstrap, Topics(prefix).locations
        self.apply, self.ttl_s, self.clock = apply, ttl_s, clock
        self.applied = 0  # pings handed to ``apply``
        self.skipped = 0  # invalid pings or records
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing: str | None = None  # the last poll's error, until a poll succeeds

    def start(self) -> None:
        """Start following; returns once positioned (the last TTL of pings is then being
        read), or raises if the broker cannot be reached or the topic is missing."""
        consumer = new_consumer(self.bootstrap, group_id=None)
        try:
            seek_since(consumer, assign_all(consumer, self.topic), self.clock() - self.ttl_s)
        except BaseException:
            consumer.close()
            raise
        self._thread = threading.Thread(
            target=self._loop, args=(consumer,), daemon=True, name="location-follower"
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def problem(self) -> str | None:
        """Why the location view may be missing pings right now, or None."""
        if self._thread is None or self._stop.is_set():
            return None
        if not self._thread.is_alive():
            return "location follower stopped"
        if self._failing is not None:
            return f"locations topic unreadable: {self._failing}"
        return None

    def _loop(self, consumer: Any) -> None:
        try:
            while not self._stop.is_set():
                try:
                    batches = consumer.poll(timeout_ms=200, max_records=1_000)
                except Exception as error:
                    self._failing = repr(error)
                    log.exception("location follower: poll failed; retrying")
                    self._stop.wait(1.0)
                    continue
                self._failing = None
                for records in batches.values():
                    for record in records:
                        self._apply(record)
        finally:
            consumer.close()

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
