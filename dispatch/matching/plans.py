"""Ring plans: the grid rings around an origin cell with the distance bounds the scan needs.

For an origin cell O, ring i caches ``D_i = min over C in ring i of (d(centre(O), centre(C))
- r(C))`` and the largest such per-cell bound, where r(C) is the proven circumradius of C
(``geo.cell_disc``).  A query q in O is inside disk i - 1, and a geodesic from q to any
point outside disk i - 1 leaves it through a cell of ring i, so every driver in ring i or
beyond is at least ``D_i - d(q, centre(O))`` from q (triangle inequality).  Only measured
geometry and grid adjacency are used, so pentagons, distorted cells and the antimeridian are
covered.  Plans grow one ring at a time, as queries need them, and are cached per origin.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import h3
import numpy as np
from h3.api import basic_int as h3i

from dispatch.matching.geo import TWO_R_M, cell_disc

_FIRST_RINGS = 2  # built with a new plan: most queries at city densities end within them
Disc = tuple[float, float, float, float]  # centre lat_rad, centre lng_rad, cos lat, radius_m


class RingPlan:
    """Rings 0..n-1 around ``origin`` as the arrays ``scan.scan_rings`` reads (only the
    arrays are kept: about 40 bytes per ring cell)."""

    __slots__ = ("cells", "origin", "rings")

    def __init__(self, origin: int, slot_of: Callable[[int], int], disc: Callable[[int], Disc]):
        self.origin = origin
        self.rings = np.array([(-math.inf, -math.inf, 1.0)])
        self.cells = np.array([(float(slot_of(origin)), *disc(origin))])

    def __len__(self) -> int:
        return len(self.rings)

    def extend(
        self, slot_of: Callable[[int], int], disc: Callable[[int], Disc], rings: int = 1
    ) -> int:
        """Append the next ``rings`` rings with their bounds; returns how many cells that added."""
        ring_rows: list[tuple[float, float, float]] = []
        cell_rows: list[tuple[float, float, float, float, float]] = []
        la0, ln0, cl0 = (float(v) for v in self.cells[0, 1:4])
        end = len(self.cells)
        sin, asin, sqrt = math.sin, math.asin, math.sqrt
        for i in range(len(self.rings), len(self.rings) + rings):
            try:
                ring = h3i.grid_ring(self.origin, i)
            except h3.H3BaseException:  # pentagon distortion: fall back to the safe disk walk
                inner = set(h3i.grid_disk(self.origin, i - 1))
                ring = [c for c in h3i.grid_disk(self.origin, i) if c not in inner]
            lower, upper = math.inf, -math.inf
            for cell in sorted(ring):
                la, ln, cl, rad = disc(cell)
                s1 = sin((la - la0) * 0.5)
                s2 = sin((ln - ln0) * 0.5)
                a = s1 * s1 + cl0 * cl * s2 * s2
                bound = TWO_R_M * asin(sqrt(a if a < 1.0 else 1.0)) - rad  # geo.hav_to_m
                if bound < lower:
                    lower = bound
                if bound > upper:
                    upper = bound
                cell_rows.append((float(slot_of(cell)), la, ln, cl, rad))
            end += len(ring)
            ring_rows.append((lower, upper, float(end)))
        self.rings = np.concatenate([self.rings, np.array(ring_rows)])
        self.cells = np.concatenate([self.cells, np.array(cell_rows).reshape(-1, 5)])
        return len(cell_rows)


class PlanCache:
    """Plans by origin cell and discs by cell, dropped together past a budget of ring cells."""

    def __init__(self, slot_of: Callable[[int], int], budget_cells: int = 1_000_000) -> None:
        self._slot_of = slot_of
        self._budget = budget_cells
        self._plans: dict[int, RingPlan] = {}
        self._discs: dict[int, Disc] = {}
        self._cells = 0

    def plan(self, origin: int) -> RingPlan:
        plan = self._plans.get(origin)
        if plan is None:
            if self._cells > self._budget:
                self._plans.clear()
                self._discs.clear()
                self._cells = 0
            plan = self._plans[origin] = RingPlan(origin, self._slot_of, self.disc)
            self._cells += 1 + plan.extend(self._slot_of, self.disc, _FIRST_RINGS)
        return plan

    def extend(self, plan: RingPlan) -> None:
        self._cells += plan.extend(self._slot_of, self.disc)

    def disc(self, cell: int) -> Disc:
        disc = self._discs.get(cell)
        if disc is None:
            disc = self._discs[cell] = cell_disc(cell)
        return disc
