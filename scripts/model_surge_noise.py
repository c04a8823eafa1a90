"""A numpy model of the surge curve under noisy counts: changes and reversals a cell a
cadence, and the response to a sustained demand rise, for each noise band.

    .venv/bin/python scripts/model_surge_noise.py

5,000 cells, Poisson requests of mean 0-1.5 a cadence (a window of 10 cadences), Poisson
supply of mean 0-8 each cadence; 350 cadences counted after 50. The response: 2,000 cells
with Poisson supply of 5 whose demand rises for good from 0.5 to 1.5 a cadence at cadence
60 (target 1.00 to 1.75): cadences until the level reaches 1.38. Seeded (docs/BENCHMARKS.md,
"Surge", "The noise band").
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dispatch.pricing.surge import SurgeCurve

CELLS, CADENCES, WINDOW, WARM = 5_000, 400, 10, 50


def main() -> int:
    rng = np.random.default_rng(1)
    demand_mean = rng.uniform(0, 1.5, CELLS)
    supply_mean = rng.uniform(0, 8, CELLS)
    arrivals = rng.poisson(demand_mean[:, None], (CELLS, CADENCES + WINDOW))
    supply = rng.poisson(supply_mean[:, None], (CELLS, CADENCES + WINDOW))
    for noise in (0.0, 1.0, 1.5, 2.0, 2.5, 3.0):
        curve = SurgeCurve(noise=noise)
        level = np.full(CELLS, 100, np.int64)
        last = np.zeros(CELLS, np.int64)
        changes = reversals = 0
        for t in range(WINDOW, CADENCES + WINDOW):
            after, _ = curve.step(level, arrivals[:, t - WINDOW : t].sum(1), supply[:, t])
            moved = after != level
            way = np.sign(after - level)
            if t >= WINDOW + WARM:
                changes += int(moved.sum())
                reversals += int((moved & (way == -last) & (last != 0)).sum())
            last = np.where(moved, way, last)
            level = np.where(moved, after, level)
        n = (CADENCES - WARM) * CELLS
        m = 2_000
        rise = np.concatenate([rng.poisson(0.5, (m, 60)), rng.poisson(1.5, (m, 40))], 1)
        drivers = rng.poisson(5, (m, 100))
        cell = np.full(m, 100, np.int64)
        reached = np.full(m, -1)
        for t in range(WINDOW, 100):
            cell, _ = curve.step(cell, rise[:, t - WINDOW : t].sum(1), drivers[:, t])
            if t >= 60:
                reached = np.where((reached < 0) & (cell >= 138), t - 59, reached)
        ok = reached > 0
        print(
            f"noise {noise}: changes a cell a cadence {changes / n:.3f}, reversals "
            f"{reversals / max(changes, 1):.0%} of them ({reversals / n:.3f} a cell a cadence), "
            f"changes a day for 10k cells {changes / n * 10_000 * 2_880 / 1e6:.2f} M; "
            f"rise: cadences to 1.38 median {np.median(reached[ok]):.0f}, "
            f"p90 {np.percentile(reached[ok], 90):.0f}, not in 40: {1 - ok.mean():.1%}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
