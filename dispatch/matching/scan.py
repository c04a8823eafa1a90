"""The compiled inner loop of ``DriverIndex.nearest``: walk a ring plan, keep the k best.

``scan_rings`` runs under numba (compiled on first use and cached on disk).  It reads the
index's storage directly (``RowPool`` blocks and a ``RingPlan``'s arrays) and keeps the k
best candidates in ``out`` by insertion, ranked exactly like a brute-force scan: by distance
in metres, then by insertion seq.  Every floating-point expression is the one
``geo.haversine_m`` evaluates, in the same order, so distances compare bit for bit.  The
haversine term ``a`` (monotone in distance) only filters: a row whose ``a`` exceeds the
k-th candidate's by more than a relative 1e-9 is farther in metres too (rounding in
``asin``/``sqrt`` moves metres by a few ulps, far less), so metres are computed only for
rows near or inside the current k.

Layouts (all float64 unless said):
- ``rings``: one row per ring ``(lower bound D_i, max cell bound, end index into cells)``;
- ``cells``: one row per ring cell ``(slot, centre lat_rad, centre lng_rad, cos lat, radius_m)``;
- ``rows``: the pool, 5 doubles per driver ``(lat_rad / 2, lng_rad / 2, cos lat, ping time,
  seq)``; ``starts``/``counts`` (int64) give each slot's first double and its row count;
- ``skip``: insertion seqs never to return; ``out``: ``(3, k)``: metres, seq, ``a``.

It returns ``(found, status)``: status ``DONE`` (the answer is in ``out[:2, :found]`` as
``(distance_m, seq)`` columns, nearest first, within ``radius_m``), ``NEED_RING`` (the plan
ran out of rings before the bound closed: extend it and scan again) or ``SPARSE`` (more
cells walked than are occupied: scan the occupied cells instead).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from dispatch.matching.geo import TWO_R_M

DONE, NEED_RING, SPARSE = 0, 1, 2
_SLACK = 1.0 + 1e-9  # relative margin on ``a`` that no rounding of metres can cross


@njit(cache=True)  # type: ignore[untyped-decorator]
def scan_rings(  # the storage is passed as arrays, one argument each
    qla: float,
    qln: float,
    k: int,
    radius_m: float,
    radius_a: float,
    cutoff: float,
    walk_limit: int,
    rings: np.ndarray,
    cells: np.ndarray,
    rows: np.ndarray,
    starts: np.ndarray,
    counts: np.ndarray,
    skip: np.ndarray,
    out: np.ndarray,
) -> tuple[int, int]:
    """``radius_a``: the haversine term of ``radius_m`` with the slack already applied."""
    if cells.shape[0] == 0:
        return 0, DONE
    qc = math.cos(qla)
    hla = qla * 0.5  # rows hold half-angles: (x - y) * 0.5 == x * 0.5 - y * 0.5 exactly
    hln = qln * 0.5
    s1 = math.sin((cells[0, 1] - qla) * 0.5)
    s2 = math.sin((cells[0, 2] - qln) * 0.5)
    a = s1 * s1 + qc * cells[0, 3] * s2 * s2
    d_q = TWO_R_M * math.asin(math.sqrt(a if a < 1.0 else 1.0))  # query to origin centre
    bound_a = radius_a  # rows beyond it cannot enter the answer
    bound_d = radius_m  # no driver farther than this can enter the answer
    found = 0
    n_skip = skip.shape[0]
    begin = 0
    walked = 0
    for i in range(rings.shape[0]):
        end = int(rings[i, 2])
        if rings[i, 0] - d_q > bound_d or end == begin:
            return _within(found, radius_m, out), DONE
        if walked > walk_limit:
            return found, SPARSE
        walked += end - begin
        prune = rings[i, 1] + d_q > bound_d  # could a cell of this ring be beyond the bound?
        for c in range(begin, end):
            slot = int(cells[c, 0])
            n = counts[slot]
            if n == 0:
                continue
            if prune:
                s1 = math.sin((cells[c, 1] - qla) * 0.5)
                s2 = math.sin((cells[c, 2] - qln) * 0.5)
                a = s1 * s1 + qc * cells[c, 3] * s2 * s2
                if TWO_R_M * math.asin(math.sqrt(a if a < 1.0 else 1.0)) - cells[c, 4] > bound_d:
                    continue
            first = starts[slot]
            for r in range(first, first + n * 5, 5):
                if rows[r + 3] < cutoff:
                    continue
                s1 = math.sin(rows[r] - hla)
                s2 = math.sin(rows[r + 1] - hln)
                a = s1 * s1 + qc * rows[r + 2] * s2 * s2
                if a > bound_a:
                    continue
                d = TWO_R_M * math.asin(math.sqrt(a if a < 1.0 else 1.0))
                seq = rows[r + 4]
                if found == k and (
                    d > out[0, k - 1] or (d == out[0, k - 1] and seq > out[1, k - 1])
                ):
                    continue
                skipped = False
                for j in range(n_skip):
                    if skip[j] == seq:
                        skipped = True
                        break
                if skipped:
                    continue
                j = found if found < k else k - 1
                while j > 0 and (out[0, j - 1] > d or (out[0, j - 1] == d and out[1, j - 1] > seq)):
                    out[0, j] = out[0, j - 1]
                    out[1, j] = out[1, j - 1]
                    out[2, j] = out[2, j - 1]
                    j -= 1
                out[0, j] = d
                out[1, j] = seq
                out[2, j] = a
                if found < k:
                    found += 1
                if found == k:
                    kth = out[2, k - 1] * _SLACK
                    if kth < bound_a:
                        bound_a = kth
                    if out[0, k - 1] < bound_d:
                        bound_d = out[0, k - 1]
        begin = end
    return found, NEED_RING


@njit(cache=True)  # type: ignore[untyped-decorator]
def _within(found: int, radius_m: float, out: np.ndarray) -> int:
    """How many of the found candidates lie within ``radius_m`` (they are sorted); the
    slack on ``a`` may have let in a few just beyond it."""
    for j in range(found):
        if out[0, j] > radius_m:
            return j
    return found


_ready = False


def prepare() -> None:
    """Compile (or load from the disk cache) ``scan_rings`` now, with the argument types
    the index passes, so that the first real query does not pay for it (0.1-0.3 s from the
    cache, a few seconds on a cold one, while every request behind it waits)."""
    global _ready
    if _ready:
        return
    rows = np.zeros(5)
    counts = np.zeros(1, dtype=np.int64)
    cells = np.zeros((1, 5))
    rings = np.array([(-math.inf, -math.inf, 1.0)])
    scan_rings(0.0, 0.0, 1, 1.0, 1e-9, -math.inf, 1, rings, cells, rows, counts, counts,
               np.zeros(0), np.zeros((3, 1)))  # fmt: skip
    _ready = True
