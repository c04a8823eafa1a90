"""The shard's surge tracker: demand and supply per surge cell, priced on a cadence.

Held by the matcher (as its ``matching.surge.SurgeTracking``) and fed what the matcher
folds: each ride request (its pickup's cell, at its time) is demand for ``window_s``; the
available drivers of the matcher's index are supply. Every ``cadence_s`` of the shard's
clock, ``tick`` prices every active cell (one with demand in the window, or a multiplier
above 1.00) with the curve at once (numpy, ``dispatch.pricing.surge``) and returns a
``ChangeSurge`` for each cell whose multiplier moves; the shard records it
(``Surge.Changed``) and the event comes back through ``level``. The levels are the only
state that lasts: a restore loads them from the shard's surge aggregate (``load``), and
the requests of the window from the rides a checkpoint carries and the log after it.

Cells are H3 cells at ``SURGE_RESOLUTION`` (8), numbered by the tracker in the order first
seen, so the arrays a cadence works on need no dictionary lookup per cell.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import h3
import numpy as np
from h3.api import basic_int as h3i

from dispatch.domain.surge import SURGE_RESOLUTION
from dispatch.matching.decisions import ChangeSurge
from dispatch.pricing.surge import ONE, SurgeCurve, multiplier_text


@dataclass(frozen=True, slots=True)
class SurgeConfig:
    curve: SurgeCurve
    cadence_s: float = 30.0
    window_s: float = 300.0


class SurgeTracker:
    def __init__(self, config: SurgeConfig, resolution: int = SURGE_RESOLUTION) -> None:
        if config.cadence_s <= 0 or config.window_s <= 0:
            raise ValueError("a surge tracker needs a cadence and a window above 0")
        self.config, self.resolution = config, resolution
        self._row_of: dict[int, int] = {}  # cell -> row
        self._cells: list[int] = []  # row -> cell
        self._levels = np.full(64, ONE, dtype=np.int64)
        self._demand = np.zeros(64, dtype=np.int64)
        self._window: deque[tuple[float, int]] = deque()  # (requested at, row), in order
        self._slot_rows = np.zeros(0, dtype=np.int64)  # index slot -> row of its parent
        self._next_at = -math.inf

    # -- inputs ----------------------------------------------------------------------------
    def requested(self, lat: float, lng: float, at: float) -> None:
        """A ride requested at ``(lat, lng)`` at time ``at``: demand for the window."""
        row = self._row(h3i.latlng_to_cell(lat, lng, self.resolution))
        self._demand[row] += 1
        self._window.append((at, row))

    def level(self, cell: str, multiplier: str) -> None:
        """A cell's multiplier as the shard recorded it (``"1.35"``)."""
        whole, _, cents = multiplier.partition(".")
        self._levels[self._row(h3.str_to_int(cell))] = int(whole) * 100 + int(cents or 0)

    def load(self, levels: dict[str, str]) -> None:
        """The multipliers the shard's surge aggregate holds (cells above 1.00), replacing
        the levels folded so far."""
        self._levels[: len(self._cells)] = ONE
        for cell, multiplier in levels.items():
            self.level(cell, multiplier)

    def levels(self) -> dict[str, str]:
        """Every cell above 1.00, with its multiplier."""
        n = len(self._cells)
        rows = np.nonzero(self._levels[:n] != ONE)[0]
        return {h3.int_to_str(self._cells[r]): multiplier_text(int(self._levels[r])) for r in rows}

    # -- the cadence -----------------------------------------------------------------------
    def due(self, now: float) -> bool:
        """Whether a cadence is due at ``now``. The first call only starts the clock: after
        a (re)start the index has no supply until the drivers ping again, so pricing waits
        a cadence rather than read an empty map as a shortage."""
        if self._next_at == -math.inf:
            self._next_at = now + self.config.cadence_s
            return False
        return now >= self._next_at

    def tick(
        self, now: float, cells: list[int], counts: np.ndarray, from_res: int
    ) -> list[ChangeSurge]:
        """Price every active cell at ``now``; ``cells`` and ``counts``: the index's cells
        (at resolution ``from_res``) and their drivers (``DriverIndex.cell_counts``)."""
        self._next_at = now + self.config.cadence_s
        self._expire(now - self.config.window_s)
        supply = self._supply(cells, counts, from_res)
        n = len(self._cells)
        levels, demand = self._levels[:n], self._demand[:n]
        active = np.nonzero((demand > 0) | (levels != ONE))[0]
        if not len(active):
            return []
        before = levels[active]
        after, target = self.config.curve.step(before, demand[active], supply[active])
        moved = np.nonzero(after != before)[0]
        rows = active[moved]
        columns = (after[moved], target[moved], demand[rows], supply[rows])
        window_s, cell_of, text = self.config.window_s, self._cells, multiplier_text
        return [
            ChangeSurge(h3.int_to_str(cell_of[row]), text(a), text(t), d, s, window_s)
            for row, a, t, d, s in zip(rows.tolist(), *(c.tolist() for c in columns), strict=True)
        ]

    def _expire(self, cutoff: float) -> None:
        window, demand = self._window, self._demand
        while window and window[0][0] <= cutoff:
            demand[window.popleft()[1]] -= 1

    def _supply(self, cells: list[int], counts: np.ndarray, from_res: int) -> np.ndarray:
        """Available drivers per row: the index's cells summed into their surge cells."""
        seen = len(self._slot_rows)
        if len(cells) > seen:  # cells new to the index since the last cadence
            to_parent = self._parent_of(from_res)
            new = [self._row(to_parent(c)) for c in cells[seen:]]
            self._slot_rows = np.concatenate([self._slot_rows, np.array(new, dtype=np.int64)])
        n = len(self._cells)
        if not len(counts):
            return np.zeros(n, dtype=np.int64)
        rows = self._slot_rows[: len(counts)]
        return np.bincount(rows, weights=counts, minlength=n)[:n].astype(np.int64)

    def _parent_of(self, from_res: int) -> Callable[[int], int]:
        res = self.resolution
        if from_res >= res:
            return lambda cell: h3i.cell_to_parent(cell, res)
        return lambda cell: h3i.cell_to_center_child(cell, res)  # a coarser index: its centre

    def _row(self, cell: int) -> int:
        row = self._row_of.get(cell)
        if row is None:
            row = self._row_of[cell] = len(self._cells)
            self._cells.append(cell)
            if row == len(self._levels):
                self._levels = np.concatenate([self._levels, np.full(row, ONE, dtype=np.int64)])
                self._demand = np.concatenate([self._demand, np.zeros(row, dtype=np.int64)])
        return row
