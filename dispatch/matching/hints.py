"""Repositioning hints: idle drivers told where demand outruns supply (docs/MARKETPLACE.md,
"Places: repositioning hints").

At a cadence (``every_s``) the shard's matcher counts, per H3 cell of ``resolution`` (8,
the surge cells: about 0.7 km2), the demand (the larger of the rides waiting for a driver
and the requests of the surge window) and the available drivers with a fresh position
(supply). A cell whose demand exceeds its supply is short by
the difference. Shortest cells first (then by cell id, so a cadence decides the same way
every time), each short cell pulls up to its shortage of the nearest idle drivers the shard
serves that can drive there within ``max_drive_s`` (by the matcher's ETA), that were not
hinted in the last ``min_interval_s`` (the per-driver rate limit), that are not in the cell
already and not waiting in a place's queue. A cadence sends at most ``max_per_cadence``.

Each hint is a decision the shard records (``Driver.Hinted``: the cell, its centre, its
demand and supply, the ETA), so it reaches the driver's offer stream and the log says what
each driver was told. A hint is advice: nothing holds the driver to it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from uuid import UUID

import h3
from h3.api import basic_int as h3i

from dispatch.matching.decisions import HintDriver
from dispatch.matching.eta import EtaProvider
from dispatch.matching.index import DriverIndex
from dispatch.matching.strategies import PendingRide

SPEED_BOUND_MS = 120 / 3.6  # no leg is driven faster: the search radius of a drive time


@dataclass(frozen=True, slots=True)
class HintConfig:
    every_s: float = 30.0
    min_interval_s: float = 300.0
    max_drive_s: float = 600.0
    resolution: int = 8
    max_per_cadence: int = 500

    def __post_init__(self) -> None:
        if not (self.every_s > 0 and self.min_interval_s >= 0 and self.max_drive_s > 0):
            raise ValueError("hints: every_s and max_drive_s > 0, min_interval_s >= 0")
        if not 0 <= self.resolution <= 15 or self.max_per_cadence < 1:
            raise ValueError("hints: resolution 0-15, max_per_cadence >= 1")


class Hints:
    """When the next cadence is due, and when each driver was last hinted."""

    def __init__(self, config: HintConfig) -> None:
        self.config = config
        self.last: dict[UUID, float] = {}  # driver -> when last hinted (the rate limit)
        self._next = float("-inf")

    def due(self, now: float) -> bool:
        if now < self._next:
            return False
        self._next = now + self.config.every_s
        return True

    def tick(
        self,
        now: float,
        waiting: Iterable[PendingRide],
        index: DriverIndex[UUID],
        eligible: Callable[[UUID], bool],
        eta: EtaProvider,
        recent: Iterable[str] = (),
    ) -> list[HintDriver]:
        """The cadence's hints (``eligible``: an available driver this shard serves, not
        waiting in a place's queue). ``recent``: the cells of the requests of the surge
        window (surge's demand): a cell's demand is the larger of its waiting rides and its
        recent requests."""
        cfg = self.config
        demand = Counter(h3.latlng_to_cell(r.lat, r.lng, cfg.resolution) for r in waiting)
        for cell, count in Counter(recent).items():
            if count > demand.get(cell, 0):
                demand[cell] = count
        if not demand:
            return []
        supply = self._supply(index)
        short = sorted(
            ((d - supply.get(cell, 0), cell) for cell, d in demand.items()
             if d > supply.get(cell, 0)),
            key=lambda item: (-item[0], item[1]),
        )  # fmt: skip
        self._forget(now)
        out: list[HintDriver] = []
        taken: set[UUID] = set()
        radius_m = min(cfg.max_drive_s * SPEED_BOUND_MS, index.max_radius_m)
        for shortage, cell in short:
            lat, lng = h3.cell_to_latlng(cell)
            skip = _Skip(taken, self.last, now - cfg.min_interval_s, cell, cfg.resolution, index)
            found = index.nearest(lat, lng, shortage * 4, radius_m, now, skip)
            found = [(d, m) for d, m in found if eligible(d)][:shortage]
            if not found:
                continue
            sources = []
            for driver_id, distance in found:
                pos = index.position(driver_id)
                assert pos is not None
                sources.append((pos[0], pos[1], distance))
            for (driver_id, _), eta_s in zip(found, eta.etas_s(lat, lng, sources), strict=True):
                if eta_s > cfg.max_drive_s:
                    continue
                there = supply.get(cell, 0)
                out.append(HintDriver(driver_id, cell, round(lat, 6), round(lng, 6),
                                      demand[cell], there, round(eta_s, 1)))  # fmt: skip
                taken.add(driver_id)
                self.last[driver_id] = now
                if len(out) >= cfg.max_per_cadence:
                    return out
        return out

    def _supply(self, index: DriverIndex[UUID]) -> dict[str, int]:
        """Available drivers per hint cell (the index's cells mapped to their parents)."""
        cells, counts = index.cell_counts()
        res = self.config.resolution
        out: Counter[str] = Counter()
        for cell, count in zip(cells, counts.tolist(), strict=True):
            if count:
                parent = h3i.cell_to_parent(cell, res) if res < index.resolution else cell
                out[h3.int_to_str(parent)] += int(count)
        return out

    def _forget(self, now: float) -> None:
        """Drop the rate limit of drivers hinted longer ago than it lasts."""
        horizon = now - self.config.min_interval_s
        if len(self.last) > 1_000:
            self.last = {d: at for d, at in self.last.items() if at > horizon}


class _Skip:
    """The drivers a short cell does not pull: taken this cadence, hinted within the rate
    limit, or already in the cell."""

    __slots__ = ("cell", "horizon", "index", "last", "res", "taken")

    def __init__(self, taken: set[UUID], last: dict[UUID, float], horizon: float, cell: str,
                 res: int, index: DriverIndex[UUID]) -> None:  # fmt: skip
        self.taken, self.last, self.horizon = taken, last, horizon
        self.cell, self.res, self.index = cell, res, index

    def __contains__(self, item: object) -> bool:
        if item in self.taken or self.last.get(item, float("-inf")) > self.horizon:  # type: ignore[call-overload]
            return True
        pos = self.index.position(item)  # type: ignore[arg-type]
        return pos is not None and _parent(self.index, pos[0], pos[1], self.res) == self.cell


def _parent(index: DriverIndex[UUID], lat: float, lng: float, res: int) -> str:
    """The hint cell of a driver at ``(lat, lng)``: its index cell's parent, as the supply
    is counted (an H3 child is not exactly inside its parent)."""
    cell = h3i.latlng_to_cell(lat, lng, index.resolution)
    return str(h3.int_to_str(h3i.cell_to_parent(cell, res) if res < index.resolution else cell))
