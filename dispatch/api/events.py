"""Fan-out of log events to server-sent-event subscribers.

The projection runner calls ``EventHub.publish`` on its thread for every event it folds;
each subscriber owns an asyncio queue on its event loop, fed with
``loop.call_soon_threadsafe``. A subscriber that falls too far behind is marked overflowed
and its stream ends (the client reconnects with ``Last-Event-ID``).
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field

from dispatch.log import LogEvent

RIDE_PREFIX = "dispatch.Ride."
DRIVER_PREFIX = "dispatch.Driver."

Key = tuple[str, str]


@dataclass(eq=False)
class Subscription:
    key: Key
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[LogEvent] = field(default_factory=lambda: asyncio.Queue(1_000))
    overflowed: bool = False

    def _put(self, event: LogEvent) -> None:  # on the subscriber's loop
        if self.overflowed or self.queue.full():
            self.overflowed = True  # from here on the stream would have a gap: it ends
            return
        self.queue.put_nowait(event)

    def push(self, event: LogEvent) -> None:  # on the runner's thread
        try:
            self.loop.call_soon_threadsafe(self._put, event)
        except RuntimeError:  # the loop is closed: the stream is gone
            self.overflowed = True


def key_of(event: LogEvent) -> Key | None:
    if event.topic.startswith(RIDE_PREFIX):
        return ("ride", event.aggregate_id)
    if event.topic.startswith(DRIVER_PREFIX):
        return ("driver", event.aggregate_id)
    return None


class EventHub:
    def __init__(self) -> None:
        self._subs: dict[Key, set[Subscription]] = {}
        self._lock = threading.Lock()

    def publish(self, event: LogEvent) -> None:
        """A projection-runner listener: hand ``event`` to whoever follows its aggregate."""
        if not self._subs:
            return
        key = key_of(event)
        if key is None:
            return
        with self._lock:
            subs = list(self._subs.get(key, ()))
        for sub in subs:
            sub.push(event)

    def subscribe(self, kind: str, aggregate_id: str) -> Subscription:
        sub = Subscription((kind, aggregate_id), asyncio.get_running_loop())
        with self._lock:
            self._subs.setdefault(sub.key, set()).add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            subs = self._subs.get(sub.key)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._subs[sub.key]

    def count(self) -> int:
        with self._lock:
            return sum(len(s) for s in self._subs.values())
