"""A balanced deployment on the real broker, loaded through its API: two `dispatch serve`
instances behind HAProxy (scripts/balancer.sh, deploy/haproxy/haproxy.cfg) in front of two
`dispatch worker` processes, driven by `dispatch simulate --api` through the balancer. One
instance is killed mid-run and started again: the apps' calls and streams go on through
the other (streams reconnect with Last-Event-ID), no request is lost, every ride ends, and
the log verifies."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from dispatch.adapters.kafka.logsource import KafkaLogSource
from dispatch.adapters.kafka.processes import start_worker, stop_worker
from dispatch.adapters.kafka.topics import create_topics, delete_topics
from dispatch.replay.operations import read_all, verify
from dispatch.settings import Settings
from tests.faults.api_process import free_port, start_api, stop_process, wait_ready

pytestmark = pytest.mark.kafka
ROOT = Path(__file__).resolve().parents[2]
BALANCER = ROOT / "scripts" / "balancer.sh"
RIDE_ENDS = {"dispatch.Ride.Completed", "dispatch.Ride.CancelledByRider",
             "dispatch.Ride.CancelledByOperator", "dispatch.Ride.Expired"}  # fmt: skip
KILL_AFTER_S, DOWN_S = 25.0, 4.0


@dataclass
class Deployment:
    settings: Settings
    url: str
    ports: list[int]
    apis: list[subprocess.Popen[bytes]]
    logs: Path


def _needs_haproxy() -> None:
    if shutil.which("haproxy") is None:
        message = "haproxy is not installed: scripts/ci-balancer.sh"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)


@pytest.fixture
def deployment(kafka_bootstrap: str, tmp_path: Path) -> Iterator[Deployment]:
    _needs_haproxy()
    prefix = f"test-balanced-{uuid.uuid4().hex[:8]}"
    create_topics(kafka_bootstrap, prefix, 2)
    settings = Settings(kafka_bootstrap=kafka_bootstrap, topic_prefix=prefix, shards=2,
                        data_dir=tmp_path / "data")  # fmt: skip
    logs = tmp_path / "logs"
    logs.mkdir()
    workers = [start_worker(settings, logs / f"worker-{i}.log", f"w{i}") for i in (1, 2)]
    ports = [free_port(), free_port()]
    apis: list[subprocess.Popen[bytes]] = []
    balancer_dir = tmp_path / "balancer"
    try:
        for i, port in enumerate(ports):
            own = settings.model_copy(update={"data_dir": tmp_path / f"api-{i + 1}"})
            apis.append(start_api(own, port, logs / f"api-{i + 1}.log"))
        for port in ports:
            wait_ready(f"http://127.0.0.1:{port}")
        bal = free_port()
        backends = ",".join(f"127.0.0.1:{p}" for p in ports)
        subprocess.run([str(BALANCER), "start", "--port", str(bal), "--backends", backends,
                        "--dir", str(balancer_dir)], check=True, timeout=30)  # fmt: skip
        url = f"http://127.0.0.1:{bal}"
        wait_ready(url)
        yield Deployment(settings, url, ports, apis, logs)
    finally:
        subprocess.run([str(BALANCER), "stop", "--dir", str(balancer_dir)], timeout=30)
        for api in apis:
            stop_process(api)
        for worker in workers:
            stop_worker(worker)
        delete_topics(kafka_bootstrap, prefix)


def _ride_ends(settings: Settings) -> dict[str, str]:
    assert settings.kafka_bootstrap is not None
    source = KafkaLogSource(settings.kafka_bootstrap, settings.topic_prefix)
    last: dict[str, str] = {}
    for event in read_all(source):
        if event.topic.startswith("dispatch.Ride."):
            last[event.aggregate_id] = event.topic
    return last


def test_a_run_through_the_balancer_survives_the_loss_of_an_instance(
    deployment: Deployment,
) -> None:
    env = os.environ | {"COLUMNS": "1000"}
    env.pop("DISPATCH_KAFKA_BOOTSTRAP", None)
    command = [sys.executable, "-m", "dispatch", "simulate", "--api", deployment.url,
               "--drivers", "12", "--minutes", "1", "--demand", "14", "--city-km", "2",
               "--speed-kmh", "150", "--drain", "60", "--seed", "5", "--json"]  # fmt: skip
    out, err = deployment.logs / "simulate.json", deployment.logs / "simulate.err"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        run = subprocess.Popen(command, env=env, stdout=stdout, stderr=stderr)
        try:
            time.sleep(KILL_AFTER_S)
            first = deployment.apis[0]
            first.kill()  # its own pid: the instance dies with its streams open
            first.wait()
            time.sleep(DOWN_S)
            own = deployment.settings.model_copy(
                update={"data_dir": deployment.logs.parent / "api-1-again"}
            )
            again = start_api(own, deployment.ports[0], deployment.logs / "api-1-again.log")
            deployment.apis.append(again)
            assert run.wait(timeout=300) == 0, err.read_text()[-3000:]
        finally:
            if run.poll() is None:
                run.kill()
                run.wait()
    report: dict[str, Any] = json.loads(out.read_text())
    service = report["service"]
    assert service["served"] > 0 and service["unfinished"] == 0
    assert service["requested"] == service["planned"] > 0  # no request lost
    offers = report["endpoints"]["GET /drivers/{id}/offers"]
    assert offers["calls"] > report["drivers"]  # streams cut by the kill were opened again
    ends = _ride_ends(deployment.settings)
    for ride in report["rides"]:
        assert ends.get(ride["ride_id"]) in RIDE_ENDS, ride
    assert deployment.settings.kafka_bootstrap is not None
    source = KafkaLogSource(deployment.settings.kafka_bootstrap, deployment.settings.topic_prefix)
    events, violations = verify(source)
    assert violations == [] and events > 0
