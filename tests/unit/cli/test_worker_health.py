"""The worker's health answers (``dispatch/cli/worker_metrics.py``) over HTTP, on a worker
stand-in: not ready before the group gives it shards, nor with a shard lost or being read
again, each with its reason; not live when its loop stops turning; unknown paths are 404;
and ``dispatch worker`` refuses a metrics port it cannot listen on, before it starts."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from dispatch.adapters.kafka.worker import WorkerStats
from dispatch.cli import app
from dispatch.cli.worker_metrics import LIVE_S, MetricsServer


class StandIn:
    """What the health answers read of a ``KafkaWorker``."""

    def __init__(self) -> None:
        self.stats = WorkerStats()
        matcher = SimpleNamespace(pending={1: None, 2: None}, available={7})
        self.shards: dict[int, Any] = {3: SimpleNamespace(worker=SimpleNamespace(matcher=matcher))}
        self.lost: dict[int, Any] = {}
        self.rewinding: set[int] = set()
        self.batch_observers: list[Any] = []


@pytest.fixture
def served() -> Iterator[tuple[StandIn, str]]:
    server = MetricsServer("127.0.0.1", 0)
    worker = StandIn()
    server.start(worker)  # type: ignore[arg-type]
    try:
        yield worker, f"http://127.0.0.1:{server.port}"
    finally:
        server.close()


def get(url: str) -> httpx.Response:
    return httpx.get(url, timeout=10)


def test_readiness_waits_for_the_group_and_names_a_paused_shard(
    served: tuple[StandIn, str],
) -> None:
    worker, url = served
    first = get(f"{url}/readyz")
    assert (first.status_code, first.json()["reason"]) == (
        503, "not yet given its shards by the group")  # fmt: skip
    worker.stats.assigned_once = True
    assert get(f"{url}/readyz").json() == {"ready": True, "shards": [3]}
    worker.lost[3] = object()
    lost = get(f"{url}/readyz")
    assert lost.status_code == 503 and "[3] lost their producer" in lost.json()["reason"]
    worker.lost.clear()
    worker.rewinding.add(3)
    again = get(f"{url}/readyz")
    assert again.status_code == 503 and "waiting to be read again" in again.json()["reason"]


def test_liveness_fails_when_the_loop_stops_turning(served: tuple[StandIn, str]) -> None:
    worker, url = served
    assert get(f"{url}/livez").json() == {"status": "ok"}
    worker.stats.last_loop = time.monotonic() - LIVE_S - 5
    stuck = get(f"{url}/livez")
    assert stuck.status_code == 503 and "has not turned for" in stuck.json()["reason"]
    worker.stats.assigned_once = True  # otherwise ready: a stuck loop serves nothing
    unready = get(f"{url}/readyz")
    assert unready.status_code == 503 and "has not turned for" in unready.json()["reason"]
    age = [line for line in get(f"{url}/metrics").text.splitlines()
           if line.startswith("dispatch_worker_loop_age_seconds ")]  # fmt: skip
    assert age and float(age[0].split()[1]) > LIVE_S


def test_metrics_give_the_matchers_gauges_and_unknown_paths_are_404(
    served: tuple[StandIn, str],
) -> None:
    _, url = served
    text = get(f"{url}/metrics").text
    assert 'dispatch_worker_waiting_rides{shard="3"} 2.0' in text
    assert 'dispatch_worker_available_drivers{shard="3"} 1.0' in text
    assert "dispatch_worker_transactions_total" in text
    missing = get(f"{url}/nothing")
    assert missing.status_code == 404 and "/readyz" in missing.json()["detail"]


def test_the_worker_refuses_a_metrics_port_in_use_before_it_starts() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(
            app, ["worker", "--kafka", "127.0.0.1:1", "--metrics-port", str(port)]
        )
    said = " ".join(result.output.replace("│", " ").split())  # the error box unwrapped
    assert result.exit_code == 2
    assert f"cannot listen on 127.0.0.1:{port}" in said


def test_the_worker_refuses_a_metrics_port_out_of_range() -> None:
    result = CliRunner().invoke(
        app, ["worker", "--kafka", "127.0.0.1:1", "--metrics-port", "70000"]
    )
    said = " ".join(result.output.replace("│", " ").split())  # the error box unwrapped
    assert result.exit_code == 2 and "less than or equal to 65535" in said
