"""Benchmark the nearest search per product against today's search (no product), same run.

    .venv/bin/python scripts/bench_products.py [--drivers 50000] [--queries 20000] [--json]

Drivers are uniform in a 30 x 30 km square centred on San Francisco (as ``bench_index.py``),
with vehicles by ``--fleet-mix`` (vehicle kinds of the default catalog); rides ask for
products by ``--ride-mix``. For the same query points it times:

- today's search: ``DriverIndex.nearest`` over every driver (what the matcher did before
  products, for any ride);
- the search per product (``Fleet.nearest``: the index of the drivers that serve it), for
  each product and for the ride mix;
- a filter over the one index instead (``DriverIndex.nearest`` with an exclusion of the
  drivers that do not serve the product, checked after the compiled scan, asking for more
  until k survive): the alternative the per-product indexes were chosen over;
- moves (upserts) into the index alone and into the fleet (the cost of the choice).

Each figure is the median over ``--rounds`` rounds, timed in the process's CPU time (the
machine is shared); ``ratio`` is the per-product queries/s over today's. Nothing about
time is asserted; answers are compared with a brute force.
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
from collections.abc import Callable
from pathlib import Path

import h3

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dispatch.domain.products import DEFAULT_CATALOG, Vehicle
from dispatch.matching.fleet import Fleet
from dispatch.matching.geo import haversine_m
from dispatch.matching.index import DriverIndex

CENTRE = (37.77, -122.42)
HALF_SIDE_M = 15_000.0
M_PER_DEG_LAT = math.pi * 6_371_008.8 / 180.0
# The process's CPU time, not the wall clock: on a shared machine (2 vCPUs, other jobs)
# a wall-clock rate measures the other jobs as much as the search.
CLOCK = time.process_time
KINDS = {
    "car": Vehicle("standard", 4, False),
    "xl": Vehicle("xl", 6, False),
    "wav": Vehicle("accessible", 4, True),
    "wav_small": Vehicle("accessible", 3, True),
}


def mix(text: str) -> dict[str, float]:
    out = {}
    for part in text.split(","):
        name, _, share = part.partition("=")
        out[name.strip()] = float(share)
    return out


def random_point(rng: random.Random) -> tuple[float, float]:
    dlat = HALF_SIDE_M / M_PER_DEG_LAT
    dlng = dlat / math.cos(math.radians(CENTRE[0]))
    return CENTRE[0] + rng.uniform(-dlat, dlat), CENTRE[1] + rng.uniform(-dlng, dlng)


def square(scale: float) -> h3.LatLngPoly:
    dlat = scale * HALF_SIDE_M / M_PER_DEG_LAT
    dlng = dlat / math.cos(math.radians(CENTRE[0]))
    (lat, lng) = CENTRE
    corners = [(lat - dlat, lng - dlng), (lat - dlat, lng + dlng), (lat + dlat, lng + dlng),
               (lat + dlat, lng - dlng)]  # fmt: skip
    return h3.LatLngPoly(corners)


def rate(fn: Callable[[float, float], object], points: list[tuple[float, float]]) -> float:
    clock = CLOCK
    start = clock()
    for lat, lng in points:
        fn(lat, lng)
    return len(points) / (clock() - start)


def rate_asked(
    fleet: Fleet,
    points: list[tuple[float, float]],
    asked: list[str],
    k: int,
    radius: float,
    now: float,
) -> float:
    """Queries/s of the search per product, each point asking for its ride's product."""
    clock = CLOCK
    start = clock()
    for (lat, lng), product in zip(points, asked, strict=True):
        fleet.nearest(product, lat, lng, k, radius, now)
    return len(points) / (clock() - start)


class NotServing:
    """The drivers that do not serve a product, as an opaque exclusion."""

    def __init__(self, serves: dict[uuid.UUID, frozenset[str]], product: str) -> None:
        self.serves, self.product = serves, product

    def __contains__(self, item: object) -> bool:
        return self.product not in self.serves[item]  # type: ignore[index]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--drivers", type=int, default=50_000)
    ap.add_argument("--queries", type=int, default=20_000)
    ap.add_argument("--filter-queries", type=int, default=2_000, help="of the filter, a round")
    ap.add_argument("--moves", type=int, default=100_000, help="upserts per round")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--radius", type=float, default=2_000.0)
    ap.add_argument("--fleet-mix", default="car=0.82,xl=0.12,wav=0.04,wav_small=0.02")
    ap.add_argument("--ride-mix", default="standard=0.8,xl=0.15,accessible=0.05")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    now, products = 1_000.0, DEFAULT_CATALOG.names
    fleet_mix, ride_mix = mix(args.fleet_mix), mix(args.ride_mix)

    ids = [uuid.UUID(int=rng.getrandbits(128), version=4) for _ in range(args.drivers)]
    kinds = rng.choices(list(fleet_mix), weights=list(fleet_mix.values()), k=len(ids))
    serves = {d: DEFAULT_CATALOG.serves(KINDS[kind]) for d, kind in zip(ids, kinds, strict=True)}
    places = {d: random_point(rng) for d in ids}
    index = DriverIndex[uuid.UUID](9, 30.0)
    fleet = Fleet(DriverIndex[uuid.UUID](9, 30.0), products)
    for d, (lat, lng) in places.items():
        index.upsert(d, lat, lng, now)
        fleet.upsert(d, lat, lng, now, serves[d])
    fleet.rebalance()  # as the matcher's expiry does: a rare product's index goes coarser
    resolutions = {p: fleet.by_product[p].resolution for p in products}

    step = 15.0 / M_PER_DEG_LAT
    index_moves, fleet_moves = [], []
    for _ in range(args.rounds):
        batch = []
        for _ in range(args.moves):
            d = ids[rng.randrange(len(ids))]
            lat, lng = places[d]
            places[d] = (lat + rng.gauss(0, step), lng + rng.gauss(0, step * 1.27))
            batch.append((d, *places[d]))
        t = CLOCK()
        for d, lat, lng in batch:
            index.upsert(d, lat, lng, now)
        index_moves.append(len(batch) / (CLOCK() - t))
        t = CLOCK()
        for d, lat, lng in batch:
            fleet.upsert(d, lat, lng, now, serves[d])
        fleet_moves.append(len(batch) / (CLOCK() - t))

    k, radius = args.k, args.radius
    # A first pass over new places builds each index's ring plans (one per origin cell, kept):
    # timed apart, as bench_index.py's cold first pass; every index then has its plans.
    warm = [random_point(rng) for _ in range(args.queries)]
    cold = {"today": rate(lambda la, ln: index.nearest(la, ln, k, radius, now), warm)}
    for p in products:
        cold[p] = rate(lambda la, ln, p=p: fleet.nearest(p, la, ln, k, radius, now), warm)
    # Then every cell of the square (and a margin) gets its plans in every index: the rounds
    # time searches, not plan building, whichever index sees a cell first.
    for cell in h3.polygon_to_cells(square(1.1), 9):
        lat, lng = h3.cell_to_latlng(cell)
        index.nearest(lat, lng, k, radius, now)
        for p in products:
            fleet.nearest(p, lat, lng, k, radius, now)

    today: list[float] = []
    per: dict[str, list[float]] = {p: [] for p in products}
    ride_mix_rates: list[float] = []
    filtered: dict[str, list[float]] = {p: [] for p in products}
    mismatches = 0
    for _ in range(args.rounds):
        points = [random_point(rng) for _ in range(args.queries)]
        asked = rng.choices(list(ride_mix), weights=list(ride_mix.values()), k=len(points))
        # Interleaved, so that a busy moment of the machine falls on all of them alike.
        today.append(rate(lambda la, ln: index.nearest(la, ln, k, radius, now), points))
        for p in products:
            per[p].append(rate(lambda la, ln, p=p: fleet.nearest(p, la, ln, k, radius, now),
                               points))  # fmt: skip
        ride_mix_rates.append(rate_asked(fleet, points, asked, k, radius, now))
        sample = points[: args.filter_queries]
        for p in products:
            skip = NotServing(serves, p)
            filtered[p].append(
                rate(lambda la, ln, s=skip: index.nearest(la, ln, k, radius, now, s), sample)
            )
        for lat, lng in sample[:100]:
            for p in products:
                got = fleet.nearest(p, lat, lng, k, radius, now)
                want = sorted((haversine_m(lat, lng, *places[d]), d) for d in ids if p in serves[d])
                want = [(d, m) for m, d in want if m <= radius][:k]
                mismatches += [d for d, _ in got] != [d for d, _ in want]

    base = statistics.median(today)
    result = {
        "config": {k_: v for k_, v in vars(args).items() if k_ != "json"},
        "drivers_serving": {p: sum(p in s for s in serves.values()) for p in products},
        "resolutions": resolutions,
        "today_queries_per_s": base,
        "per_product": {
            p: {"queries_per_s": statistics.median(r), "ratio": statistics.median(r) / base}
            for p, r in per.items()
        },
        "ride_mix": {
            "queries_per_s": statistics.median(ride_mix_rates),
            "ratio": statistics.median(ride_mix_rates) / base,
        },
        "filter_in_one_index": {
            p: {"queries_per_s": statistics.median(r), "ratio": statistics.median(r) / base}
            for p, r in filtered.items()
        },
        "cold_first_pass_queries_per_s": cold,
        "moves_per_s": {
            "index": statistics.median(index_moves),
            "fleet": statistics.median(fleet_moves),
        },
        "mismatches_vs_brute_force": mismatches,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{args.drivers} drivers ({args.fleet_mix}), k={k}, radius {radius:.0f} m, "
          f"median of {args.rounds} rounds")  # fmt: skip
    print(f"{'':34}{'queries/s':>12}{'ratio':>8}")
    print(f"{'today: DriverIndex (no product)':34}{base:>12,.0f}{1:>8.2f}")
    for p, s in result["per_product"].items():
        n = result["drivers_serving"][p]
        print(
            f"{f'per product: {p} ({n} drivers)':34}{s['queries_per_s']:>12,.0f}{s['ratio']:>8.2f}"
        )
    rm = result["ride_mix"]
    print(f"{'per product, ride mix':34}{rm['queries_per_s']:>12,.0f}{rm['ratio']:>8.2f}")
    for p, s in result["filter_in_one_index"].items():
        print(f"{f'filter in one index: {p}':34}{s['queries_per_s']:>12,.0f}{s['ratio']:>8.2f}")
    print("cold first pass (ring plans built): " + ", ".join(
        f"{name} {q:,.0f}/s" for name, q in cold.items()))  # fmt: skip
    mv = result["moves_per_s"]
    moves = f"index {mv['index']:,.0f}/s, fleet {mv['fleet']:,.0f}/s"
    ratio = mv["fleet"] / mv["index"]
    print(f"moves: {moves} ({ratio:.2f}x)   mismatches vs brute force: {mismatches}")


if __name__ == "__main__":
    main()
