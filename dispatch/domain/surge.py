"""A shard's surge: the multiplier of every H3 cell it prices, as an aggregate of its log.

One per shard (its id derived from the shard), opened with the first change. Each change
of a cell's multiplier is a ``Changed`` event with what it was computed from (demand,
supply, window, the previous multiplier, the target and the curve's settings), so a past
price can be explained
and a replay shows the surge of any moment. A cell with no event is at 1.00, so a log
from before surge reads as 1.00 everywhere. The aggregate keeps the cells above 1.00: what
a restore gives back to the shard's surge tracker.
"""

from __future__ import annotations

import functools
from datetime import datetime
from uuid import UUID

from eventsourcing.domain import Aggregate

from dispatch.domain.ids import derived_id

SURGE_NAMESPACE = UUID("9b3e2c71-5a40-4f8d-b6e1-2d7c0a9f4e13")
NO_SURGE_TEXT = "1.00"
# The H3 resolution of surge cells: about 0.74 km², edge about 0.53 km (docs/MARKETPLACE.md,
# "Surge", says why).
SURGE_RESOLUTION = 8


@functools.cache
def surge_id(shard: int) -> UUID:
    """The id of ``shard``'s surge aggregate (in ``shard``)."""
    return derived_id(shard, SURGE_NAMESPACE, "surge")


class Surge(Aggregate):
    TOPIC = "dispatch.Surge"

    class Event(Aggregate.Event):
        pass

    class Created(Aggregate.Created):
        TOPIC = "dispatch.Surge.Started"
        class_version = 1
        resolution: int

    class Changed(Event):
        TOPIC = "dispatch.Surge.Changed"
        class_version = 2
        cell: str
        multiplier: str
        previous: str
        target: str
        demand: int
        supply: int
        window_s: float
        # the curve's settings (cap, gain, smoothing, band, noise): with previous, demand and
        # supply, what re-derives multiplier and target (``pricing.surge.rederive``)
        curve: dict[str, str | float] | None

        @staticmethod
        def upcast_v1_v2(state: dict[str, object]) -> None:
            state["curve"] = None  # (version 1 did not record it)

        def apply(self, surge: Surge) -> None:
            if self.multiplier == NO_SURGE_TEXT:
                surge.cells.pop(self.cell, None)
            else:
                surge.cells[self.cell] = self.multiplier

    def __init__(self, resolution: int) -> None:
        self.resolution = resolution
        self.cells: dict[str, str] = {}  # cell -> multiplier text, for cells above 1.00

    @classmethod
    def start(cls, shard: int, resolution: int, at: datetime) -> Surge:
        return cls._create(cls.Created, id=surge_id(shard), timestamp=at, resolution=resolution)

    def change(
        self,
        cell: str,
        multiplier: str,
        target: str,
        demand: int,
        supply: int,
        window_s: float,
        at: datetime,
        curve: dict[str, str | float] | None = None,
    ) -> None:
        """Record the cell's new multiplier and its inputs."""
        previous = self.cells.get(cell, NO_SURGE_TEXT)
        if multiplier == previous:
            return
        self.trigger_event(self.Changed, timestamp=at, cell=cell, multiplier=multiplier,
                           previous=previous, target=target, demand=demand, supply=supply,
                           window_s=window_s, curve=curve)  # fmt: skip
