"""`dispatch serve`, embedded, as a user starts it: a data dir with a shard file gone or a
shard count other than the log's is refused at start (exit code 2, the file named),
instead of serving with an empty shard."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from dispatch.bootstrap import build_embedded_engine
from dispatch.settings import Settings

START_TIMEOUT_S = 60  # a server that starts instead of refusing fails the test then


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def serve(data_dir: Path, shards: int) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"DISPATCH_SHARDS": str(shards), "COLUMNS": "1000"}
    env.pop("DISPATCH_KAFKA_BOOTSTRAP", None)
    command = [sys.executable, "-m", "dispatch", "serve", "--data-dir", str(data_dir)]
    try:
        return subprocess.run(
            [*command, "--port", str(free_port())],
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT_S,
            env=env,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(
            f"dispatch serve started on a damaged log (still running after {START_TIMEOUT_S} s)"
        )


@pytest.fixture
def two_shard_log(tmp_path: Path) -> Path:
    data_dir = tmp_path / "log"
    build_embedded_engine(Settings(data_dir=data_dir, shards=2))
    return data_dir


def test_serve_refuses_a_data_dir_with_a_missing_shard_file_and_names_it(
    two_shard_log: Path,
) -> None:
    gone = two_shard_log / "shard-0001.sqlite"
    gone.unlink()
    result = serve(two_shard_log, shards=2)
    assert result.returncode == 2, result.stderr
    assert str(gone) in result.stderr and "missing" in result.stderr
    assert not gone.exists()


def test_serve_refuses_a_shard_count_other_than_the_logs(two_shard_log: Path) -> None:
    result = serve(two_shard_log, shards=4)
    assert result.returncode == 2, result.stderr
    assert f"data dir {two_shard_log} holds 2 shards" in result.stderr
    assert "DISPATCH_SHARDS=4" in result.stderr
    assert not (two_shard_log / "shard-0002.sqlite").exists()
