"""On the real broker: an API instance on Kafka records operators' reads in the
``operator-reads`` topic before answering them, and `dispatch replay audit --reads --kafka`
lists them from there (with no data dir of that instance)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from conftest import KafkaTestTopics
from fastapi.testclient import TestClient
from pydantic import SecretStr
from typer.testing import CliRunner

from dispatch.api import AuthSettings, create_app, mint_operator_token
from dispatch.api.context import ApiOptions
from dispatch.bootstrap import build_runtime
from dispatch.cli import app as cli
from dispatch.runtime import Runtime
from dispatch.settings import Settings

pytestmark = pytest.mark.kafka
SECRET = "CCisrPB9f_7OMQDgtQXv-O_IxZF-9MDZ6K4SVXRKH9BFVZnm"


def _serving(topics: KafkaTestTopics, tmp_path: Path) -> tuple[Runtime, AuthSettings]:
    """A serving process's runtime on the test's topics (no workers), and its auth."""
    settings = Settings(
        kafka_bootstrap=topics.bootstrap,
        topic_prefix=topics.prefix,
        shards=topics.partitions,
        data_dir=tmp_path / "serve",
    )
    runtime = build_runtime(settings, clock=time.time)
    return runtime, AuthSettings(secret=SecretStr(SECRET), environment="production")


def test_an_operators_read_on_kafka_is_in_the_topic_and_in_replay_audit(
    kafka_topics: KafkaTestTopics, tmp_path: Path
) -> None:
    runtime, auth = _serving(kafka_topics, tmp_path)
    with TestClient(create_app(runtime, auth, ApiOptions(read_wait_s=0.5))) as client:
        operator = {"Authorization": f"Bearer {mint_operator_token(auth, 'vic', 'viewer')}"}
        r = client.get("/heatmap?resolution=5", headers=operator)
        assert r.status_code == 200, r.text
    assert not (tmp_path / "serve" / "operator-reads.sqlite").exists()

    result = CliRunner().invoke(
        cli,
        ["replay", "audit", "--reads", "--json", "--kafka", kafka_topics.bootstrap],
        env={"DISPATCH_TOPIC_PREFIX": kafka_topics.prefix},
    )
    assert result.exit_code == 0, result.output
    [read] = [json.loads(line) for line in result.output.splitlines()]
    assert (read["type"], read["operator_name"], read["operator_role"]) == (
        "OperatorRead",
        "vic",
        "viewer",
    )
    assert read["details"]["route"] == "GET /heatmap"
    assert read["details"]["query"] == {"resolution": "5"}


def test_an_api_on_kafka_without_the_operator_reads_topic_does_not_start(
    kafka_topics: KafkaTestTopics, tmp_path: Path
) -> None:
    """A deployment upgraded without `dispatch topics create`: the brokers would make the
    topic on first use, without its retention or durability, so the API refuses to start."""
    from dispatch.adapters.kafka.config import new_admin
    from dispatch.adapters.kafka.topics import Topics

    topic = Topics(kafka_topics.prefix).name("operator-reads")
    admin = new_admin(kafka_topics.bootstrap)
    try:
        admin.delete_topics([topic], timeout_ms=10_000)
        deadline = time.monotonic() + 30
        while topic in admin.list_topics():  # deleting is asynchronous
            assert time.monotonic() < deadline, f"{topic} was not deleted"
            time.sleep(0.2)
    finally:
        admin.close()
    runtime, auth = _serving(kafka_topics, tmp_path)
    try:
        with pytest.raises(RuntimeError, match="run `dispatch topics create`"):
            create_app(runtime, auth)
    finally:
        for close in runtime.closers:
            close()
