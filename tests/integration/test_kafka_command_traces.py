"""Trace context on the real broker: a command sent in a span has the span's W3C
``traceparent`` in its record's headers; the worker (JSON logs: tracing, ids only with no
exporter) applies it in a child span, logs in that trace, and the outcome's record has the
child's traceparent, which the transport's line for the outcome read carries as its trace
id."""

from __future__ import annotations

import io
import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from json_log_lines import captured
from kafka import KafkaConsumer, TopicPartition
from kafka_deployment import one_shard

from dispatch import logs
from dispatch.adapters.kafka import wire
from dispatch.adapters.kafka.topics import Topics
from dispatch.adapters.kafka.transport import KafkaTransport
from dispatch.adapters.otel.ids import IdsTracer
from dispatch.adapters.otel.tracer import OtelTracer
from dispatch.bootstrap import build_kafka_worker
from dispatch.domain.ids import new_id
from dispatch.settings import Settings
from schemas import commands as c

pytestmark = pytest.mark.kafka
WAIT_S = 60.0
LOGGERS = ("dispatch.shard.worker", "dispatch.adapters.kafka.transport")


@pytest.fixture
def deployment(kafka_bootstrap: str, tmp_path: Path) -> Iterator[Settings]:
    yield from one_shard(kafka_bootstrap, tmp_path, "traces")


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    with captured(*LOGGERS) as stream:
        yield stream


def records(settings: Settings, topic: str) -> list[Any]:
    """Every committed record of ``topic``'s partition 0."""
    consumer = KafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        isolation_level="read_committed",
        enable_auto_commit=False,
    )
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        end = consumer.end_offsets([tp])[tp]
        found: list[Any] = []
        deadline = time.monotonic() + WAIT_S
        while consumer.position(tp) < end and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                found.extend(batch)
        return found
    finally:
        consumer.close()


def ids(parent: str) -> tuple[str, str]:
    fields = logs.trace_fields(parent)
    return fields["trace_id"], fields["span_id"]


def test_the_traceparent_rides_on_the_command_record_and_comes_back_on_the_outcome_record(
    deployment: Settings, json_lines: io.StringIO
) -> None:
    settings = deployment.model_copy(update={"log_format": "json"})
    worker = build_kafka_worker(settings, member="traces")
    bus = KafkaTransport(settings.kafka_bootstrap or "", settings.topic_prefix)
    try:
        assert isinstance(worker.tracer, IdsTracer)  # JSON logs alone: ids, no SDK spans
        deadline = time.monotonic() + WAIT_S
        while 0 not in worker.shards and time.monotonic() < deadline:
            worker.run_once()
        envelope = c.CommandEnvelope(
            command_id=str(uuid.uuid4()),
            issued_at=datetime.now(UTC),
            command=c.RegisterRider(rider_id=new_id(0), name="r"),
        )
        with OtelTracer("test-api").span("dispatch.command") as sent:
            bus.send_command(envelope)
        bus.flush()
        outcome = None
        while outcome is None and time.monotonic() < deadline:
            worker.run_once()
            outcome = bus.wait_outcome(envelope.command_id, 0.1)
        assert outcome is not None and outcome.accepted
    finally:
        bus.close()
        worker.close()
    topics = Topics(settings.topic_prefix)
    [command] = [r for r in records(settings, topics.commands) if r.value and
                 envelope.command_id.encode() in r.value]  # fmt: skip
    assert wire.traceparent_of(command.headers) == sent
    [answer] = [r for r in records(settings, topics.outcomes)
                if r.key == envelope.command_id.encode()]  # fmt: skip
    back = wire.traceparent_of(answer.headers)
    assert back is not None
    assert ids(back)[0] == ids(sent)[0] and ids(back)[1] != ids(sent)[1]  # the worker's span

    lines = [json.loads(line) for line in json_lines.getvalue().splitlines()]
    ours = [line for line in lines if line.get("command_id") == envelope.command_id]
    [applied] = [line for line in ours if line["logger"] == "dispatch.shard.worker"]
    [read] = [line for line in ours if line["logger"] == "dispatch.adapters.kafka.transport"]
    assert applied["trace_id"] == ids(sent)[0] and applied["span_id"] == ids(back)[1]
    assert applied["shard"] == 0 and applied["batch"] >= 1
    assert read["trace_id"] == ids(sent)[0] and read["message"] == "outcome read: ok"
