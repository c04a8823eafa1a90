"""H3-bucketed index of available drivers with exact k-nearest search.

Drivers live in per-cell buckets keyed by their H3 cell at ``resolution``.  ``nearest`` walks
the grid rings around the query's cell and stops as soon as a *proven* lower bound on the
distance to every unvisited cell exceeds the k-th best exact distance found so far, so the
answer always equals a brute-force haversine scan.

The bound: every cell C has a cached centre and a circumradius r(C) that contains every point
H3 assigns to C (``geo.cell_disc``).  For an origin cell O, ring i caches
``D_i = min over C in ring i of (d(centre(O), centre(C)) - r(C))``.  The query q lies in O,
inside disk i-1; a geodesic from q to any point outside disk i-1 first leaves it through a
cell of ring i (cells touching disk i-1 are its grid neighbours), so by the triangle
inequality every driver in ring i *or beyond* is at least ``D_i - d(q, centre(O))`` from q.
Within a ring, a cell is skipped when ``d(q, centre(C)) - r(C)`` exceeds the k-th distance.
Only measured geometry and grid adjacency are used, so pentagons, distorted cells and the
antimeridian are covered.  Candidates are ranked by the haversine term (monotone in distance);
only the final k are converted to metres.  When the walk has covered more cells than are
occupied (a sparse index), the remaining search scans the occupied cells with the same
per-cell bound instead of walking ever larger rings.

Storage is cache-friendly: each cell holds one ``array('d')`` of interleaved
``(lat_rad / 2, lng_rad / 2, cos_lat, ping_time, seq)`` rows, which the scan reads contiguously.
"""

from __future__ import annotations

import heapq
import itertools
import math
from array import array
from collections.abc import Collection, Container, Hashable
from typing import Final, TypeAlias

import h3
from h3.api import basic_int as h3i

from dispatch.matching.geo import TWO_R_M, cell_disc, check_latlng, hav_to_m, m_to_hav

_ROW = 5  # doubles per driver row: lat_rad / 2, lng_rad / 2, cos_lat, ping time, insertion seq
# (D_i lower bound, max cell lower bound from the origin centre, cells, 4 doubles per cell:
#  centre lat_rad, centre lng_rad, cos centre lat, circumradius_m)
_Ring: TypeAlias = "tuple[float, float, array[int], array[float]]"
_MAX_CACHED_RING_CELLS = 1_000_000  # plan cache budget (ring cells referenced) before a reset


class _Driver:
    __slots__ = ("at", "cell", "due", "lat", "lng", "pos", "seq", "token")

    def __init__(self, cell: int, pos: int, lat: float, lng: float, at: float, seq: int) -> None:
        self.cell, self.pos, self.lat, self.lng, self.at, self.seq = cell, pos, lat, lng, at, seq
        self.due = math.inf  # key of the live expiry-heap entry (<= at once scheduled)
        self.token = -1  # identifies the live expiry-heap entry


class DriverIndex:
    """Available drivers bucketed by H3 cell, with exact k-nearest queries."""

    def __init__(
        self, resolution: int = 9, ttl_s: float = 30.0, max_radius_m: float = 10_000.0
    ) -> None:
        if not 0 <= resolution <= 15:
            raise ValueError(f"resolution must be in [0, 15], got {resolution!r}")
        if not (ttl_s > 0 and math.isfinite(ttl_s)):
            raise ValueError(f"ttl_s must be a positive finite number, got {ttl_s!r}")
        if not (max_radius_m > 0 and math.isfinite(max_radius_m)):
            raise ValueError(f"max_radius_m must be a positive finite number, got {max_radius_m!r}")
        self.resolution: Final = resolution
        self.ttl_s: Final = float(ttl_s)
        self.max_radius_m: Final = float(max_radius_m)
        self._rows: dict[int, array[float]] = {}  # cell -> interleaved driver rows
        self._ids: dict[int, list[Hashable]] = {}  # cell -> driver ids, same order as rows
        self._drivers: dict[Hashable, _Driver] = {}
        self._by_seq: dict[int, Hashable] = {}
        self._plans: dict[int, list[_Ring]] = {}  # origin cell -> rings around it
        self._plan_cells = 0
        self._discs: dict[int, tuple[float, float, float, float]] = {}  # cell -> geo.cell_disc
        self._expiry: list[tuple[float, int, Hashable]] = []  # lazy heap (due, token, id)
        self._seq = itertools.count()
        self._tokens = itertools.count()

    def __len__(self) -> int:
        return len(self._drivers)

    def __contains__(self, driver_id: object) -> bool:
        return driver_id in self._drivers

    def position(self, driver_id: Hashable) -> tuple[float, float, float] | None:
        """``(lat, lng, at)`` of the driver's last ping, or None if unknown."""
        d = self._drivers.get(driver_id)
        return None if d is None else (d.lat, d.lng, d.at)

    def cell(self, driver_id: Hashable) -> str | None:
        """The driver's H3 cell at the index resolution, or None if unknown."""
        d = self._drivers.get(driver_id)
        return None if d is None else h3.int_to_str(d.cell)

    def upsert(self, driver_id: Hashable, lat: float, lng: float, at: float) -> None:
        """Add a driver or move it to ``(lat, lng)`` pinged at time ``at`` (seconds)."""
        if not (-90.0 <= lat <= 90.0 and -180.0 <= lng <= 180.0):
            check_latlng(lat, lng)  # raises with a clear message
        if not math.isfinite(at):
            raise ValueError(f"ping time must be finite, got {at!r}")
        cell = h3i.latlng_to_cell(lat, lng, self.resolution)
        la = math.radians(lat)
        ln = math.radians(lng)
        d = self._drivers.get(driver_id)
        if d is not None and d.cell == cell:  # same cell: overwrite the row in place
            rows = self._rows[cell]
            o = d.pos * _ROW
            rows[o] = la * 0.5
            rows[o + 1] = ln * 0.5
            rows[o + 2] = math.cos(la)
            rows[o + 3] = at
            d.lat, d.lng, d.at = lat, lng, at
        else:
            if d is None:
                d = _Driver(cell, 0, lat, lng, at, next(self._seq))
                self._drivers[driver_id] = d
                self._by_seq[d.seq] = driver_id
            else:
                self._detach(d)
                d.cell, d.lat, d.lng, d.at = cell, lat, lng, at
            ids = self._ids.get(cell)
            if ids is None:
                ids = self._ids[cell] = []
                self._rows[cell] = array("d")
            d.pos = len(ids)
            ids.append(driver_id)
            self._rows[cell].extend((la * 0.5, ln * 0.5, math.cos(la), at, float(d.seq)))
        if at < d.due:  # new driver or out-of-order ping: keep the live expiry key <= at
            self._schedule(driver_id, d)
            if len(self._expiry) > 2 * len(self._drivers) + 1024:  # drop superseded entries
                self._expiry = [(x.due, x.token, i) for i, x in self._drivers.items()]
                heapq.heapify(self._expiry)

    def remove(self, driver_id: Hashable) -> bool:
        """Remove a driver; True if it was indexed."""
        d = self._drivers.pop(driver_id, None)
        if d is None:
            return False
        del self._by_seq[d.seq]
        self._detach(d)
        return True

    def expire(self, now: float) -> list[Hashable]:
        """Remove and return the drivers whose last ping is older than ``now - ttl_s``."""
        cutoff = now - self.ttl_s
        heap = self._expiry
        gone: list[Hashable] = []
        while heap and heap[0][0] < cutoff:
            _, token, driver_id = heapq.heappop(heap)
            d = self._drivers.get(driver_id)
            if d is None or d.token != token:
                continue  # superseded entry
            if d.at < cutoff:
                self.remove(driver_id)
                gone.append(driver_id)
            else:  # pinged since it was scheduled: re-schedule at its latest ping
                self._schedule(driver_id, d)
        return gone

    def _schedule(self, driver_id: Hashable, d: _Driver) -> None:
        """Push ``d``'s single live expiry entry, keyed by its current ping time.

        Moves do not touch the heap: the live entry's key stays <= the driver's ping time, so
        ``expire`` pops it no later than needed and re-schedules drivers that are still fresh.
        """
        d.due = d.at
        d.token = next(self._tokens)
        heapq.heappush(self._expiry, (d.due, d.token, driver_id))

    def nearest(
        self,
        lat: float,
        lng: float,
        k: int,
        radius_m: float,
        now: float | None = None,
        exclude: Container[Hashable] = frozenset(),
    ) -> list[tuple[Hashable, float]]:
        """Up to ``k`` ``(driver_id, distance_m)`` pairs, nearest first.

        Only drivers within ``radius_m`` (capped at ``max_radius_m``), pinged at or after
        ``now - ttl_s`` when ``now`` is given, and not in ``exclude``.  Equal distances are
        ordered by first insertion.
        """
        check_latlng(lat, lng)
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k!r}")
        if not radius_m > 0:
            raise ValueError(f"radius_m must be > 0, got {radius_m!r}")
        radius = min(float(radius_m), self.max_radius_m)
        cutoff = -math.inf if now is None else now - self.ttl_s
        skip, other = self._exclusions(exclude)
        sin = math.sin
        asin = math.asin
        sqrt = math.sqrt
        qla = math.radians(lat)
        qln = math.radians(lng)
        qc = math.cos(qla)
        hla = qla * 0.5  # rows hold half-angles: (x - y) * 0.5 == x * 0.5 - y * 0.5 exactly
        hln = qln * 0.5
        origin = h3i.latlng_to_cell(lat, lng, self.resolution)
        plan = self._plans.get(origin) or self._new_plan(origin)
        geo0 = plan[0][3]
        s1 = sin((geo0[0] - qla) * 0.5)
        s2 = sin((geo0[1] - qln) * 0.5)
        d_q = TWO_R_M * asin(sqrt(min(s1 * s1 + qc * geo0[2] * s2 * s2, 1.0)))
        bound_d = radius
        bound_a = m_to_hav(radius) * (1.0 + 1e-9)  # slack only; exact radius filter at the end
        all_rows = self._rows
        cand: list[tuple[float, float]] = []
        append = cand.append
        i = walked = 0
        last = False
        while not last:
            if walked > len(all_rows):
                # Sparse index: fewer occupied cells than already walked.  Rescan every occupied
                # cell with the per-cell bound instead (the current k-th distance stays valid).
                last = prune = True
                ring_cells, ring_geo = self._occupied()
                cand.clear()
            else:
                if i == len(plan):
                    self._extend_plan(origin, plan)
                lower, upper, ring_cells, ring_geo = plan[i]
                if lower - d_q > bound_d or not ring_cells:
                    break
                prune = upper + d_q > bound_d  # could any cell of this ring be beyond the bound?
                walked += len(ring_cells)
            g = iter(ring_geo)
            for cell, cla, cln, ccl, crad in zip(ring_cells, g, g, g, g, strict=True):
                rows = all_rows.get(cell)
                if rows is None:
                    continue
                if prune:
                    s1 = sin((cla - qla) * 0.5)
                    s2 = sin((cln - qln) * 0.5)
                    a = s1 * s1 + qc * ccl * s2 * s2
                    if TWO_R_M * asin(sqrt(a if a < 1.0 else 1.0)) - crad > bound_d:
                        continue
                r = iter(rows)
                for la, ln, cl, at, sq in zip(r, r, r, r, r, strict=True):
                    if at < cutoff:
                        continue
                    s1 = sin(la - hla)
                    s2 = sin(ln - hln)
                    a = s1 * s1 + qc * cl * s2 * s2
                    if a <= bound_a and sq not in skip:
                        append((a, sq))
            if len(cand) >= k:
                cand = self._top(cand, k, skip, other)
                append = cand.append
                if len(cand) == k:
                    bound_a = cand[-1][0]
                    bound_d = min(bound_d, hav_to_m(bound_a))
            i += 1
        out: list[tuple[Hashable, float]] = []
        for a, sq in self._top(cand, k, skip, other):
            dist = hav_to_m(a)
            if dist > radius:
                break
            out.append((self._by_seq[int(sq)], dist))
        return out

    def _top(
        self,
        cand: list[tuple[float, float]],
        k: int,
        skip: set[float],
        other: Container[Hashable] | None,
    ) -> list[tuple[float, float]]:
        """The k best candidates in order.  With an opaque ``exclude`` container only these
        are checked against it (excluded ones join ``skip``, so the scan drops them early)."""
        cand.sort()
        if other is None:
            del cand[k:]
            return cand
        by_seq = self._by_seq
        kept: list[tuple[float, float]] = []
        for c in cand:
            if c[1] in skip:
                continue
            if by_seq[int(c[1])] in other:
                skip.add(c[1])
                continue
            kept.append(c)
            if len(kept) == k:
                break
        return kept

    def _exclusions(
        self, exclude: Container[Hashable]
    ) -> tuple[set[float], Container[Hashable] | None]:
        """Excluded drivers as insertion seqs (cheap to hash in the scan); opaque or large
        containers are returned as is and consulted for the top candidates only."""
        if not isinstance(exclude, Collection) or len(exclude) > 64:
            return set(), exclude
        drivers = self._drivers
        return {float(drivers[i].seq) for i in exclude if i in drivers}, None

    def _disc(self, cell: int) -> tuple[float, float, float, float]:
        disc = self._discs.get(cell)
        if disc is None:
            disc = self._discs[cell] = cell_disc(cell)
        return disc

    def _occupied(self) -> tuple[array[int], array[float]]:
        """All occupied cells with their discs, in the layout of a plan ring."""
        cells = array("q", self._rows)
        geo = array("d")
        for cell in cells:
            geo.extend(self._disc(cell))
        return cells, geo

    def _detach(self, d: _Driver) -> None:
        """Remove ``d``'s row from its cell by moving the cell's last row into its slot."""
        rows = self._rows[d.cell]
        ids = self._ids[d.cell]
        last = len(ids) - 1
        if d.pos != last:
            o = d.pos * _ROW
            rows[o : o + _ROW] = rows[last * _ROW :]
            moved = ids[d.pos] = ids[last]
            self._drivers[moved].pos = d.pos
        if last:
            del rows[last * _ROW :]
            ids.pop()
        else:
            del self._rows[d.cell], self._ids[d.cell]

    def _new_plan(self, origin: int) -> list[_Ring]:
        if self._plan_cells > _MAX_CACHED_RING_CELLS:
            self._plans.clear()
            self._discs.clear()
            self._plan_cells = 0
        plan: list[_Ring] = [
            (-math.inf, -math.inf, array("q", [origin]), array("d", self._disc(origin)))
        ]
        self._plans[origin] = plan
        self._plan_cells += 1
        return plan

    def _extend_plan(self, origin: int, plan: list[_Ring]) -> None:
        """Append ring ``len(plan)`` of ``origin`` with its bounds ``D_i`` and max cell bound."""
        i = len(plan)
        try:
            ring = h3i.grid_ring(origin, i)
        except h3.H3BaseException:  # pentagon distortion: fall back to the safe disk walk
            ring = list(set(h3i.grid_disk(origin, i)) - set(h3i.grid_disk(origin, i - 1)))
        la0, ln0, cl0, _ = plan[0][3]
        cells = array("q", sorted(ring))
        geo = array("d")
        lower, upper = math.inf, -math.inf
        for cell in cells:
            la, ln, cl, rad = self._disc(cell)
            geo.extend((la, ln, cl, rad))
            s1 = math.sin((la - la0) * 0.5)
            s2 = math.sin((ln - ln0) * 0.5)
            bound = hav_to_m(s1 * s1 + cl0 * cl * s2 * s2) - rad
            lower, upper = min(lower, bound), max(upper, bound)
        plan.append((lower, upper, cells, geo))
        self._plan_cells += len(cells)
