"""Past states of the views, kept for time travel: the ``/ops`` page's time slider and
``dispatch replay state --ops`` start from the latest point at or before the moment asked
for and fold the log's tail up to it, instead of the whole log (docs/OPERATIONS.md, "The
time slider").

A serving process adds a point every ``DISPATCH_VIEW_HISTORY_EVERY_S`` of log time when it
keeps its views (``projections.keeper``), and keeps the latest
``DISPATCH_VIEW_HISTORY_KEEP``. A point is the views as kept (``StoredViews``, with their
per-shard checkpoints), the time of the latest event they include, and the drivers' last
pings then: pings are not events, so a past moment's positions are those of the point it
starts from (said beside them: ``positions_at``). Adapter: ``dispatch.adapters.sqlite``
(``views-history.sqlite`` under the data dir).

Adding a point is two steps, so that the costly one can run in another process (the
keeper's ``Background``): ``pack`` (compression, checksums: computation only, no I/O) and
``add_packed`` (the durable write).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from projections.store import StoredViews

# A driver's last ping: latitude, longitude and its time (epoch s).
Position = tuple[float, float, float]


@dataclass(frozen=True)
class HistoryPoint:
    """The views as kept, the latest event time they include (every event they include is
    no later) and the drivers' last pings then."""

    taken_at: float
    stored: StoredViews
    positions: dict[str, Position] = field(default_factory=dict)


@dataclass(frozen=True)
class PackedPoint:
    """A point as its history writes it (``ViewHistory.pack``): its time and the adapter's
    own fields, plain values that pickle."""

    taken_at: float
    fields: tuple[float | int | str | bytes, ...]


class ViewHistory(ABC):
    """Where past states of the views are kept."""

    where: str  # for messages: the file, say

    def add(self, point: HistoryPoint) -> None:
        """Keep the point (durably, before returning); the oldest beyond the number kept
        are dropped."""
        self.add_packed(self.pack(point))

    @abstractmethod
    def pack(self, point: HistoryPoint) -> PackedPoint:
        """The point in the form ``add_packed`` writes: computation only (no I/O, no
        state of the history), so it may run in another process."""

    @abstractmethod
    def add_packed(self, packed: PackedPoint) -> None:
        """Keep a packed point (durably, before returning); the oldest beyond the number
        kept are dropped."""

    @abstractmethod
    def at_or_before(self, at: float) -> HistoryPoint | None:
        """The latest point taken at or before ``at``, or None; ``ViewStoreError`` when it
        cannot be read."""

    @abstractmethod
    def times(self) -> list[float]:
        """When each kept point was taken, oldest first."""
