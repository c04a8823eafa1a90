"""The machine a benchmark ran on, as docs/BENCHMARKS.md quotes it: the CPU model and
``scripts/bench_index.py``'s queries/s (machines of one kind differ by about 2x)."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def calibrate() -> float:
    """scripts/bench_index.py's queries/s, as every section of BENCHMARKS.md quotes it."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench_index.py"), "--json"],
        capture_output=True, text=True, check=True, cwd=ROOT,
    )  # fmt: skip
    return float(json.loads(done.stdout)["index"]["queries_per_s"])
