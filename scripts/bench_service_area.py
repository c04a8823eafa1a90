"""The cost of the service-area check of a ride request (its pickup and drop-off, each
found its market and tested against that market's prepared polygon).

    .venv/bin/python scripts/bench_service_area.py [--vertices 300] [--requests 20000]

A 300-vertex wavy polygon around San Francisco; random pickups over a box larger than it
(about half outside), drop-offs near the centre. Timed in the process's CPU time, three
rounds; nothing asserted."""

from __future__ import annotations

import argparse
import math
import random
import time

from benchmachine import cpu_model

from dispatch.domain.errors import OutsideServiceArea
from dispatch.markets import MarketMap
from dispatch.settings import MarketConfig


def wavy_ring(vertices: int) -> list[list[float]]:
    ring = []
    for i in range(vertices):
        a = 2 * math.pi * i / vertices
        r = 0.15 * (1 + 0.3 * math.sin(7 * a))
        ring.append([-122.42 + r * math.cos(a) * 1.26, 37.77 + r * math.sin(a)])
    return [*ring, ring[0]]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vertices", type=int, default=300)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    area = {"type": "Polygon", "coordinates": [wavy_ring(args.vertices)]}
    market = MarketConfig(name="sf", shard=0, lat=37.77, lng=-122.42, radius_km=40,
                          service_area=area)  # fmt: skip
    markets = MarketMap([market], 1)
    rng = random.Random(1)
    trips = [
        ((37.77 + rng.uniform(-0.2, 0.2), -122.42 + rng.uniform(-0.25, 0.25)),
         (37.77 + rng.uniform(-0.1, 0.1), -122.42 + rng.uniform(-0.1, 0.1)))
        for _ in range(args.requests)
    ]  # fmt: skip
    print(f"{cpu_model()}; {args.vertices} vertices, {args.requests:,} requests a round")
    for _ in range(args.rounds):
        started, refused = time.process_time(), 0
        for pickup, dropoff in trips:
            try:
                markets.check_stops(pickup, dropoff)
            except OutsideServiceArea:
                refused += 1
        took = time.process_time() - started
        print(f"{args.requests / took:,.0f} requests/s, {took / args.requests * 1e6:.1f} us "
              f"each, {refused:,} refused")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
