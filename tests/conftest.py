"""Shared fixtures. Tests marked ``@pytest.mark.kafka`` need the real broker.

The broker address is 127.0.0.1:9092, or ``DISPATCH_TEST_KAFKA``. When no broker answers,
Kafka tests are skipped, except when ``CI`` is set: then they fail, so a CI run can never go
green by skipping them. Start one with ``scripts/kafka-local.sh start``.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

DEFAULT_TEST_KAFKA = "127.0.0.1:9092"
TEST_PARTITIONS = 2


def _broker_answers(bootstrap: str) -> str | None:
    """None if a Kafka broker answers at ``bootstrap``, else the reason it does not."""
    host, _, port = bootstrap.split(",")[0].rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=2):
            pass
    except (OSError, ValueError) as e:
        return f"cannot connect to {bootstrap}: {e}"
    try:
        from dispatch.adapters.kafka.config import new_admin

        admin = new_admin(bootstrap, request_timeout_ms=5_000, bootstrap_timeout_ms=5_000)
        try:
            admin.list_topics()
        finally:
            admin.close()
    except Exception as e:
        return f"{bootstrap} accepts connections but does not answer as Kafka: {e!r}"
    return None


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    """The bootstrap address of a live broker (skip, or fail under CI, when there is none)."""
    bootstrap = os.environ.get("DISPATCH_TEST_KAFKA", DEFAULT_TEST_KAFKA)
    problem = _broker_answers(bootstrap)
    if problem is not None:
        message = f"no Kafka broker: {problem}. Start one with: scripts/kafka-local.sh start"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return bootstrap


@pytest.fixture(autouse=True)
def _kafka_marker_needs_broker(request: pytest.FixtureRequest) -> None:
    """Every test marked ``kafka`` gets ``kafka_bootstrap`` (so it skips/fails without one)."""
    if request.node.get_closest_marker("kafka") is not None:
        request.getfixturevalue("kafka_bootstrap")


@dataclass(frozen=True)
class KafkaTestTopics:
    """A test's own topics: a unique prefix, created with ``create_topics``."""

    bootstrap: str
    prefix: str
    partitions: int

    def env(self, shard: int = 0, **extra: str) -> dict[str, str]:
        """The persistence environment of the Kafka event store, on one shard."""
        return {
            "PERSISTENCE_MODULE": "dispatch.adapters.kafka.eventstore",
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "KAFKA_TOPIC_PREFIX": self.prefix,
            "KAFKA_SHARD": str(shard),
            **extra,
        }


@pytest.fixture
def kafka_topics(kafka_bootstrap: str) -> Iterator[KafkaTestTopics]:
    """Fresh topics under a unique prefix (``test-<uuid8>``), deleted after the test."""
    from dispatch.adapters.kafka.topics import create_topics, delete_topics

    prefix = f"test-{uuid.uuid4().hex[:8]}"
    create_topics(kafka_bootstrap, prefix, TEST_PARTITIONS)
    yield KafkaTestTopics(kafka_bootstrap, prefix, TEST_PARTITIONS)
    delete_topics(kafka_bootstrap, prefix)


@pytest.fixture(scope="session")
def shared_kafka_topics(kafka_bootstrap: str) -> Iterator[KafkaTestTopics]:
    """Topics shared by a whole test session (for suites that run many short tests)."""
    from dispatch.adapters.kafka.topics import create_topics, delete_topics

    prefix = f"test-session-{uuid.uuid4().hex[:8]}"
    create_topics(kafka_bootstrap, prefix, 4)
    yield KafkaTestTopics(kafka_bootstrap, prefix, 4)
    delete_topics(kafka_bootstrap, prefix)


MatcherState = Callable[[Any], dict[str, Any]]
OutcomeCounts = Callable[[Any], Counter[str]]


@pytest.fixture(scope="session")
def matcher_state() -> MatcherState:
    """The state a matcher folded from the log, comparable between two matchers (pending
    rides with their excluded drivers, open offers, assigned rides, availability)."""

    def state(matcher: Any) -> dict[str, Any]:
        return {
            "pending": dict(matcher.pending),
            "offers": dict(matcher.offers),
            "assigned": dict(matcher.assigned),
            "available": set(matcher.available),
            "drivers": dict(matcher.drivers),
        }

    return state


@pytest.fixture(scope="session")
def outcome_counts() -> OutcomeCounts:
    """How many outcomes each command id has on a deployment's outcomes topic
    (read_committed, every partition), for settings of a Kafka deployment."""
    import orjson
    from kafka import TopicPartition

    from dispatch.adapters.kafka.config import new_consumer
    from dispatch.adapters.kafka.topics import Topics

    def counts(settings: Any) -> Counter[str]:
        topic = Topics(settings.topic_prefix).outcomes
        consumer = new_consumer(settings.kafka_bootstrap, group_id=None)
        parts = [TopicPartition(topic, p) for p in range(settings.shards)]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        end = consumer.end_offsets(parts)
        found: Counter[str] = Counter()
        deadline = time.monotonic() + 30
        while any(consumer.position(tp) < end[tp] for tp in parts) and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=200).values():
                for r in records:
                    found[orjson.loads(r.value)["command_id"]] += 1
        consumer.close()
        return found

    return counts


@pytest.fixture
def local_cluster(tmp_path: Any) -> Iterator[Any]:
    """A three-node cluster of ``scripts/kafka-local.sh`` on free ports, its state under
    ``tmp_path``, stopped at the end whatever happened (tests/local_cluster.py). Without
    java: a skip, or a failure under CI."""
    from local_cluster import running_cluster

    with running_cluster(tmp_path / "cluster") as cluster:
        yield cluster
