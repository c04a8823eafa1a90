"""What the matcher needs of a surge tracker (``dispatch.pricing.tracker`` is one): it is
fed the ride requests and the recorded multipliers the matcher folds, and priced on the
matcher's tick from the index's supply."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from dispatch.matching.decisions import ChangeSurge


class SurgeTracking(Protocol):
    def requested(self, lat: float, lng: float, at: float) -> None:
        """A ride requested at ``(lat, lng)`` at time ``at``."""

    def owned_by(self, shard: int) -> None:
        """The shard the tracker prices for (the cells it owns)."""

    def window(self) -> list[tuple[str, float]]:
        """The window's requests (surge cell, time), for a checkpoint."""
        ...

    def load_window(self, requests: list[tuple[str, float]]) -> None:
        """A checkpoint's window, into a fresh tracker."""

    def level(self, cell: str, multiplier: str) -> None:
        """A cell's multiplier as the shard recorded it."""

    def levels_recorded(self, cells: list[str], multipliers: list[str]) -> None:
        """A cadence's multipliers as the shard recorded them (``level`` of each)."""

    def load(self, levels: dict[str, str]) -> None:
        """The multipliers as saved (cells above 1.00), after a restore."""

    def due(self, now: float) -> bool:
        """Whether a cadence is due at ``now``."""

    def meet(self, cells: list[int], from_res: int) -> None:
        """The index's cells (at ``from_res``) between cadences: those new since the last
        call are mapped to their surge cells now, not all at the next cadence."""

    def tick(
        self, now: float, cells: list[int], counts: np.ndarray, from_res: int
    ) -> ChangeSurge | None:
        """Price the active cells; ``cells`` and ``counts``: the index's (at ``from_res``).
        None when no cell moves."""
