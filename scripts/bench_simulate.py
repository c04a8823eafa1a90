"""`dispatch simulate` throughput and greedy vs batch on the same seed and demand.

Runs the embedded engine once per strategy (same seed, same demand, same drivers) and
prints events/s, wall time and the pickup ETA of each, side by side. Asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from dispatch.settings import Settings
from dispatch.simulator.embedded import run_embedded
from dispatch.simulator.runner import THROUGHPUT_SCENARIO, SimConfig


def _round(value: float | None) -> float | None:
    """A figure to one decimal, or None when the run had no samples of it."""
    return None if value is None else round(value, 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--drivers", type=int, default=2_000)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = {}
    for strategy in ("greedy", "batch"):
        with tempfile.TemporaryDirectory() as tmp:
            settings = Settings(data_dir=Path(tmp), strategy=strategy)
            config = SimConfig(
                drivers=args.drivers,
                minutes=args.minutes,
                seed=args.seed,
                strategy=strategy,
                demand_per_min=args.drivers * 0.075,
                **THROUGHPUT_SCENARIO,
            )
            report = run_embedded(config, settings)
        rows[strategy] = {
            "requests": report.requests,
            "served_pct": _round(report.served_pct),
            "pickup_eta_s_mean": _round(report.pickup_eta_s_mean),
            "pickup_eta_s_p95": _round(report.pickup_eta_s_p95),
            "offer_s_p50": report.offer_s_p50,
            "offer_s_p95": report.offer_s_p95,
            "utilisation_pct": _round(report.utilisation_pct),
            "events": report.events,
            "wall_s": round(report.wall_s, 1),
            "events_per_s": round(report.events_per_s),
            "violations": len(report.violations),
        }
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        keys = list(rows["greedy"])
        print(f"{'':22} {'greedy':>12} {'batch':>12}")
        for key in keys:
            print(f"{key:22} {rows['greedy'][key]!s:>12} {rows['batch'][key]!s:>12}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
