"""Benchmark surge: one cadence of a shard's surge tracker over a market of N active cells.

    .venv/bin/python scripts/bench_surge.py [--cells 10000] [--drivers 50000] [--rounds 7]
        [--noise 2.0] [--json]

The market is a disc of resolution-8 cells around San Francisco (37.77, -122.42), every one
of them active (demand in the window). Drivers are indexed in the matcher's own index
(``DriverIndex``, resolution 9), uniform over the disc, about a third of the cells short of
drivers. Each round is a fresh tracker. After a start: the tick that starts the cadence's
clock meets the index's cells (``SurgeTracker.meet``: maps each to its surge cell; all at
once, as after a restore that brings the index back whole: ``first_meet_ms``), and the
first cadence follows (``first_cadence_ms``); a second fresh tracker whose first cadence
meets them all itself, no tick between, is the worst case (``first_cadence_unmet_ms``).
Then ``--cadences`` cadences 30 s apart with new requests between them (untimed: folding a
request is the shard's, timed apart per request), then a shock (every cell's demand jumps:
nearly every cell changes, timed apart, and so is recording its changes by a shard
application on the in-memory store). A cadence is what the matcher's tick does when one is
due: expire the window, sum the supply, step every active cell, build the changes. The
figure is the median over rounds of each round's median cadence. Between the steady
cadences and the shock, ``--cadences`` cadences of a noisy market: each cell's requests
Poisson with a mean drawn per cell from 0 to 1.5 a cadence, so hundreds to thousands of
cells move each time; each is timed computing (``noisy_tick_ms``) and recording
(``noisy_record_ms``: the shard application records the cadence's changes as one
``Surge.Recomputed``, in-memory store, snapshots on, and the matcher folds it back into the
tracker), and their sum (``noisy_total_ms``): what the shard's single writer pays per
cadence; ``noisy_record_max_ms`` is the slowest recording (the ``Surge`` snapshot, every 20
events, falls in each round). Nothing about time is asserted; the machine is printed with
the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import h3
import numpy as np
from h3.api import basic_int as h3i

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmachine import cpu_model

from dispatch.domain.surge import SURGE_RESOLUTION
from dispatch.matching.decisions import ChangeSurge
from dispatch.matching.index import DriverIndex
from dispatch.pricing.surge import SurgeCurve
from dispatch.pricing.tracker import SurgeConfig, SurgeTracker
from dispatch.shard.application import ShardApplication

CENTRE = (37.77, -122.42)
CADENCE_S = 30.0
WINDOW_S = 300.0


def market(cells: int) -> list[int]:
    """At least ``cells`` resolution-8 cells in a disc around the centre, nearest first."""
    centre = h3i.latlng_to_cell(*CENTRE, SURGE_RESOLUTION)
    k = 0
    while 3 * k * (k + 1) + 1 < cells:
        k += 1
    disc = sorted(h3i.grid_disk(centre, k), key=lambda c: (h3i.grid_distance(centre, c), c))
    return disc[:cells]


def place_in(cell: int, rng: random.Random) -> tuple[float, float]:
    """A point in ``cell``: its centre, jittered well within its edge (about 530 m)."""
    lat, lng = h3i.cell_to_latlng(cell)
    return lat + rng.uniform(-0.002, 0.002), lng + rng.uniform(-0.002, 0.002)


def fed_back(tracker: SurgeTracker, changes: ChangeSurge | None) -> int:
    """What the shard records comes back to the tracker; returns how many cells moved."""
    if changes is None:
        return 0
    tracker.levels_recorded(changes.cells, changes.multipliers)  # (one Surge.Recomputed)
    return len(changes)


def cadence_over(
    tracker: SurgeTracker,
    index: DriverIndex[uuid.UUID],
    arriving: list[tuple[float, float, float]],
    now: float,
) -> tuple[float, ChangeSurge | None, float]:
    """Fold ``arriving`` (time, lat, lng) into the tracker in time order, as the log has
    them (untimed), then run the cadence due 30 s after ``now``: its time, its changes and
    the seconds the tick took."""
    for at, lat, lng in sorted(arriving):
        tracker.requested(lat, lng, at)
    now += CADENCE_S
    cells_now, counts = index.cell_counts()
    assert tracker.due(now)
    started = time.perf_counter()
    changes = tracker.tick(now, cells_now, counts, index.resolution)
    return now, changes, time.perf_counter() - started


def one_round(
    cells: list[int], drivers: int, cadences: int, seed: int, noise: float = 0.0
) -> dict[str, float]:
    rng = random.Random(seed)
    index: DriverIndex[uuid.UUID] = DriverIndex(9, ttl_s=1e9)
    now = 1_767_600_000.0
    for _ in range(drivers):
        lat, lng = place_in(rng.choice(cells), rng)
        index.upsert(uuid.UUID(int=rng.getrandbits(128)), lat, lng, now)
    curve = SurgeCurve(Decimal("3.00"), 0.5, 0.5, Decimal("0.10"), noise)
    tracker = SurgeTracker(SurgeConfig(curve, CADENCE_S, WINDOW_S))
    # The window's demand: every cell at least one request; a third of them busy.
    busy = set(rng.sample(range(len(cells)), len(cells) // 3))
    per_cadence = []
    for i, cell in enumerate(cells):
        per_cadence.append((cell, 3 if i in busy else 0))
    fold_times, folded = 0.0, 0
    for back in reversed(range(int(WINDOW_S // CADENCE_S))):  # oldest first, as logged
        for cell, extra in per_cadence:
            for _ in range(1 + extra if back == 0 else extra):
                lat, lng = place_in(cell, rng)
                started = time.perf_counter()
                tracker.requested(lat, lng, now - back * CADENCE_S)
                fold_times += time.perf_counter() - started
                folded += 1
    # The first cadence after a start, the worst case: no matcher tick between the start
    # and the cadence, so it meets every index cell itself (a fresh tracker, timed apart).
    unmet = SurgeTracker(SurgeConfig(curve, CADENCE_S, WINDOW_S))
    for cell, extra in per_cadence:
        for _ in range(1 + extra):
            unmet.requested(*place_in(cell, rng), now)
    unmet.due(now)
    cells_now, counts = index.cell_counts()
    started = time.perf_counter()
    unmet.tick(now + CADENCE_S, cells_now, counts, index.resolution)
    unmet_s = time.perf_counter() - started
    # As the matcher does it: the tick that starts the cadence's clock meets the index's
    # cells (all at once: a restore brings the index back whole), the cadence comes later.
    tracker.due(now)  # starts the cadence's clock
    started = time.perf_counter()
    tracker.meet(cells_now, index.resolution)
    meet_s = time.perf_counter() - started
    now += CADENCE_S
    started = time.perf_counter()
    changes = tracker.tick(now, cells_now, counts, index.resolution)
    first_s = time.perf_counter() - started
    changed = [fed_back(tracker, changes)]
    timings = []
    for _ in range(cadences):
        arriving = []  # the next 30 s of requests, in time order as the log has them
        for cell, extra in per_cadence:
            for _ in range(extra + (1 if rng.random() < 0.1 else 0)):
                arriving.append((now + rng.uniform(0, CADENCE_S), *place_in(cell, rng)))
        now, changes, took = cadence_over(tracker, index, arriving, now)
        timings.append(took)
        changed.append(fed_back(tracker, changes))
    # A noisy market: each cell's requests arrive at random (Poisson, a mean from 0 to 1.5
    # a cadence drawn per cell), so hundreds of cells move every cadence; each cadence's
    # changes are then recorded as the shard does (one Surge.Recomputed, saved in one
    # batch: the application on the library's in-memory store, snapshots on, no disk).
    noisy = np.random.default_rng(seed)
    means = noisy.uniform(0.0, 1.5, len(cells))
    recorder = ShardApplication(0, env={"IS_SNAPSHOTTING_ENABLED": "y"})
    noisy_tick, noisy_record, noisy_changes = [], [], []
    for _ in range(cadences):
        arriving = []
        for cell, count in zip(cells, noisy.poisson(means).tolist(), strict=True):
            for _ in range(count):
                arriving.append((now + rng.uniform(0, CADENCE_S), *place_in(cell, rng)))
        now, changes, took = cadence_over(tracker, index, arriving, now)
        noisy_tick.append(took)
        started = time.perf_counter()
        if changes is not None:
            recorder.decide(changes, datetime.fromtimestamp(now, UTC))
        recorder.commit()
        noisy_changes.append(fed_back(tracker, changes))  # the matcher folds it back
        noisy_record.append(time.perf_counter() - started)
    # A shock: every cell's demand jumps at once, so (nearly) every cell changes.
    now += CADENCE_S
    for cell in cells:
        for _ in range(30):
            tracker.requested(*place_in(cell, rng), now - 1)
    started = time.perf_counter()
    shock = tracker.tick(now, *index.cell_counts(), index.resolution)
    shock_s = time.perf_counter() - started
    # What the shard then does with them: one Surge.Recomputed, saved in one batch (the
    # application on the library's in-memory store: the decisions and the commit, no disk).
    app = ShardApplication(0, env={"IS_SNAPSHOTTING_ENABLED": "y"})
    started = time.perf_counter()
    if shock is not None:
        app.decide(shock, datetime.fromtimestamp(now, UTC))
    app.commit()
    record_s = time.perf_counter() - started
    active = len(set(cells))
    return {
        "active_cells": active,
        "first_cadence_ms": first_s * 1000,
        "first_meet_ms": meet_s * 1000,
        "first_cadence_unmet_ms": unmet_s * 1000,
        "cadence_ms": statistics.median(timings) * 1000,
        "cadence_max_ms": max(timings) * 1000,
        "changes_per_cadence": statistics.median(changed),
        "changes_first": changed[0],
        "noisy_tick_ms": statistics.median(noisy_tick) * 1000,
        "noisy_record_ms": statistics.median(noisy_record) * 1000,
        "noisy_record_max_ms": max(noisy_record) * 1000,
        "noisy_total_ms": statistics.median(
            t + r for t, r in zip(noisy_tick, noisy_record, strict=True)
        )
        * 1000,
        "noisy_total_max_ms": max(t + r for t, r in zip(noisy_tick, noisy_record, strict=True))
        * 1000,
        "noisy_changes_per_cadence": statistics.median(noisy_changes),
        "request_fold_us": fold_times / folded * 1e6,
        "cells_above_one": len(tracker.levels()),
        "shock_ms": shock_s * 1000,
        "shock_changes": len(shock) if shock is not None else 0,
        "shock_record_ms": record_s * 1000,
    }


# Each round's figures given as their median over the rounds.
MEDIANS = ("cadence_ms", "first_cadence_ms", "first_meet_ms", "first_cadence_unmet_ms",
           "changes_per_cadence", "changes_first",
           "noisy_tick_ms", "noisy_record_ms", "noisy_total_ms", "noisy_changes_per_cadence",
           "shock_ms", "shock_changes", "shock_record_ms", "request_fold_us")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cells", type=int, default=10_000)
    parser.add_argument("--drivers", type=int, default=50_000)
    parser.add_argument("--cadences", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--noise", type=float, default=0.0, help="the curve's noise band")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    cells = market(args.cells)
    rounds = [one_round(cells, args.drivers, args.cadences, args.seed + r, args.noise)
              for r in range(args.rounds)]  # fmt: skip
    out: dict[str, object] = {
        "machine": {"cpu": cpu_model(), "python": sys.version.split()[0]},
        "cells": len(cells),
        "resolution": SURGE_RESOLUTION,
        "area_km2": round(len(cells) * h3.average_hexagon_area(SURGE_RESOLUTION, "km^2")),
        "drivers": args.drivers,
        "noise": args.noise,
        "rounds": args.rounds,
        "cadences_per_round": args.cadences,
        **{f"{key}_median": statistics.median(r[key] for r in rounds) for key in MEDIANS},
        "cadence_max_ms": max(r["cadence_max_ms"] for r in rounds),
        "noisy_total_max_ms": max(r["noisy_total_max_ms"] for r in rounds),
        "noisy_record_max_ms": max(r["noisy_record_max_ms"] for r in rounds),
        "load_average": os.getloadavg(),
    }
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        for key, value in out.items():
            print(f"{key}: {value:.3f}" if isinstance(value, float) else f"{key}: {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
