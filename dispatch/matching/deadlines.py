"""Deadlines: things that fall due at a time, found without scanning the ones not yet due.

A heap with lazy deletion. An entry stays live while ``current(key)`` still returns the time
it was added with; once due, a live key is reported at every call of ``due`` until
``current`` changes (the matcher keeps deciding an expiry until the event that carries it
comes back), so a decision that was not recorded is made again.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Hashable, Iterable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class Deadlines(Generic[K]):
    def __init__(
        self,
        current: Callable[[K], float | None],
        live: Callable[[], Iterable[tuple[K, float]]],
    ) -> None:
        """``current(key)``: the key's deadline now, or None when it has none any more;
        ``live()``: every key with a deadline (to drop superseded entries now and then)."""
        self._current, self._live = current, live
        self._heap: list[tuple[float, int, K]] = []
        self._fallen: dict[K, float] = {}  # due, still live, in the order they fell due
        self._seq = itertools.count()  # keeps the order of equal deadlines as added
        self._limit = 4096  # heap size that triggers dropping superseded entries

    def __len__(self) -> int:
        """Entries held (live or superseded): bounded by about twice the live keys."""
        return len(self._heap) + len(self._fallen)

    def add(self, key: K, at: float) -> None:
        heapq.heappush(self._heap, (at, next(self._seq), key))
        if len(self._heap) >= self._limit:
            self._compact()

    def due(self, now: float) -> list[K]:
        """The keys whose live deadline is at or before ``now``."""
        heap, current = self._heap, self._current
        while heap and heap[0][0] <= now:
            at, _, key = heapq.heappop(heap)
            if current(key) == at:
                self._fallen[key] = at
        out: list[K] = []
        for key, at in list(self._fallen.items()):
            if current(key) == at:
                out.append(key)
            else:
                del self._fallen[key]
        return out

    def _compact(self) -> None:
        """Keep one entry per live key not yet fallen due (superseded entries pile up
        otherwise); the next compaction waits until the heap has doubled again."""
        live = sorted(
            ((at, key) for key, at in self._live() if self._fallen.get(key) != at),
            key=lambda entry: entry[0],
        )
        self._heap = [(at, next(self._seq), key) for at, key in live]  # sorted: a heap
        self._limit = max(4096, 2 * len(self._heap))
