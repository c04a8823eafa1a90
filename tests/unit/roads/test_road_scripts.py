"""The road scripts' options: a value the benchmark cannot run with is refused in one line
(exit 2), not a traceback halfway through."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[3] / "scripts"


@pytest.mark.parametrize(
    "args, said",
    [
        (["--side", "1"], "--side"),
        (["--queries", "0"], "--queries"),
        (["--queries", "50"], "--queries"),
        (["--rounds", "0"], "--rounds"),
        (["--fleet", "-1"], "--fleet"),
        (["--side", "10", "--fleet", "101"], "--fleet"),
    ],
)
def test_bench_road_eta_refuses_values_it_cannot_run_with(args: list[str], said: str) -> None:
    run = subprocess.run(
        [sys.executable, str(SCRIPTS / "bench_road_eta.py"), "--no-calibrate", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr
    assert said in run.stderr.splitlines()[-1]
