"""A simulation on the embedded engine closes its shards' stores and the key store when it
ends: no SQLite file of its log stays open for the garbage collector to close later (which
deletes the ``-wal`` files under whoever is copying or reading the log then)."""

from __future__ import annotations

import gc
import os
from pathlib import Path

import pytest

from dispatch.settings import Settings
from dispatch.simulator.embedded import run_embedded
from dispatch.simulator.runner import SimConfig


def open_files_under(folder: Path) -> list[str]:
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(folder.resolve())):
            found.append(target)
    return sorted(found)


def test_a_finished_embedded_run_leaves_no_file_of_its_log_open(tmp_path: Path) -> None:
    data = tmp_path / "log"
    config = SimConfig(drivers=20, minutes=2, seed=3, demand_per_min=6, warmup_minutes=0)
    gc.collect()
    gc.disable()  # only what the run itself closed is closed
    try:
        report = run_embedded(config, Settings(data_dir=data, shards=2))
        still_open = open_files_under(data)
    finally:
        gc.enable()
    assert report.requests > 0
    assert still_open == []
    assert sorted(p.name for p in data.glob("*-wal")) == []  # closed cleanly: checkpointed


def test_a_run_whose_setup_fails_leaves_no_file_of_its_log_open(tmp_path: Path) -> None:
    data = tmp_path / "log"
    config = SimConfig(drivers=5, minutes=1, seed=1, warmup_minutes=0,
                       road_network=tmp_path / "missing.roads.npz")  # fmt: skip
    gc.collect()
    gc.disable()
    try:
        with pytest.raises(Exception, match=r"missing\.roads\.npz"):
            run_embedded(config, Settings(data_dir=data, shards=1))
        still_open = open_files_under(data)
    finally:
        gc.enable()
    assert still_open == []
