"""A Kafka worker's metrics and health (`dispatch worker --metrics-port`), on the real
broker: /readyz says why it is not ready until the group gives it its shard, then 200;
/metrics counts the commands it decided, its batches, restore, lag and matcher gauges;
/livez answers while its loop turns. docs/OPERATIONS.md lists the metrics."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from kafka_deployment import one_shard
from prometheus_client.parser import text_string_to_metric_families

from dispatch.adapters.kafka.transport import KafkaTransport
from dispatch.bootstrap import build_kafka_worker
from dispatch.cli.worker_metrics import MetricsServer
from dispatch.domain.ids import new_id
from dispatch.settings import Settings
from schemas import commands as c

pytestmark = pytest.mark.kafka
WAIT_S = 60.0


@pytest.fixture
def deployment(kafka_bootstrap: str, tmp_path: Path) -> Iterator[Settings]:
    yield from one_shard(kafka_bootstrap, tmp_path, "metrics")


def samples(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_a_worker_reports_readiness_and_the_work_it_did(deployment: Settings) -> None:
    server = MetricsServer("127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.port}"
    try:
        starting = httpx.get(f"{url}/readyz", timeout=10)
        assert starting.status_code == 503 and "starting" in starting.json()["reason"]
        worker = build_kafka_worker(deployment, member="metrics")
        server.start(worker)
        before = httpx.get(f"{url}/readyz", timeout=10)
        assert before.status_code == 503
        assert before.json()["reason"] == "not yet given its shards by the group"
        deadline = time.monotonic() + WAIT_S
        while 0 not in worker.shards and time.monotonic() < deadline:
            worker.run_once()
        ready = httpx.get(f"{url}/readyz", timeout=10)
        assert ready.status_code == 200 and ready.json() == {"ready": True, "shards": [0]}
        assert httpx.get(f"{url}/livez", timeout=10).json() == {"status": "ok"}

        bus = KafkaTransport(deployment.kafka_bootstrap or "", deployment.topic_prefix)
        try:
            ids = []
            for _ in range(5):
                envelope = c.CommandEnvelope(
                    command_id=str(uuid.uuid4()),
                    issued_at=datetime.now(UTC),
                    command=c.RegisterRider(rider_id=new_id(0), name="r"),
                )
                bus.send_command(envelope)
                ids.append(envelope.command_id)
            bus.flush()
            decided: set[str] = set()
            while len(decided) < 5 and time.monotonic() < deadline:
                worker.run_once()
                decided |= {i for i in ids if bus.wait_outcome(i, 0) is not None}
            assert len(decided) == 5
        finally:
            bus.close()
        found = samples(url)
        assert found[("dispatch_worker_commands_total", ())] == 5
        assert found[("dispatch_worker_transactions_total", (("result", "committed"),))] >= 1
        assert found[("dispatch_worker_batch_seconds_count", (("kind", "batch"),))] >= 1
        assert found[("dispatch_worker_batch_size_sum", (("what", "commands"),))] == 5
        assert found[("dispatch_worker_restore_seconds", (("shard", "0"),))] > 0
        assert found[("dispatch_worker_shards", ())] == 1
        assert ("dispatch_worker_waiting_rides", (("shard", "0"),)) in found
        assert ("dispatch_worker_available_drivers", (("shard", "0"),)) in found
        lag = [v for (name, labels), v in found.items() if name == "dispatch_worker_consumer_lag"
               and ("shard", "0") in labels]  # fmt: skip
        assert lag and all(v >= 0 for v in lag)
        worker.close()
    finally:
        server.close()
