"""A road-network simulation on the real broker (issue #15): ``dispatch simulate --kafka
--road-network`` starts a worker that ranks by road ETA over the same graph (its setting
travels in the worker's environment), while the simulated drivers drive routes."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from roads_data import helsinki_extract
from typer.testing import CliRunner

from dispatch.adapters.kafka.topics import delete_topics
from dispatch.cli import app

pytestmark = pytest.mark.kafka


def test_a_road_simulation_on_kafka_matches_by_road_eta_in_its_worker(
    kafka_bootstrap: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    prefix = f"test-roads-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("DISPATCH_TOPIC_PREFIX", prefix)
    monkeypatch.delenv("DISPATCH_MARKETS", raising=False)
    target = tmp_path / "run"
    try:
        result = CliRunner().invoke(
            app,
            [
                "simulate",
                "--kafka",
                kafka_bootstrap,
                "--road-network",
                str(helsinki_extract()),
                "--drivers",
                "12",
                "--minutes",
                "3",
                "--seed",
                "3",
                "--demand",
                "6",
                "--warmup",
                "1",
                "--json",
                "--data-dir",
                str(target),
            ],
        )
    finally:
        delete_topics(kafka_bootstrap, prefix)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["road_network"]["eta"] == "road" and report["road_network"]["nodes"] > 1000
    assert report["violations"] == []
    assert report["served"] > 0 and report["pickup_m_mean"] is not None
    worker_log = (target / "logs" / "worker-0.log").read_text()
    assert "pickup ETAs routed over the road graph" in worker_log
