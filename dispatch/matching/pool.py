"""Driver rows grouped by H3 cell in one numpy buffer, readable by the compiled scan.

Each cell that the index has seen gets a *slot*: a block of rows (5 doubles per driver) in
``rows``, starting at ``starts[slot]`` and holding ``counts[slot]`` drivers, with room for
``capacity[slot]``.  A full block moves to the end of the buffer with twice the room; when
the dead space left behind outweighs the live blocks, everything is packed again.  Writes go
through memoryviews (as fast as ``array('d')``); the scan reads the same memory as numpy.
"""

from __future__ import annotations

from collections.abc import Hashable

import numpy as np

ROW = 5  # lat_rad / 2, lng_rad / 2, cos lat, ping time, insertion seq
_MIN_BLOCK = 8  # rows (a resolution-9 cell holds about 5 drivers at city density)


class RowPool:
    def __init__(self) -> None:
        self.slot_of: dict[int, int] = {}  # cell -> slot
        self.cells: list[int] = []  # slot -> cell
        self.ids: list[list[Hashable]] = []  # slot -> driver ids, in row order
        self.capacity: list[int] = []  # slot -> rows its block can hold
        self._occupied: set[int] = set()  # slots holding rows (the only ones with capacity)
        self.occupied_version = 0  # bumped whenever a slot becomes empty or non-empty
        self._end = 0  # first unallocated double
        self._live = 0  # doubles held by blocks (allocated capacity)
        self.rows = np.zeros(1024 * ROW)
        self._rv = _doubles(self.rows)
        self.starts = np.zeros(1024, dtype=np.int64)
        self.counts = np.zeros(1024, dtype=np.int64)
        self._sv = _ints(self.starts)
        self._cv = _ints(self.counts)

    def __getstate__(self) -> dict[str, object]:
        """Pickled without the memoryviews (views are snapshotted with their index)."""
        return {k: v for k, v in self.__dict__.items() if k not in ("_rv", "_sv", "_cv")}

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        self._rv = _doubles(self.rows)
        self._sv, self._cv = _ints(self.starts), _ints(self.counts)

    def slot(self, cell: int) -> int:
        """The cell's slot, created empty on first sight."""
        slot = self.slot_of.get(cell)
        if slot is None:
            slot = self.slot_of[cell] = len(self.cells)
            self.cells.append(cell)
            self.ids.append([])
            self.capacity.append(0)
            if slot == len(self.starts):
                self.starts = np.concatenate([self.starts, np.zeros_like(self.starts)])
                self.counts = np.concatenate([self.counts, np.zeros_like(self.counts)])
                self._sv, self._cv = _ints(self.starts), _ints(self.counts)
        return slot

    def append(
        self, slot: int, driver_id: Hashable, la: float, ln: float, cl: float, at: float, seq: int
    ) -> int:
        """Add a row to the slot's block; returns its position in the block."""
        ids = self.ids[slot]
        pos = len(ids)
        if pos == self.capacity[slot]:
            self._grow(slot)
        o = self._sv[slot] + pos * ROW
        rv = self._rv
        rv[o] = la * 0.5
        rv[o + 1] = ln * 0.5
        rv[o + 2] = cl
        rv[o + 3] = at
        rv[o + 4] = float(seq)
        ids.append(driver_id)
        self._cv[slot] = pos + 1
        if pos == 0:
            self._occupied.add(slot)
            self.occupied_version += 1
        return pos

    def write(self, slot: int, pos: int, la: float, ln: float, cl: float, at: float) -> None:
        """Overwrite a row's position and ping time in place."""
        o = self._sv[slot] + pos * ROW
        rv = self._rv
        rv[o] = la * 0.5
        rv[o + 1] = ln * 0.5
        rv[o + 2] = cl
        rv[o + 3] = at

    def delete(self, slot: int, pos: int) -> Hashable | None:
        """Remove a row by moving the block's last row into its place; returns the id of the
        driver that moved to ``pos`` (None if the removed row was the last)."""
        ids = self.ids[slot]
        last = len(ids) - 1
        moved: Hashable | None = None
        if pos != last:
            start = self._sv[slot]
            o, e = start + pos * ROW, start + last * ROW
            self._rv[o : o + ROW] = self._rv[e : e + ROW]
            moved = ids[pos] = ids[last]
        ids.pop()
        self._cv[slot] = last
        if last == 0:  # an empty block is given up: its room is dead until the next pack
            self._live -= self.capacity[slot] * ROW
            self.capacity[slot] = 0
            self._occupied.discard(slot)
            self.occupied_version += 1
        return moved

    @property
    def occupied(self) -> int:
        """How many slots hold at least one row."""
        return len(self._occupied)

    def occupied_slots(self) -> list[int]:
        return sorted(self._occupied)

    def _grow(self, slot: int) -> None:
        old_cap = self.capacity[slot]
        cap = max(_MIN_BLOCK, 2 * old_cap)
        if self._end + cap * ROW > len(self.rows):
            if self._live + cap * ROW < len(self.rows) // 2:
                self._pack()  # mostly dead space: pack in place of growing
            if self._end + cap * ROW > len(self.rows):
                self._resize(max(2 * len(self.rows), self._end + cap * ROW))
        start, n = self._sv[slot], len(self.ids[slot]) * ROW
        self._rv[self._end : self._end + n] = self._rv[start : start + n]
        self._sv[slot] = self._end
        self._end += cap * ROW
        self._live += (cap - old_cap) * ROW
        self.capacity[slot] = cap

    def _resize(self, size: int) -> None:
        rows = np.zeros(size)
        rows[: self._end] = self.rows[: self._end]
        self.rows, self._rv = rows, _doubles(rows)

    def _pack(self) -> None:
        """Copy every non-empty block, with its capacity, to a fresh buffer back to back
        (empty slots hold no room, so only occupied ones move: cost ~ live rows)."""
        rows = np.zeros(len(self.rows))
        end = 0
        for slot in self._occupied:
            n = len(self.ids[slot]) * ROW
            start = self._sv[slot]
            rows[end : end + n] = self.rows[start : start + n]
            self._sv[slot] = end
            end += self.capacity[slot] * ROW
        self.rows, self._rv = rows, _doubles(rows)
        self._end = self._live = end


def _doubles(a: np.ndarray) -> memoryview[float]:
    """A writable view of a float64 array (item writes cost what ``array('d')``'s do)."""
    return a.data.cast("B").cast("d")


def _ints(a: np.ndarray) -> memoryview[int]:
    return a.data.cast("B").cast("q")
