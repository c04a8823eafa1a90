"""A small embedded log written by the simulator (two shards, a few hundred events), built
once; each test gets its own copy to damage."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from dispatch.settings import Settings
from dispatch.simulator.embedded import run_embedded
from dispatch.simulator.runner import SimConfig

SHARDS = 2


@pytest.fixture(scope="session")
def pristine_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("pristine") / "log"
    report = run_embedded(
        SimConfig(drivers=40, minutes=2, seed=5, demand_per_min=3, warmup_minutes=0),
        Settings(data_dir=data_dir, shards=SHARDS),
    )
    assert report.events > 100 and not report.violations
    for shard_file in data_dir.glob("shard-*.sqlite"):  # every page in the file itself
        conn = sqlite3.connect(shard_file)
        assert conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0
        conn.close()
    return data_dir


@pytest.fixture
def log_dir(pristine_log: Path, tmp_path: Path) -> Path:
    """A fresh copy of the small log, to damage at will."""
    copy = tmp_path / "log"
    # Not the -wal and -shm files: every page is in the shard files (checkpointed above),
    # and the simulator's engine leaves connections that the garbage collector closes
    # later, deleting those files under a copy that listed them.
    shutil.copytree(pristine_log, copy, ignore=shutil.ignore_patterns("*-wal", "*-shm"))
    return copy
