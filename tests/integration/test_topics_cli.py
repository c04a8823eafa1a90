"""``dispatch topics create|check`` on the real broker: what it says about the cluster,
the durability and the connection, and its exit codes."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from dispatch.adapters.kafka.topics import Topics, delete_topics
from dispatch.cli import app

pytestmark = pytest.mark.kafka


@pytest.fixture
def prefix(kafka_bootstrap: str) -> Iterator[str]:
    name = f"test-{uuid.uuid4().hex[:8]}"
    yield name
    delete_topics(kafka_bootstrap, name)


def run(bootstrap: str, prefix: str, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(
        app, ["topics", *args, "--kafka", bootstrap], env={"DISPATCH_TOPIC_PREFIX": prefix}
    )
    return result.exit_code, " ".join(result.output.split())  # rich wraps long lines


def test_create_then_check_say_the_cluster_durability_and_connection(
    kafka_bootstrap: str, prefix: str
) -> None:
    code, out = run(kafka_bootstrap, prefix, "create", "--partitions", "2")
    assert code == 0, out
    assert f"topics of prefix '{prefix}' ready (2 partitions)" in out
    code, out = run(kafka_bootstrap, prefix, "check")
    assert code == 0, out
    assert "cluster: 1 broker(s)" in out
    assert "durability: replication factor 1, min.insync.replicas 1" in out
    assert "writes go on with no broker loss" in out
    assert "weaker than the guarantee the docs claim" in out
    assert "connection: PLAINTEXT, no authentication: any client that reaches a broker" in out
    assert out.endswith("topics ok")


def test_check_of_missing_topics_lists_them_and_exits_1(kafka_bootstrap: str, prefix: str) -> None:
    code, out = run(kafka_bootstrap, prefix, "check")
    assert code == 1
    assert f"problem {Topics(prefix).events}: missing" in out


def test_more_replicas_than_the_cluster_has_brokers_is_an_error_with_the_counts(
    kafka_bootstrap: str, prefix: str
) -> None:
    code, out = run(kafka_bootstrap, prefix, "create", "--replication-factor", "3")
    assert code == 2
    assert "replication factor 3 needs 3 brokers; the cluster has 1" in out
