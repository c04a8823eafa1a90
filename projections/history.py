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


class ViewHistory(ABC):
    """Where past states of the views are kept."""

    where: str  # for messages: the file, say

    @abstractmethod
    def add(self, point: HistoryPoint) -> None:
        """Keep the point (durably, before returning); the oldest beyond the number kept
        are dropped."""

    @abstractmethod
    def at_or_before(self, at: float) -> HistoryPoint | None:
        """The latest point taken at or before ``at``, or None; ``ViewStoreError`` when it
        cannot be read."""

    @abstractmethod
    def times(self) -> list[float]:
        """When each kept point was taken, oldest first."""
