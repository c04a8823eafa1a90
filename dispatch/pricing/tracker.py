"""The shard's surge tracker: demand and supply per surge cell, priced on a cadence.

Held by the matcher (as its ``matching.surge.SurgeTracking``) and fed what the matcher
folds: each ride request (its pickup's cell, at its time) is demand for ``window_s``; the
available drivers of the matcher's index are supply. Every ``cadence_s`` of the shard's
clock, ``tick`` prices every active cell (one with demand in the window, or a multiplier
above 1.00) with the curve at once (numpy, ``dispatch.pricing.surge``) and returns a
``ChangeSurge`` of the cells whose multipliers move; the shard records them as one
``Surge.Recomputed``, and the event comes back through ``levels_recorded``. A restore loads
the levels from the shard's surge aggregate (``load``), and the window's requests from the
checkpoint (``window``/``load_window``: every request of the window, whatever became of its
ride) and the log after it, so a restored shard prices exactly as one that never stopped.

Cells are H3 cells at ``SURGE_RESOLUTION`` (8), numbered by the tracker in the order first
seen, so the arrays a cadence works on need no dictionary lookup per cell.
"""

from __future__ import annotations

import bisect
import math
from array import array
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import cast

import h3
import numpy as np
from h3.api import basic_int as h3i

from dispatch.domain.fares import MAX_SURGE
from dispatch.domain.surge import SURGE_RESOLUTION
from dispatch.matching.decisions import ChangeSurge
from dispatch.pricing.surge import ONE, SurgeCurve, hundredths, multiplier_text

# Every multiplier's text, by level (a cadence names thousands).
_TEXTS = [multiplier_text(level) for level in range(int(MAX_SURGE * 100) + 1)]
_LEVELS = {text: level for level, text in enumerate(_TEXTS)}


# Requests held before a fold drops those out of every window to come.
_TRIM_EVERY = 65_536


@dataclass(frozen=True, slots=True)
class SurgeConfig:
    curve: SurgeCurve
    cadence_s: float = 30.0
    window_s: float = 300.0
    # The shard that owns a surge cell (by its text), when there are several shards: only
    # it counts the cell's demand and supply and records it (``owned_by``).
    owner: Callable[[str], int] | None = None


class SurgeTracker:
    def __init__(self, config: SurgeConfig, resolution: int = SURGE_RESOLUTION) -> None:
        if config.cadence_s <= 0 or config.window_s <= 0:
            raise ValueError("a surge tracker needs a cadence and a window above 0")
        if config.window_s < config.cadence_s:
            raise ValueError("a surge window shorter than the cadence misses requests")
        self.config, self.resolution = config, resolution
        self._row_of: dict[int, int] = {}  # cell -> row
        self._cells: list[int] = []  # row -> cell
        self._levels = np.full(64, ONE, dtype=np.int64)
        self._demand = np.zeros(64, dtype=np.int64)
        self._owned = np.ones(64, dtype=bool)  # row -> this shard owns the cell
        self._shard: int | None = None
        # The window's requests in time order: times and rows from ``_head`` on; the rows of
        # requests not counted yet (``_added``).
        # (arrays: numpy reads them without a copy)
        self._times = array("d")
        self._rows = array("q")
        self._head = 0
        self._unsorted = False
        self._added = array("q")
        self._names: list[str] = []  # row -> cell, as text
        self._row_of_name: dict[str, int] = {}  # cell, as text -> row
        # index slot -> row of its surge cell (-1: a cell with no row yet)
        self._slot_rows = np.zeros(0, dtype=np.int64)
        self._cell_ints = np.zeros(64, dtype=np.uint64)  # row -> cell, for lookups at once
        self._sorted: tuple[np.ndarray, np.ndarray] | None = None  # cells sorted, their rows
        # the unmapped slots' surge cells (sorted) and slots; the rows they were checked for
        self._pending = (np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.int64))
        self._pending_rows = 0
        self._next_at = -math.inf
        self._latest = -math.inf  # the latest request time seen
        self._curve = config.curve.record()

    def owned_by(self, shard: int) -> None:
        """This tracker is shard ``shard``'s: with an ``owner`` rule, it prices only the
        cells the rule gives it (set before anything is fed)."""
        if self._cells:
            raise ValueError("a tracker's shard is set before it is fed")
        self._shard = shard

    # -- inputs ----------------------------------------------------------------------------
    def requested(self, lat: float, lng: float, at: float) -> None:
        """A ride requested at ``(lat, lng)`` at time ``at``: demand for the window (of an
        owned cell only). A request already out of every window to come (``window_s`` or
        more before the latest seen: a full fold of an old log) is not kept."""
        if at > self._latest:
            self._latest = at
        elif at <= self._latest - self.config.window_s:
            return  # (the next cadence, at or after the latest request, would drop it)
        if len(self._times) - self._head >= _TRIM_EVERY:
            # a long fold: drop what no window to come can hold now, not at the first tick
            self._count(self._latest - self.config.window_s)
        row = self._row(h3i.latlng_to_cell(lat, lng, self.resolution))
        if not self._owned[row]:
            return
        self._added.append(row)  # counted at the next cadence, all at once
        if self._times and at < self._times[-1]:  # (a checkpoint's rides come in any order)
            self._unsorted = True
        self._times.append(at)
        self._rows.append(row)

    def window(self) -> list[tuple[str, float]]:
        """The requests the window may still hold (each surge cell, as text, and its
        time), for a checkpoint: a restore that loads them (``load_window``) counts exactly
        the demand this tracker would at its next cadence, whatever became of the rides."""
        names, head = self._names, self._head
        return [(names[r], t) for t, r in zip(self._times[head:], self._rows[head:], strict=True)]

    def load_window(self, requests: list[tuple[str, float]]) -> None:
        """A checkpoint's window (``window``), before any request is folded."""
        for cell, at in requests:
            row = self._row(h3.str_to_int(cell))
            if not self._owned[row]:
                continue
            self._added.append(row)
            if self._times and at < self._times[-1]:
                self._unsorted = True
            self._times.append(float(at))
            self._rows.append(row)

    def level(self, cell: str, multiplier: str) -> None:
        """A cell's multiplier as the shard recorded it (``"1.35"``)."""
        row = self._row(h3.str_to_int(cell))  # first: a new row may grow the arrays
        self._levels[row] = hundredths(Decimal(multiplier))

    def levels_recorded(self, cells: list[str], multipliers: list[str]) -> None:
        """A cadence's multipliers as the shard recorded them (a ``Surge.Recomputed``):
        each cell's, as ``level``, set at once (thousands at a time: the cells' rows and
        the texts the tracker itself made are looked up, not parsed)."""
        found = list(map(self._row_of_name.get, cells))
        if None in found:  # a cell new to the tracker (a fold whose requests were too old)
            rows = [self._row(h3.str_to_int(c)) if r is None else r
                    for c, r in zip(cells, found, strict=True)]  # fmt: skip
        else:
            rows = cast(list[int], found)
        known = list(map(_LEVELS.get, multipliers))
        if None in known:  # (not a text the tracker makes: parsed, and checked)
            levels = [hundredths(Decimal(m)) for m in multipliers]
        else:
            levels = cast(list[int], known)
        self._levels[rows] = levels  # (after any new row: the array may have grown)

    def load(self, levels: dict[str, str]) -> None:
        """The multipliers the shard's surge aggregate holds (cells above 1.00), replacing
        the levels folded so far."""
        self._levels[: len(self._cells)] = ONE
        for cell, multiplier in levels.items():
            self.level(cell, multiplier)
        # (a level above a lowered cap is served until the next cadence brings it down)

    def levels(self) -> dict[str, str]:
        """Every cell above 1.00, with its multiplier."""
        n = len(self._cells)
        rows = np.nonzero(self._levels[:n] != ONE)[0]
        return {self._names[r]: _TEXTS[int(self._levels[r])] for r in rows}

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
    ) -> ChangeSurge | None:
        """Price every active cell at ``now``; ``cells`` and ``counts``: the index's cells
        (at resolution ``from_res``) and their drivers (``DriverIndex.cell_counts``)."""
        self._next_at = now + self.config.cadence_s
        self._count(now - self.config.window_s)
        supply = self._supply(cells, counts, from_res)
        n = len(self._cells)
        levels, demand = self._levels[:n], self._demand[:n]
        active = np.nonzero(((demand > 0) | (levels != ONE)) & self._owned[:n])[0]
        if not len(active):
            return None
        before = levels[active]
        after, target = self.config.curve.step(before, demand[active], supply[active])
        moved = np.nonzero(after != before)[0]
        if not len(moved):
            return None
        rows = active[moved].tolist()
        names, text = self._names, _TEXTS
        return ChangeSurge(
            [names[row] for row in rows],
            [text[a] for a in after[moved].tolist()],
            [text[t] for t in target[moved].tolist()],
            demand[active[moved]].tolist(),
            supply[active[moved]].tolist(),
            self.config.window_s,
            self._curve,
        )

    def _count(self, cutoff: float) -> None:
        """Count the requests added since the last cadence, and drop those at or before
        ``cutoff`` (out of the window), each in one pass."""
        n = len(self._cells)
        if self._added:
            added = np.frombuffer(self._added, dtype=np.int64)
            self._demand[:n] += np.bincount(added, minlength=n)[:n]
            self._added = array("q")
        head = self._head
        if self._unsorted:
            pairs = sorted(zip(self._times[head:], self._rows[head:], strict=True))
            self._times = array("d", (t for t, _ in pairs))
            self._rows = array("q", (r for _, r in pairs))
            head = self._head = 0
            self._unsorted = False
        cut = bisect.bisect_right(self._times, cutoff, head)
        if cut > head:
            gone = np.frombuffer(self._rows, dtype=np.int64)[head:cut]
            self._demand[:n] -= np.bincount(gone, minlength=n)[:n]
            del gone  # (a view of the array: it could not be resized while held)
            head = self._head = cut
        if head > 4096 and head * 2 > len(self._times):  # drop what left, now and then
            del self._times[:head], self._rows[:head]
            self._head = 0

    def meet(self, cells: list[int], from_res: int) -> None:
        """Map the index's cells new since the last call (or cadence) to their surge cells:
        called on the matcher's ticks between cadences, so the cells that drivers' pings
        bring (every one of them after a start) are mapped a few at a time, not all in the
        first cadence.

        Looked up among the rows all at once (sorted, numpy), never one at a time: a surge
        cell with no row yet (no demand, no level: not priced, so its supply is not needed)
        leaves the slot pending until a row appears for it (a request there), when the next
        call maps it (the new rows looked up among the pending, not the pending again)."""
        n = len(self._cells)
        keys, slots = self._pending
        if n > self._pending_rows and len(keys):
            new_cells = self._cell_ints[self._pending_rows : n]
            lo = np.searchsorted(keys, new_cells, "left")
            took = np.searchsorted(keys, new_cells, "right") - lo
            if took.any():
                starts, found = lo[took > 0], took[took > 0]
                rows = np.arange(self._pending_rows, n, dtype=np.int64)[took > 0]
                first = np.repeat(np.cumsum(found) - found, found)
                at = np.repeat(starts, found) + np.arange(int(found.sum())) - first
                self._slot_rows[slots[at]] = np.repeat(rows, found)
                kept = np.ones(len(keys), dtype=bool)
                kept[at] = False
                keys, slots = self._pending = (keys[kept], slots[kept])
        self._pending_rows = n
        seen = len(self._slot_rows)
        if len(cells) > seen:  # cells new to the index
            parents = self._parents(cells[seen:], from_res)
            rows = self._rows_of(parents)
            self._slot_rows = np.concatenate([self._slot_rows, rows])
            unmapped = np.nonzero(rows < 0)[0]
            if len(unmapped):
                keys = np.concatenate([keys, parents[unmapped]])
                slots = np.concatenate([slots, unmapped + seen])
                order = np.argsort(keys, kind="stable")
                self._pending = (keys[order], slots[order])

    def _supply(self, cells: list[int], counts: np.ndarray, from_res: int) -> np.ndarray:
        """Available drivers per row: the index's cells summed into their surge cells."""
        self.meet(cells, from_res)
        n = len(self._cells)
        if not len(counts):
            return np.zeros(n, dtype=np.int64)
        rows = self._slot_rows[: len(counts)]
        rows = np.where(rows < 0, n, rows)  # the unmapped into a bin past the rows
        return np.bincount(rows, weights=counts, minlength=n + 1)[:n].astype(np.int64)

    def _rows_of(self, cells: np.ndarray) -> np.ndarray:
        """The row of each surge cell (H3 ints), -1 for a cell with no row."""
        n = len(self._cells)
        if self._sorted is None or len(self._sorted[0]) != n:
            order = np.argsort(self._cell_ints[:n], kind="stable")
            self._sorted = (self._cell_ints[:n][order], order.astype(np.int64))
        keys, rows = self._sorted
        if not n:
            return np.full(len(cells), -1, dtype=np.int64)
        order = np.argsort(cells)  # (sorted needles: several times faster to look up)
        needles = cells[order]
        at = np.minimum(np.searchsorted(keys, needles), n - 1)
        out = np.empty(len(cells), dtype=np.int64)
        out[order] = np.where(keys[at] == needles, rows[at], -1)
        return out

    def _parents(self, cells: list[int], from_res: int) -> np.ndarray:
        """The surge cell of each index cell (at ``from_res``): its parent, computed on the
        H3 index's bits (the resolution field set, the finer digits set to 7, as
        ``h3.cell_to_parent`` does), all at once; an index coarser than the surge cells
        gives its centre child."""
        res = self.resolution
        if from_res < res:
            return np.array([h3i.cell_to_center_child(c, res) for c in cells], dtype=np.uint64)
        ints = np.array(cells, dtype=np.uint64)
        finer = sum(7 << ((15 - r) * 3) for r in range(res + 1, 16))
        kept = ~np.uint64(0xF << 52)
        return (ints & kept) | np.uint64(res << 52) | np.uint64(finer)

    def _row(self, cell: int) -> int:
        row = self._row_of.get(cell)
        if row is None:
            row = self._row_of[cell] = len(self._cells)
            self._cells.append(cell)
            name = h3i.int_to_str(cell)
            self._names.append(name)
            self._row_of_name[name] = row
            if row == len(self._levels):
                self._levels = np.concatenate([self._levels, np.full(row, ONE, dtype=np.int64)])
                self._demand = np.concatenate([self._demand, np.zeros(row, dtype=np.int64)])
                self._owned = np.concatenate([self._owned, np.ones(row, dtype=bool)])
                self._cell_ints = np.concatenate([self._cell_ints, np.zeros(row, np.uint64)])
            self._cell_ints[row] = cell
            owner = self.config.owner
            if owner is not None and self._shard is not None:
                self._owned[row] = owner(name) == self._shard
        return row
