"""The compiled inner loop of ``DriverIndex.nearest``: walk a ring plan, keep the k best.

``scan_rings`` runs under numba (compiled on first use and cached on disk).  It reads the
index's storage directly (``RowPool`` blocks and a ``RingPlan``'s arrays) and keeps the k best
``(haversine term, insertion seq)`` pairs in ``out`` by insertion, so the answer and its tie
order are exactly those of a brute-force scan.  Every floating-point expression is the one
``geo.haversine_m`` evaluates, in the same order, so distances compare bit for bit.

Layouts (all float64 unless said):
- ``rings``: one row per ring ``(lower bound D_i, max cell bound, end index into cells)``;
- ``cells``: one row per ring cell ``(slot, centre lat_rad, centre lng_rad, cos lat, radius_m)``;
- ``rows``: the pool, 5 doubles per driver ``(lat_rad / 2, lng_rad / 2, cos lat, ping time,
  seq)``; ``starts``/``counts`` (int64) give each slot's first double and its row count;
- ``skip``: insertion seqs never to return; ``out``: ``(2, k)`` for the result.

It returns ``(found, status)``: status ``DONE`` (the answer is in ``out[:, :found]`` as
``(distance_m, seq)`` rows, nearest first, within ``radius_m``),
``NEED_RING`` (the plan ran out of rings before the bound closed: extend it and scan again)
or ``SPARSE`` (more cells walked than are occupied: scan the occupied cells instead).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from dispatch.matching.geo import TWO_R_M

DONE, NEED_RING, SPARSE = 0, 1, 2


@njit(cache=True)  # type: ignore[untyped-decorator]
def scan_rings(  # the storage is passed as arrays, one argument each
    qla: float,
    qln: float,
    k: int,
    radius_m: float,
    bound_a: float,
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
    found, status = _walk(
        qla, qln, k, radius_m, bound_a, cutoff, walk_limit, rings, cells, rows, starts, counts,
        skip, out,
    )  # fmt: skip
    if status != DONE:
        return found, status
    for j in range(found):  # to metres, dropping what only the bound's slack let in
        a = out[0, j]
        d = TWO_R_M * math.asin(math.sqrt(a if a < 1.0 else 1.0))
        if d > radius_m:
            return j, DONE
        out[0, j] = d
    return found, DONE


@njit(cache=True)  # type: ignore[untyped-decorator]
def _walk(
    qla: float,
    qln: float,
    k: int,
    radius_m: float,
    bound_a: float,
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
    if cells.shape[0] == 0:
        return 0, DONE
    qc = math.cos(qla)
    hla = qla * 0.5  # rows hold half-angles: (x - y) * 0.5 == x * 0.5 - y * 0.5 exactly
    hln = qln * 0.5
    s1 = math.sin((cells[0, 1] - qla) * 0.5)
    s2 = math.sin((cells[0, 2] - qln) * 0.5)
    a = s1 * s1 + qc * cells[0, 3] * s2 * s2
    d_q = TWO_R_M * math.asin(math.sqrt(a if a < 1.0 else 1.0))  # query to origin centre
    bound_d = radius_m
    found = 0
    n_skip = skip.shape[0]
    begin = 0
    walked = 0
    for i in range(rings.shape[0]):
        end = int(rings[i, 2])
        if rings[i, 0] - d_q > bound_d or end == begin:
            return found, DONE
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
                seq = rows[r + 4]
                if found == k and (
                    a > out[0, k - 1] or (a == out[0, k - 1] and seq > out[1, k - 1])
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
                while j > 0 and (out[0, j - 1] > a or (out[0, j - 1] == a and out[1, j - 1] > seq)):
                    out[0, j] = out[0, j - 1]
                    out[1, j] = out[1, j - 1]
                    j -= 1
                out[0, j] = a
                out[1, j] = seq
                if found < k:
                    found += 1
        if found == k:
            bound_a = out[0, k - 1]
            d = TWO_R_M * math.asin(math.sqrt(bound_a if bound_a < 1.0 else 1.0))
            if d < bound_d:
                bound_d = d
        begin = end
    return found, NEED_RING


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
               np.zeros(0), np.zeros((2, 1)))  # fmt: skip
    _ready = True
