"""Benchmark a shared-ride batch window: 200 asking riders, 2,000 vehicles (issue #21).

    .venv/bin/python scripts/bench_pooling.py [--windows 10] [--riders 200] [--vehicles 2000]
        [--busy 0.4] [--budget-ms 150] [--drive-weight 1] [--seed 1] [--json]

Each window is a fresh random city: vehicles uniform in a disc of 6 km around San Francisco
(4 seats, one in five 6), ``--busy`` of them already carrying a rider (on board, or on the
way to pick up), and the asking riders' pickups uniform in the same disc with trips of
1-8 km, one in five asking for 2 seats; bounds: 300 s wait, detour factor 1.5; travel is the
matcher's straight-line pace (1.35 road factor at 25 km/h). Every window is decided twice
side by side: by ``assign_window`` with the budget, and by the greedy insertion path alone.
It reports each one's decision time (median, p95, max), how many windows hit the budget,
and the served riders and added cost of both (the riders' delay, plus ``--drive-weight``
times the seconds driven: DISPATCH_POOL_DRIVE_WEIGHT). Nothing about time is asserted.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
import time
from collections.abc import Hashable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchmachine import cpu_model

from dispatch.domain.pooling import PoolBounds, PoolRider, Route, Stop, Travel, plan_cost
from dispatch.matching.eta import StraightLineEta
from dispatch.matching.pooling.batch import PoolLimits, WindowReport, assign_window
from dispatch.matching.pooling.insertion import Assignment, insert_in_order
from dispatch.matching.pooling.travel import Reach, StraightLineTravel

CENTRE = (37.7749, -122.4194)
RADIUS_M = 6_000.0
M_PER_DEG = math.pi * 6_371_008.8 / 180.0
NOW = 10_000.0


def _place(
    rng: random.Random, around: tuple[float, float], r_max: float, r_min: float = 0.0
) -> tuple[float, float]:
    r = math.sqrt(rng.uniform((r_min / r_max) ** 2, 1.0)) * r_max
    a = rng.uniform(0, 2 * math.pi)
    lat = around[0] + r * math.cos(a) / M_PER_DEG
    lng = around[1] + r * math.sin(a) / (M_PER_DEG * math.cos(math.radians(around[0])))
    return (lat, lng)


def _rider(
    rng: random.Random, ride_id: str, travel: Travel, bounds: PoolBounds, requested_at: float
) -> PoolRider:
    pickup = _place(rng, CENTRE, RADIUS_M)
    dropoff = _place(rng, pickup, 8_000.0, 1_000.0)
    seats = 2 if rng.random() < 0.2 else 1
    return PoolRider.asking(ride_id, seats, pickup, dropoff, requested_at, bounds, travel)


City = tuple[list[PoolRider], list[Route], dict[Hashable, PoolRider]]


def city(
    rng: random.Random, vehicles: int, riders: int, busy: float, travel: Travel, bounds: PoolBounds
) -> City:
    routes: list[Route] = []
    accepted: dict[Hashable, PoolRider] = {}
    for v in range(vehicles):
        seats = 6 if rng.random() < 0.2 else 4
        at = _place(rng, CENTRE, RADIUS_M)
        route = Route(f"v{v}", seats, at, NOW)
        if rng.random() < busy:
            for _ in range(20):  # a rider it already serves, in a plan that keeps the rule
                rider = _rider(rng, f"a{v}", travel, bounds, NOW - rng.uniform(0, 240))
                aboard = rng.random() < 0.5  # on board, or on the way to its pickup
                onboard = {rider.ride_id: NOW - 60} if aboard else {}
                plan: tuple[Stop, ...] = (Stop(rider.ride_id, False),)
                if not aboard:
                    plan = (Stop(rider.ride_id, True), *plan)
                trial = Route(route.vehicle_id, seats, at, NOW, onboard, plan)
                if plan_cost(trial, trial.plan, {rider.ride_id: rider}, travel) < math.inf:
                    route, accepted[rider.ride_id] = trial, rider
                    break
        routes.append(route)
    asking = [_rider(rng, f"r{i}", travel, bounds, NOW - rng.uniform(0, 2)) for i in range(riders)]
    return asking, routes, accepted


def _greedy_path(
    asking: list[PoolRider],
    routes: list[Route],
    accepted: dict[Hashable, PoolRider],
    travel: Travel,
    pace: float,
    limits: PoolLimits,
) -> Assignment:
    riders = {**accepted, **{r.ride_id: r for r in asking}}
    reach = Reach(routes, pace)
    by_id = {r.vehicle_id: r for r in routes}
    weight = limits.drive_weight
    base = {r.vehicle_id: plan_cost(r, r.plan, riders, travel, weight) for r in routes}
    return insert_in_order(asking, by_id, riders, travel, lambda r: reach.of(r, limits.candidates),
                           base, drive_weight=weight)  # fmt: skip


def _quantile(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, round(p * (len(s) - 1)))]


def _summary(
    args: argparse.Namespace,
    limits: PoolLimits,
    batch_s: list[float],
    insert_s: list[float],
    rows: list[tuple[WindowReport, Assignment]],
) -> dict[str, Any]:
    served_b = sum(r.served for r, _ in rows)
    served_i = sum(a.served for _, a in rows)
    return {
        "machine": {"cpu": cpu_model()},
        "windows": args.windows, "riders": args.riders, "vehicles": args.vehicles,
        "busy": args.busy, "budget_ms": args.budget_ms, "seed": args.seed,
        "drive_weight": args.drive_weight,
        "batch_ms": {"p50": 1e3 * statistics.median(batch_s),
                     "p95": 1e3 * _quantile(batch_s, 0.95), "max": 1e3 * max(batch_s)},
        "insertion_ms": {"p50": 1e3 * statistics.median(insert_s), "max": 1e3 * max(insert_s)},
        "capped": sum(1 for r, _ in rows if r.capped),
        "solver": {s: sum(1 for r, _ in rows if r.solver == s)
                   for s in ("insertion", "trips", "ilp")},
        "served": {"batch": served_b, "insertion": served_i},
        "added_cost_s_per_served": {
            "batch": sum(r.added_cost for r, _ in rows) / max(1, served_b),
            "insertion": sum(a.added_cost for _, a in rows) / max(1, served_i),
        },
        "trips_by_size": [sum(r.trips[i] for r, _ in rows if i < len(r.trips))
                          for i in range(limits.max_trip)],
    }  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--windows", type=int, default=10)
    parser.add_argument("--riders", type=int, default=200)
    parser.add_argument("--vehicles", type=int, default=2000)
    parser.add_argument("--busy", type=float, default=0.4)
    parser.add_argument("--budget-ms", type=float, default=150.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--drive-weight",
        type=float,
        default=1.0,
        help="DISPATCH_POOL_DRIVE_WEIGHT: delay seconds a driven second is worth",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.windows < 1 or args.riders < 1 or args.vehicles < 1 or not 0 <= args.busy <= 1:
        parser.error("--windows, --riders and --vehicles must be at least 1, --busy in [0, 1]")
    if not args.budget_ms > 0:
        parser.error("--budget-ms must be positive")
    if not (math.isfinite(args.drive_weight) and args.drive_weight >= 0):
        parser.error("--drive-weight must be 0 or more")
    pace = StraightLineEta().seconds_per_m
    travel = StraightLineTravel(pace)
    bounds = PoolBounds()
    limits = PoolLimits(budget_s=args.budget_ms / 1000.0, drive_weight=args.drive_weight)
    rng = random.Random(args.seed)
    batch_s: list[float] = []
    insert_s: list[float] = []
    rows: list[tuple[WindowReport, Assignment]] = []
    for _ in range(args.windows):
        asking, routes, accepted = city(rng, args.vehicles, args.riders, args.busy, travel, bounds)
        t0 = time.perf_counter()
        _, report = assign_window(asking, routes, accepted, travel, pace, limits, NOW)
        batch_s.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        rows.append((report, _greedy_path(asking, routes, accepted, travel, pace, limits)))
        insert_s.append(time.perf_counter() - t0)
    out = _summary(args, limits, batch_s, insert_s, rows)
    if args.json:
        print(json.dumps(out))
    else:
        for k, v in out.items():
            print(f"{k}: {v}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
