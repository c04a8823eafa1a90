"""A log source over one shard's events held in memory, for tests of the log's readers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from uuid import UUID

from dispatch.log import LogEvent, LogSource


class MemoryLog(LogSource):
    """Shard 0's ``events``, positions as they are (1, 2, ...)."""

    def __init__(self, events: list[LogEvent] | None = None) -> None:
        self.events: list[LogEvent] = events if events is not None else []

    def shards(self) -> list[int]:
        return [0]

    def read(self, shard: int, after: int = 0) -> Iterator[LogEvent]:
        return iter([e for e in self.events if e.position > after])

    def head(self, shard: int) -> int:
        return len(self.events)

    def stored_events(self, shard: int, aggregate_id: UUID) -> list[Any]:
        return []

    def close(self) -> None:
        pass
