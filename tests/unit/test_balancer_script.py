"""scripts/balancer.sh refuses what it cannot mean, before it starts anything; the
balanced deployment itself runs in tests/integration/test_kafka_balanced_api.py."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "balancer.sh"


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["start", "--port", "http", "--backends", "127.0.0.1:1,127.0.0.1:2"], "--port"),
        (["start", "--port", "70000", "--backends", "127.0.0.1:1,127.0.0.1:2"], "--port"),
        (["start", "--port", "8080", "--backends", "127.0.0.1:1"], "two instances"),
        (["start", "--port", "8080", "--backends", "127.0.0.1:1,nohost"], "not host:port"),
        (["start", "--port", "8080", "--colour", "red"], "unknown option"),
        (["restart"], "scripts/balancer.sh start"),
    ],
)
def test_meaningless_options_are_refused_with_the_reason(
    args: list[str], said: str, tmp_path: Path
) -> None:
    done = subprocess.run(
        [str(SCRIPT), *args, "--dir", str(tmp_path)], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 2, done.stderr
    assert said in done.stderr
    assert not (tmp_path / "haproxy.pid").exists()


def test_stopping_a_balancer_that_is_not_running_says_so(tmp_path: Path) -> None:
    done = subprocess.run([str(SCRIPT), "stop", "--dir", str(tmp_path)], capture_output=True,
                          text=True, timeout=30)  # fmt: skip
    assert done.returncode == 0 and "not running" in done.stdout
