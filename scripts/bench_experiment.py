"""Wall time of a paired experiment, as a user runs it: `dispatch experiment` in a process.

    .venv/bin/python scripts/bench_experiment.py [--runs 3] [--seeds 10] [--drivers 1000]
        [--minutes 20] [--jobs N] [--json] [-- extra experiment options]

Each run is the whole command (imports, every strategy x seed, the report written);
the figure is the median wall time over ``--runs``, with the CPU model beside it. The last
run's JSON result is kept (``--keep DIR``) so the paired figures can be quoted from it.
Nothing about time is asserted.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmachine import cpu_model

ROOT = Path(__file__).resolve().parents[1]
DISPATCH = ROOT / ".venv" / "bin" / "dispatch"


def one_run(args: argparse.Namespace, extra: list[str], report: Path) -> tuple[float, dict]:  # type: ignore[type-arg]
    command = [
        str(DISPATCH),
        "experiment",
        "--seeds", str(args.seeds),
        "--drivers", str(args.drivers),
        "--minutes", str(args.minutes),
        "--report", str(report),
        "--json",
        *(["--jobs", str(args.jobs)] if args.jobs else []),
        *extra,
    ]  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"experiment failed ({done.returncode}): {done.stderr[-2000:]}")
    return wall, json.loads(done.stdout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--drivers", type=int, default=1_000)
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--jobs", type=int, default=None)
    parser.add_argument("--keep", type=Path, default=None, help="keep the last report here")
    parser.add_argument("--json", action="store_true")
    args, extra = parser.parse_known_args()
    extra = [e for e in extra if e != "--"]
    walls: list[float] = []
    result: dict = {}  # type: ignore[type-arg]
    for i in range(args.runs):
        with tempfile.TemporaryDirectory() as folder:
            report = args.keep if (args.keep and i == args.runs - 1) else Path(folder) / "r"
            wall, result = one_run(args, extra, report)
        walls.append(wall)
        if not args.json:
            print(f"run {i + 1}: {wall:.1f} s", flush=True)
    figures = {
        "cpu": cpu_model(),
        "runs": args.runs,
        "seeds": args.seeds,
        "drivers": args.drivers,
        "minutes": args.minutes,
        "wall_s": [round(w, 1) for w in walls],
        "wall_s_median": round(statistics.median(walls), 1),
        "differences": {
            d["metric"]: {
                "diff": d["diff_mean"],
                "ci": [d["ci_low"], d["ci_high"]],
                "baseline_mean": d["baseline_mean"],
                "other_mean": d["other_mean"],
            }
            for d in result.get("differences", [])
        },
        "market": sorted({(r["strategy"], r["market"], r["steady"]) for r in result["runs"]}),
    }
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        print(f"{figures['cpu']}: median {figures['wall_s_median']} s over {walls}")
        for metric, d in figures["differences"].items():
            print(f"  {metric:24} {d['baseline_mean']} -> {d['other_mean']}: {d['diff']} {d['ci']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
