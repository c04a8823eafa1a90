"""Benchmark the H3 driver index: upserts/s and k-nearest latency, next to a naive baseline.

    .venv/bin/python scripts/bench_index.py [--drivers 50000] [--queries 20000] [--seed 1] [--json]

Drivers are uniform in a 30 x 30 km square centred on San Francisco (37.77, -122.42).  Each
timed figure is the median over ``--rounds`` rounds.  The naive baseline (grid_disk over the
whole radius, haversine for every driver found, full sort) runs in the same process on a
subset of the queries, and both answers are compared.  Nothing about time is asserted.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
import time
import uuid
from collections.abc import Hashable
from pathlib import Path

import h3

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dispatch.matching.geo import haversine_m
from dispatch.matching.index import DriverIndex

CENTRE = (37.77, -122.42)
HALF_SIDE_M = 15_000.0
M_PER_DEG_LAT = math.pi * 6_371_008.8 / 180.0


class NaiveIndex:
    """grid_disk covering the radius, haversine for every driver in it, sort everything."""

    def __init__(self, resolution: int) -> None:
        self.resolution = resolution
        self.cells: dict[str, dict[Hashable, tuple[float, float, float]]] = {}
        self.where: dict[Hashable, str] = {}
        # Conservative ring count: adjacent centres are ~sqrt(3) edges apart; use half of that.
        self.spacing_m = h3.average_hexagon_edge_length(resolution, unit="m") * math.sqrt(3) / 2

    def upsert(self, driver_id: Hashable, lat: float, lng: float, at: float) -> None:
        cell = h3.latlng_to_cell(lat, lng, self.resolution)
        old = self.where.get(driver_id)
        if old is not None and old != cell:
            del self.cells[old][driver_id]
        self.where[driver_id] = cell
        self.cells.setdefault(cell, {})[driver_id] = (lat, lng, at)

    def nearest(
        self, lat: float, lng: float, k: int, radius_m: float, now: float, ttl_s: float
    ) -> list[tuple[Hashable, float]]:
        rings = math.ceil(radius_m / self.spacing_m) + 1
        found: list[tuple[float, Hashable]] = []
        for cell in h3.grid_disk(h3.latlng_to_cell(lat, lng, self.resolution), rings):
            for driver_id, (dlat, dlng, at) in self.cells.get(cell, {}).items():
                d = haversine_m(lat, lng, dlat, dlng)
                if d <= radius_m and at >= now - ttl_s:
                    found.append((d, driver_id))
        found.sort(key=lambda x: x[0])
        return [(i, d) for d, i in found[:k]]


class Skip:
    """Opaque exclusion view, like the matcher's 'excluded for this ride or already taken'."""

    def __init__(self, excluded: set[Hashable], taken: set[Hashable]) -> None:
        self.excluded, self.taken = excluded, taken

    def __contains__(self, item: object) -> bool:
        return item in self.taken or item in self.excluded


def random_point(rng: random.Random) -> tuple[float, float]:
    dlat = HALF_SIDE_M / M_PER_DEG_LAT
    dlng = dlat / math.cos(math.radians(CENTRE[0]))
    return CENTRE[0] + rng.uniform(-dlat, dlat), CENTRE[1] + rng.uniform(-dlng, dlng)


def pct(sorted_us: list[float], p: float) -> float:
    return sorted_us[min(len(sorted_us) - 1, int(p / 100 * len(sorted_us)))]


def time_queries(
    query: object, points: list[tuple[float, float]], *args: object
) -> tuple[float, list[float]]:
    fn = query  # bound method; typed loosely to share this helper with the baseline
    lat_us: list[float] = []
    clock = time.perf_counter
    start = clock()
    for lat, lng in points:
        t = clock()
        fn(lat, lng, *args)  # type: ignore[operator]
        lat_us.append((clock() - t) * 1e6)
    return len(points) / (clock() - start), sorted(lat_us)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--drivers", type=int, default=50_000)
    ap.add_argument("--queries", type=int, default=20_000)
    ap.add_argument("--naive-queries", type=int, default=500, help="baseline queries per round")
    ap.add_argument("--moves", type=int, default=200_000, help="upserts per round")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--resolution", type=int, default=9)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--radius", type=float, default=2_000.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    ttl = 30.0
    now = 1_000.0

    ids = [uuid.UUID(int=rng.getrandbits(128), version=4) for _ in range(args.drivers)]
    start = [random_point(rng) for _ in ids]
    naive = NaiveIndex(args.resolution)
    insert_rates = []
    for _ in range(args.rounds):
        index = DriverIndex(resolution=args.resolution, ttl_s=ttl)
        t = time.perf_counter()
        for driver_id, (lat, lng) in zip(ids, start, strict=True):
            index.upsert(driver_id, lat, lng, now)
        insert_rates.append(len(ids) / (time.perf_counter() - t))
    for driver_id, (lat, lng) in zip(ids, start, strict=True):
        naive.upsert(driver_id, lat, lng, now)

    # Moves: random drivers, ~N(0, 15 m) steps per axis (a 4 s GPS ping at city speed).
    step = 15.0 / M_PER_DEG_LAT
    move_rates, cross_cell = [], 0
    for _ in range(args.rounds):
        batch = []
        for _ in range(args.moves):
            i = rng.randrange(len(ids))
            lat, lng, _at = index.position(ids[i]) or (0.0, 0.0, 0.0)
            batch.append((ids[i], lat + rng.gauss(0, step), lng + rng.gauss(0, step * 1.27)))
        before = {d: index.cell(d) for d, _, _ in batch[:2000]}
        t = time.perf_counter()
        for driver_id, lat, lng in batch:
            index.upsert(driver_id, lat, lng, now)
        move_rates.append(len(batch) / (time.perf_counter() - t))
        cross_cell += sum(before[d] != index.cell(d) for d in before)
    for driver_id in ids:
        lat, lng, at = index.position(driver_id) or (0.0, 0.0, 0.0)
        naive.upsert(driver_id, lat, lng, at)

    warm = [random_point(rng) for _ in range(args.queries)]
    cold_qps, _ = time_queries(index.nearest, warm, args.k, args.radius, now)
    skip = Skip(set(rng.sample(ids, 3)), set(rng.sample(ids, 50)))
    rounds, skip_rounds, naive_rounds = [], [], []
    mismatches = 0
    for _ in range(args.rounds):
        points = [random_point(rng) for _ in range(args.queries)]
        rounds.append(time_queries(index.nearest, points, args.k, args.radius, now))
        skip_rounds.append(time_queries(index.nearest, points, args.k, args.radius, now, skip))
        sample = points[: args.naive_queries]
        naive_rounds.append(time_queries(naive.nearest, sample, args.k, args.radius, now, ttl))
        for lat, lng in sample:
            got = index.nearest(lat, lng, args.k, args.radius, now)
            want = naive.nearest(lat, lng, args.k, args.radius, now, ttl)
            mismatches += got != want

    def summary(rs: list[tuple[float, list[float]]]) -> dict[str, float]:
        return {
            "queries_per_s": statistics.median(r[0] for r in rs),
            "p50_us": statistics.median(pct(r[1], 50) for r in rs),
            "p95_us": statistics.median(pct(r[1], 95) for r in rs),
            "p99_us": statistics.median(pct(r[1], 99) for r in rs),
            "max_us": max(r[1][-1] for r in rs),
        }

    result = {
        "config": {k: v for k, v in vars(args).items() if k != "json"},
        "index": summary(rounds) | {"cold_first_pass_queries_per_s": cold_qps},
        "index_opaque_exclude": summary(skip_rounds),
        "naive": summary(naive_rounds),
        "inserts_per_s": statistics.median(insert_rates),
        "moves_per_s": statistics.median(move_rates),
        "moves_cross_cell_fraction": cross_cell / (2000 * args.rounds),
        "naive_mismatches": mismatches,
    }
    ix, nv = result["index"], result["naive"]
    result["speedup_vs_naive"] = ix["queries_per_s"] / nv["queries_per_s"]
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(
        f"{args.drivers} drivers, res {args.resolution}, k={args.k}, radius {args.radius:.0f} m, "
        f"median of {args.rounds} rounds"
    )
    print(f"{'':22}{'queries/s':>12}{'p50 us':>10}{'p95 us':>10}{'p99 us':>10}{'max us':>10}")
    rows = (
        ("DriverIndex.nearest", ix),
        ("  + opaque exclude", result["index_opaque_exclude"]),
        ("naive grid_disk+sort", nv),
    )
    for name, s in rows:
        print(
            f"{name:22}{s['queries_per_s']:>12,.0f}{s['p50_us']:>10.1f}{s['p95_us']:>10.1f}"
            f"{s['p99_us']:>10.1f}{s['max_us']:>10.1f}"
        )
    print(
        f"speed-up vs naive: {result['speedup_vs_naive']:.0f}x   "
        f"cold first pass: {cold_qps:,.0f} queries/s   naive mismatches: {mismatches}"
    )
    print(
        f"fresh inserts: {result['inserts_per_s']:,.0f}/s   moves: {result['moves_per_s']:,.0f}/s "
        f"({result['moves_cross_cell_fraction']:.1%} change cell)"
    )


if __name__ == "__main__":
    main()
