"""A shard's surge: the multiplier of every H3 cell it prices, as an aggregate of its log.

One per shard (its id derived from the shard), opened with the first change. Each cadence
whose multipliers move is one ``Recomputed`` event listing, as columns, every cell that
moved with what its change was computed from (demand, supply, the previous multiplier, the
target; the window and the curve's settings, the same for the whole cadence), so each past
price can be explained and a replay shows the surge of any moment. Logs written before it
hold one ``Changed`` event a cell (version 2, or 1): still read, by this aggregate and by
every reader of the log (``recorded_changes``). A cell with no event is at 1.00, so a log
from before surge reads as 1.00 everywhere. The aggregate keeps the cells above 1.00: what
a restore gives back to the shard's surge tracker.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Iterator
from datetime import datetime
from itertools import repeat
from typing import Any, NamedTuple
from uuid import UUID

from eventsourcing.domain import Aggregate

from dispatch.domain.ids import derived_id

SURGE_NAMESPACE = UUID("9b3e2c71-5a40-4f8d-b6e1-2d7c0a9f4e13")
NO_SURGE_TEXT = "1.00"
# The H3 resolution of surge cells: about 0.74 km², edge about 0.53 km (docs/MARKETPLACE.md,
# "Surge", says why).
SURGE_RESOLUTION = 8


CHANGED_TOPIC = "dispatch.Surge.Changed"  # one cell's change (logs written before v3)
RECOMPUTED_TOPIC = "dispatch.Surge.Recomputed"  # one cadence's changes, as columns
# What a recomputation lists per cell, in order (``Recomputed``'s columns).
COLUMNS = ("cells", "multipliers", "previous", "targets", "demand", "supply")
# The most rows one ``Recomputed`` lists. A row is about 44.5 bytes of stored JSON, so an
# event of 5,000 rows is about 225 kB: under the Kafka codec's 512 kB a record
# (``MAX_RECORD_BYTES``) and far under Kafka's 1 MB default message size, which one event
# cannot be split across. A cadence that moves more cells is recorded as several
# ``Recomputed`` events, in order, in the same batch (docs/MARKETPLACE.md, "Surge").
MAX_RECOMPUTED_ROWS = 5_000


class SurgeChange(NamedTuple):
    """One cell's recorded change, whichever event recorded it."""

    cell: str
    multiplier: str
    previous: str
    target: str
    demand: int
    supply: int
    window_s: float
    curve: dict[str, str | float] | None


def recorded_changes(topic: str, data: dict[str, Any]) -> Iterator[SurgeChange]:
    """The cell changes a surge event's data records (a log reader's, no domain class):
    one for a ``Changed``, each row of a ``Recomputed``, none for any other event."""
    if topic == RECOMPUTED_TOPIC:
        window_s, curve = float(data["window_s"]), data.get("curve")
        rows = zip(data["cells"], data["multipliers"], data["previous"], data["targets"],
                   data["demand"], data["supply"], strict=True)  # fmt: skip
        for cell, multiplier, previous, target, demand, supply in rows:
            yield SurgeChange(cell, multiplier, previous, target, demand, supply, window_s, curve)
    elif topic == CHANGED_TOPIC:
        yield SurgeChange(data["cell"], data["multiplier"], data["previous"], data["target"],
                          int(data["demand"]), int(data["supply"]), float(data["window_s"]),
                          data.get("curve"))  # fmt: skip


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
        """One cell's change: what logs written before ``Recomputed`` hold (read, no longer
        written)."""

        TOPIC = CHANGED_TOPIC
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

    class Recomputed(Event):
        """One cadence's changes: row ``i`` of the columns is one cell's change (its cell,
        new multiplier, previous one, target, demand and supply), each from its previous
        level; the window and the curve are the cadence's."""

        TOPIC = RECOMPUTED_TOPIC
        class_version = 1
        cells: list[str]
        multipliers: list[str]
        previous: list[str]
        targets: list[str]
        demand: list[int]
        supply: list[int]
        window_s: float
        # the curve's settings, always recorded (what ``replay verify`` re-derives each row
        # with: a ``Recomputed`` without it is a violation, not a row left unchecked)
        curve: dict[str, str | float]

        def apply(self, surge: Surge) -> None:
            cells = surge.cells
            for cell, multiplier in zip(self.cells, self.multipliers, strict=True):
                if multiplier == NO_SURGE_TEXT:
                    cells.pop(cell, None)
                else:
                    cells[cell] = multiplier

        def changes(self) -> list[SurgeChange]:
            """Each cell's change, as a row."""
            rows = zip(self.cells, self.multipliers, self.previous, self.targets, self.demand,
                       self.supply, strict=True)  # fmt: skip
            return [SurgeChange(c, m, p, t, d, s, self.window_s, self.curve)
                    for c, m, p, t, d, s in rows]  # fmt: skip

    def __init__(self, resolution: int) -> None:
        self.resolution = resolution
        self.cells: dict[str, str] = {}  # cell -> multiplier text, for cells above 1.00

    @classmethod
    def start(cls, shard: int, resolution: int, at: datetime) -> Surge:
        return cls._create(cls.Created, id=surge_id(shard), timestamp=at, resolution=resolution)

    def recompute(
        self,
        cells: list[str],
        multipliers: list[str],
        targets: list[str],
        demand: list[int],
        supply: list[int],
        window_s: float,
        at: datetime,
        curve: dict[str, str | float],
    ) -> None:
        """Record a cadence's changes (columns, a row a cell) with their inputs, as one
        event of up to ``MAX_RECOMPUTED_ROWS`` rows, or as several in order (each row
        stands alone: a reader folds them as it would one); a cell whose multiplier is
        already the one given is left out (none left: no event). Each cell at most once."""
        n = len(cells)
        if any(len(column) != n for column in (multipliers, targets, demand, supply)):
            raise ValueError("a surge recomputation lists one entry a cell in every column")
        previous = list(map(self.cells.get, cells, repeat(NO_SURGE_TEXT, n)))
        columns: list[list[Any]] = [cells, multipliers, previous, targets, demand, supply]
        if any(map(operator.eq, multipliers, previous)):  # (the tracker lists moves only)
            moved = [i for i, (m, p) in enumerate(zip(multipliers, previous, strict=True))
                     if m != p]  # fmt: skip
            if not moved:
                return
            columns = [[column[i] for i in moved] for column in columns]
        rows = len(columns[0])
        for start in range(0, rows, MAX_RECOMPUTED_ROWS):
            part = columns if rows <= MAX_RECOMPUTED_ROWS else [
                column[start : start + MAX_RECOMPUTED_ROWS] for column in columns
            ]  # fmt: skip
            self.trigger_event(self.Recomputed, timestamp=at, window_s=window_s, curve=curve,
                               **dict(zip(COLUMNS, part, strict=True)))  # fmt: skip
