"""H3-bucketed index of available drivers with exact k-nearest search.

Drivers live in per-cell blocks (``pool.RowPool``) keyed by their H3 cell at ``resolution``.
``nearest`` walks the grid rings around the query's cell (``plans.RingPlan``) in compiled
code (``scan.scan_rings``) and stops as soon as a *proven* lower bound on the distance to
every unvisited cell exceeds the k-th best exact distance found so far, so the answer always
equals a brute-force haversine scan, tie order included (equal distances: first inserted
first).  Within a ring, a cell is skipped when its own bound exceeds the k-th distance.
Candidates are filtered on the haversine term (monotone in distance) and ranked in metres,
like the brute force.  When the walk has covered more cells than are occupied (a sparse
index), the scan runs over the occupied cells instead of ever larger rings.
"""

from __future__ import annotations

import heapq
import itertools
import math
import operator
from collections.abc import Collection, Container, Hashable
from typing import Final, Generic, TypeVar, cast

import h3
import numpy as np
from h3.api import basic_int as h3i

from dispatch.matching.geo import check_latlng, m_to_hav
from dispatch.matching.plans import PlanCache
from dispatch.matching.pool import RowPool
from dispatch.matching.scan import NEED_RING, SPARSE, prepare, scan_rings

MAX_SKIP = 64  # exclusions passed to the scan as seqs; larger or opaque ones are checked after
_NO_SKIP = np.zeros(0)

K = TypeVar("K", bound=Hashable)  # driver id


class _Driver:
    __slots__ = ("at", "cell", "due", "lat", "lng", "pos", "seq", "slot", "token")

    def __init__(
        self, cell: int, slot: int, pos: int, lat: float, lng: float, at: float, seq: int
    ) -> None:
        self.cell, self.slot, self.pos = cell, slot, pos
        self.lat, self.lng, self.at, self.seq = lat, lng, at, seq
        self.due = math.inf  # key of the live expiry-heap entry (<= at once scheduled)
        self.token = -1  # identifies the live expiry-heap entry


class DriverIndex(Generic[K]):
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
        self._pool = RowPool()
        self._plans = PlanCache(self._pool.slot)
        self._drivers: dict[K, _Driver] = {}
        self._by_seq: dict[int, K] = {}
        self._expiry: list[tuple[float, int, K]] = []  # lazy heap (due, token, id)
        self._seq = itertools.count()
        self._tokens = itertools.count()
        self._out = np.zeros((3, 16))  # metres, seq, haversine term (see scan.py)
        self._sparse: tuple[int, np.ndarray, np.ndarray] | None = None
        self._radius = (math.nan, math.nan)  # last radius_m and its haversine bound
        prepare()  # the compiled scan is loaded with the first index, not the first query

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        prepare()

    def __len__(self) -> int:
        return len(self._drivers)

    def __contains__(self, driver_id: object) -> bool:
        return driver_id in self._drivers

    def position(self, driver_id: K) -> tuple[float, float, float] | None:
        """``(lat, lng, at)`` of the driver's last ping, or None if unknown."""
        d = self._drivers.get(driver_id)
        return None if d is None else (d.lat, d.lng, d.at)

    def cell(self, driver_id: K) -> str | None:
        """The driver's H3 cell at the index resolution, or None if unknown."""
        d = self._drivers.get(driver_id)
        return None if d is None else h3.int_to_str(d.cell)

    def cell_counts(self) -> tuple[list[int], np.ndarray]:
        """Every cell the index has seen (H3 ints at its resolution, in the order first
        seen: the list only grows) and how many drivers each holds now (a read-only view)."""
        pool = self._pool
        counts = pool.counts[: len(pool.cells)]
        counts.flags.writeable = False
        return pool.cells, counts

    def upsert(self, driver_id: K, lat: float, lng: float, at: float) -> bool:
        """Add a driver or move it to ``(lat, lng)`` pinged at time ``at`` (seconds).
        Returns True when the driver is new, entered another cell, or comes back after a
        silence longer than the TTL (it was not findable: new supply)."""
        check_latlng(lat, lng)
        if not math.isfinite(at):
            raise ValueError(f"ping time must be finite, got {at!r}")
        cell = h3i.latlng_to_cell(lat, lng, self.resolution)
        la = math.radians(lat)
        ln = math.radians(lng)
        pool = self._pool
        d = self._drivers.get(driver_id)
        moved = True
        if d is not None and d.cell == cell:  # same cell: overwrite the row in place
            moved = d.at < at - self.ttl_s
            pool.write(d.slot, d.pos, la, ln, math.cos(la), at)
            d.lat, d.lng, d.at = lat, lng, at
        else:
            if d is None:
                seq = next(self._seq)
                d = _Driver(cell, 0, 0, lat, lng, at, seq)
                self._drivers[driver_id] = d
                self._by_seq[seq] = driver_id
            else:
                self._detach(d)
                d.cell, d.lat, d.lng, d.at = cell, lat, lng, at
            d.slot = pool.slot(cell)
            d.pos = pool.append(d.slot, driver_id, la, ln, math.cos(la), at, d.seq)
        if at < d.due:  # new driver or out-of-order ping: keep the live expiry key <= at
            self._schedule(driver_id, d)
            if len(self._expiry) > 2 * len(self._drivers) + 1024:  # drop superseded entries
                self._expiry = [(x.due, x.token, i) for i, x in self._drivers.items()]
                heapq.heapify(self._expiry)
        return moved

    def remove(self, driver_id: K) -> bool:
        """Remove a driver; True if it was indexed."""
        d = self._drivers.pop(driver_id, None)
        if d is None:
            return False
        del self._by_seq[d.seq]
        self._detach(d)
        return True

    def expire(self, now: float) -> list[K]:
        """Remove and return the drivers whose last ping is older than ``now - ttl_s``."""
        cutoff = now - self.ttl_s
        heap = self._expiry
        gone: list[K] = []
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

    def _schedule(self, driver_id: K, d: _Driver) -> None:
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
        exclude: Container[K] = frozenset(),
    ) -> list[tuple[K, float]]:
        """Up to ``k`` ``(driver_id, distance_m)`` pairs, nearest first.

        Only drivers within ``radius_m`` (capped at ``max_radius_m``), pinged at or after
        ``now - ttl_s`` when ``now`` is given, and not in ``exclude``.  Equal distances are
        ordered by first insertion.
        """
        check_latlng(lat, lng)
        k = operator.index(k)  # a Python int: the compiled scan is built for one signature
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k!r}")
        if not radius_m > 0:
            raise ValueError(f"radius_m must be > 0, got {radius_m!r}")
        if now is not None and not math.isfinite(now):
            raise ValueError(f"now must be a finite time, got {now!r}")
        if not self._drivers:
            return []
        radius = min(float(radius_m), self.max_radius_m)
        cutoff = -math.inf if now is None else float(now) - self.ttl_s
        skip, other = self._exclusions(exclude)
        by_seq = self._by_seq  # int keys; the scan's float seqs hash and compare equal
        if other is None:
            dists, seqs = self._scan(lat, lng, k, radius, cutoff, skip)
            return [(by_seq[s], d) for s, d in zip(seqs, dists, strict=True)]  # type: ignore[index]
        # An opaque (or large) exclusion: ask for more until k survive it or none are left.
        want = k + 8
        while True:
            dists, seqs = self._scan(lat, lng, want, radius, cutoff, skip)
            ids = [by_seq[s] for s in seqs]  # type: ignore[index]
            kept = [(i, d) for i, d in zip(ids, dists, strict=True) if i not in other]
            if len(kept) >= k or len(seqs) < want:
                return kept[:k]
            want *= 2

    def _scan(
        self, lat: float, lng: float, k: int, radius: float, cutoff: float, skip: np.ndarray
    ) -> list[list[float]]:
        """The k nearest within ``radius``, nearest first: ``[distances_m, seqs]``."""
        out = self._out
        if out.shape[1] < k:
            out = self._out = np.zeros((3, max(k, 2 * out.shape[1])))
        if radius != self._radius[0]:  # slack only; the scan filters on the exact radius
            self._radius = (radius, m_to_hav(radius) * (1.0 + 1e-9))
        bound_a = self._radius[1]
        qla, qln = math.radians(lat), math.radians(lng)
        pool = self._pool
        plan = self._plans.plan(h3i.latlng_to_cell(lat, lng, self.resolution))
        while True:
            n, status = scan_rings(
                qla, qln, k, radius, bound_a, cutoff, pool.occupied,
                plan.rings, plan.cells, pool.rows, pool.starts, pool.counts, skip, out,
            )  # fmt: skip
            if status == NEED_RING:
                self._plans.extend(plan)
            elif status == SPARSE:
                rings, cells = self._occupied()
                n, _ = scan_rings(
                    qla, qln, k, radius, bound_a, cutoff, len(cells) + 1,
                    rings, cells, pool.rows, pool.starts, pool.counts, skip, out,
                )  # fmt: skip
                break
            else:
                break
        result: list[list[float]] = out[:2, :n].tolist()
        return result

    def _exclusions(self, exclude: Container[K]) -> tuple[np.ndarray, Container[K] | None]:
        """Excluded drivers as insertion seqs for the scan; opaque or large containers are
        returned as is and checked against the candidates afterwards."""
        if type(exclude) is frozenset and not exclude:
            return _NO_SKIP, None
        if not isinstance(exclude, Collection) or len(exclude) > MAX_SKIP:
            return _NO_SKIP, exclude
        if not exclude:
            return _NO_SKIP, None
        drivers = self._drivers
        return np.array([float(drivers[i].seq) for i in exclude if i in drivers]), None

    def _occupied(self) -> tuple[np.ndarray, np.ndarray]:
        """All occupied cells as one ring that is always pruned cell by cell."""
        pool = self._pool
        if self._sparse is None or self._sparse[0] != pool.occupied_version:
            slots = pool.occupied_slots()
            rows = [(float(s), *self._plans.disc(pool.cells[s])) for s in slots]
            cells = np.array(rows) if rows else np.zeros((0, 5))
            # One ring pruned cell by cell, then a closing ring whose bound ends the walk.
            rings = np.array([(-math.inf, math.inf, len(rows)), (math.inf, math.inf, len(rows))])
            self._sparse = (pool.occupied_version, rings, cells)
        return self._sparse[1], self._sparse[2]

    def _detach(self, d: _Driver) -> None:
        """Remove ``d``'s row from its cell's block."""
        moved = cast(K | None, self._pool.delete(d.slot, d.pos))  # the pool holds our ids
        if moved is not None:
            self._drivers[moved].pos = d.pos
