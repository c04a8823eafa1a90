"""The cost per ping of geofence checks: the matcher's ``ping`` with no places, beside the
same pings with K places (airport- and station-sized polygons scattered over the city).

    .venv/bin/python scripts/bench_geofences.py [--places 10,100,1000] [--pings 100000]
        [--rounds 5] [--json]

10,000 available drivers of the shard's own; each round replays the same random pings
(two mixes: over the whole city, and half of them inside places, as at an airport lot)
through a matcher without places and one with, alternating, and reports the median of
the rounds in microseconds of process CPU time per ping, and the added cost. Nothing
asserted: docs/BENCHMARKS.md, "Geofences", quotes it with the machine."""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import time
import uuid

from benchmachine import calibrate, cpu_model

from dispatch.domain.driver import DriverStatus
from dispatch.geofences import Geofences, places_of
from dispatch.matching.eta import StraightLineEta
from dispatch.matching.index import DriverIndex
from dispatch.matching.matcher import Matcher, MatcherConfig
from dispatch.matching.strategies import make_strategy
from dispatch.settings import MarketConfig, PlaceConfig

CENTRE = (37.77, -122.42)
SPAN = (0.18, 0.22)  # the box of pings: about 40 km x 39 km


def star(lat: float, lng: float, radius: float, rng: random.Random) -> dict[str, object]:
    ring = []
    for i in range(12):
        a = 2 * math.pi * i / 12
        r = radius * rng.uniform(0.6, 1.0)
        ring.append([lng + r * math.cos(a) * 1.26, lat + r * math.sin(a)])
    return {"type": "Polygon", "coordinates": [[*ring, ring[0]]]}


def fences(count: int, rng: random.Random) -> tuple[Geofences, list[tuple[float, float]]]:
    places, centres = [], []
    for n in range(count):
        lat = CENTRE[0] + rng.uniform(-SPAN[0], SPAN[0]) * 0.9
        lng = CENTRE[1] + rng.uniform(-SPAN[1], SPAN[1]) * 0.9
        radius = rng.choice((0.002, 0.004, 0.01))  # a station, a mall, an airport
        places.append(PlaceConfig(id=f"p{n}", area=star(lat, lng, radius, rng), queue=True))
        centres.append((lat, lng))
    market = MarketConfig(name="sf", shard=0, lat=CENTRE[0], lng=CENTRE[1], radius_km=40,
                          places=places)  # fmt: skip
    return Geofences(places_of([market])), centres


def matcher(places: Geofences | None, drivers: list[uuid.UUID]) -> Matcher:
    m = Matcher(DriverIndex[uuid.UUID](9, 30.0), StraightLineEta(), make_strategy("greedy"),
                MatcherConfig(), places=places)  # fmt: skip
    for d in drivers:
        m.load_driver(d, (DriverStatus.AVAILABLE, False))
    return m


def per_ping_us(m: Matcher, pings: list[tuple[uuid.UUID, float, float, float]]) -> float:
    started = time.process_time()
    for d, lat, lng, at in pings:
        m.ping(d, lat, lng, at)
    return (time.process_time() - started) / len(pings) * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--places", default="10,100,1000")
    parser.add_argument("--pings", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    counts = [int(c) for c in args.places.split(",")]
    if args.pings < 1 or args.rounds < 1 or any(c < 1 for c in counts):
        parser.error("--pings, --rounds and each of --places must be at least 1")
    rng = random.Random(7)
    drivers = [uuid.uuid4() for _ in range(10_000)]
    out: dict[str, object] = {"cpu": cpu_model(), "pings": args.pings, "rounds": args.rounds}
    rows = []
    for count in counts:
        started = time.perf_counter()
        geofences, centres = fences(count, rng)
        build_s = time.perf_counter() - started
        for mix in ("city", "half_in_places"):
            pings = []
            for n in range(args.pings):
                if mix == "half_in_places" and n % 2:
                    lat, lng = rng.choice(centres)
                    lat, lng = lat + rng.uniform(-0.002, 0.002), lng + rng.uniform(-0.002, 0.002)
                else:
                    lat = CENTRE[0] + rng.uniform(-SPAN[0], SPAN[0])
                    lng = CENTRE[1] + rng.uniform(-SPAN[1], SPAN[1])
                pings.append((drivers[n % len(drivers)], lat, lng, 1.7e9 + n / 1000))
            without, with_ = [], []
            for _ in range(args.rounds):  # side by side, alternating
                without.append(per_ping_us(matcher(None, drivers), pings))
                with_.append(per_ping_us(matcher(geofences, drivers), pings))
            row = {
                "places": count, "mix": mix, "cells": geofences.cells,
                "build_s": round(build_s, 2),
                "without_us": round(statistics.median(without), 2),
                "with_us": round(statistics.median(with_), 2),
                "added_us": round(statistics.median(map(float.__sub__, with_, without)), 2),
            }  # fmt: skip
            rows.append(row)
            if not args.json:
                print(row)
    out["rows"] = rows
    out["bench_index_qps"] = calibrate()
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        print(f"{out['cpu']}; scripts/bench_index.py {out['bench_index_qps']:,.0f} queries/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
