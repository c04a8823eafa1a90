"""Creating and checking the event store's topics (``dispatch.adapters.kafka.topics``) on a
real broker."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from eventsourcing.persistence import InfrastructureFactoryError, OperationalError
from kafka.admin import ConfigResource, ConfigResourceType

from dispatch.adapters.kafka.config import new_admin
from dispatch.adapters.kafka.eventstore import KafkaFactory
from dispatch.adapters.kafka.topics import SPECS, Topics, check_topics, create_topics, delete_topics

pytestmark = pytest.mark.kafka


@pytest.fixture
def prefix(kafka_bootstrap: str) -> Iterator[str]:
    """A unique prefix with no topics yet; whatever the test creates is deleted after."""
    name = f"test-{uuid.uuid4().hex[:8]}"
    yield name
    delete_topics(kafka_bootstrap, name)


def create_raw(bootstrap: str, topics: dict[str, dict[str, Any]]) -> None:
    admin = new_admin(bootstrap)
    try:
        admin.create_topics(topics)
        admin.wait_for_topics(list(topics))
    finally:
        admin.close()


def test_created_topics_have_the_specified_shape_and_creating_again_changes_nothing(
    kafka_bootstrap: str, prefix: str
) -> None:
    created = create_topics(kafka_bootstrap, prefix, partitions=3)
    assert sorted(created) == sorted(Topics(prefix).all())
    assert create_topics(kafka_bootstrap, prefix, partitions=3) == []
    assert check_topics(kafka_bootstrap, prefix, partitions=3) == []
    assert check_topics(kafka_bootstrap, prefix) == []  # shard count read from the events topic
    admin = new_admin(kafka_bootstrap)
    try:
        described = {
            t["name"]: len(t["partitions"]) for t in admin.describe_topics(Topics(prefix).all())
        }
        resources = [
            ConfigResource(ConfigResourceType.TOPIC, s.name(prefix), list(s.configs)) for s in SPECS
        ]
        configs = admin.describe_configs(resources, config_filter="all")["topic"]
    finally:
        admin.close()
    topics = Topics(prefix)
    assert described[topics.events] == described[topics.commands] == described[topics.outcomes] == 3
    assert described[topics.shard_messages] == described[topics.locations] == 3
    assert described[topics.dead_letters] == 1
    assert configs[topics.events]["retention.ms"]["value"] == "-1"
    assert configs[topics.events]["cleanup.policy"]["value"] == "delete"
    assert configs[topics.snapshots]["cleanup.policy"]["value"] == "compact"
    assert configs[topics.locations]["retention.ms"]["value"] == str(24 * 3600 * 1000)
    assert configs[topics.shard_messages]["cleanup.policy"]["value"] == "delete"
    assert configs[topics.shard_messages]["retention.ms"]["value"] == str(7 * 24 * 3600 * 1000)


def test_check_reports_missing_topics_wrong_partitions_and_wrong_cleanup_policy(
    kafka_bootstrap: str, prefix: str
) -> None:
    topics = Topics(prefix)
    create_raw(
        kafka_bootstrap,
        {
            topics.events: {"num_partitions": 2, "configs": {"retention.ms": "-1"}},
            topics.snapshots: {"num_partitions": 3, "configs": {"cleanup.policy": "delete"}},
        },
    )
    problems = check_topics(kafka_bootstrap, prefix)
    assert f"{topics.commands}: missing" in problems
    assert f"{topics.shard_messages}: missing" in problems
    assert any("co-partitioned topics differ" in p for p in problems)
    assert f"{topics.snapshots}: 3 partitions, expected 2" in problems
    assert f"{topics.snapshots}: cleanup.policy=delete, expected compact" in problems
    assert not any(p.startswith(f"{topics.events}:") for p in problems)
    with pytest.raises(ValueError, match="wrong shape"):
        create_topics(kafka_bootstrap, prefix, partitions=2)  # creates the missing ones, refuses


def test_a_shard_without_its_topics_fails_clearly(kafka_bootstrap: str, prefix: str) -> None:
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "KAFKA_TOPIC_PREFIX": prefix,
        "KAFKA_SHARD": "0",
    }
    factory = KafkaFactory(env)
    writer = factory.writer()
    with pytest.raises(OperationalError, match="does not exist: create it"):
        factory.application_recorder()
    assert writer.closed  # the producer is not left behind


def test_a_shard_beyond_the_partition_count_fails_clearly(
    kafka_bootstrap: str, prefix: str
) -> None:
    create_topics(kafka_bootstrap, prefix, partitions=2)
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "KAFKA_TOPIC_PREFIX": prefix,
        "KAFKA_SHARD": "2",
    }
    factory = KafkaFactory(env)
    with pytest.raises(OperationalError, match="has no partition 2"):
        factory.application_recorder()
    factory.close()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"KAFKA_SHARD": "0"}, "bootstrap servers not set"),
        ({"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"}, "shard .* not set"),
        ({"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1", "KAFKA_SHARD": "-1"}, "invalid"),
    ],
)
def test_missing_settings_are_refused_before_connecting(env: dict[str, str], message: str) -> None:
    with pytest.raises(InfrastructureFactoryError, match=message):
        KafkaFactory(env)


def topic_configs(bootstrap: str, names: list[str], keys: list[str]) -> dict[str, dict[str, str]]:
    admin = new_admin(bootstrap)
    try:
        resources = [ConfigResource(ConfigResourceType.TOPIC, n, keys) for n in names]
        found = admin.describe_configs(resources, config_filter="all")["topic"]
    finally:
        admin.close()
    return {name: {k: e["value"] for k, e in entries.items()} for name, entries in found.items()}


def test_created_topics_forbid_unclean_leader_election_and_require_the_in_sync_replicas(
    kafka_bootstrap: str, prefix: str
) -> None:
    create_topics(kafka_bootstrap, prefix, partitions=1)
    keys = ["min.insync.replicas", "unclean.leader.election.enable"]
    found = topic_configs(kafka_bootstrap, Topics(prefix).all(), keys)
    assert set(found) == set(Topics(prefix).all())
    for configs in found.values():  # one broker: one replica, one in sync
        assert configs == {"min.insync.replicas": "1", "unclean.leader.election.enable": "false"}


def test_check_reports_unclean_election_and_more_in_sync_replicas_than_replicas(
    kafka_bootstrap: str, prefix: str
) -> None:
    topics = Topics(prefix)
    create_raw(
        kafka_bootstrap,
        {
            topics.events: {
                "num_partitions": 1,
                "configs": {"retention.ms": "-1", "unclean.leader.election.enable": "true"},
            },
            topics.commands: {"num_partitions": 1, "configs": {"min.insync.replicas": "2"}},
        },
    )
    problems = check_topics(kafka_bootstrap, prefix)
    assert any(
        p.startswith(f"{topics.events}: unclean.leader.election.enable=true") for p in problems
    )
    assert (
        f"{topics.commands}: min.insync.replicas=2 is more than its 1 replica(s): every write "
        "is refused" in problems
    )


def test_creating_again_turns_unclean_election_off_on_an_existing_topic(
    kafka_bootstrap: str, prefix: str
) -> None:
    topics = Topics(prefix)
    create_raw(
        kafka_bootstrap,
        {
            topics.events: {
                "num_partitions": 1,
                "configs": {"retention.ms": "-1", "unclean.leader.election.enable": "true"},
            }
        },
    )
    changes: list[str] = []
    create_topics(kafka_bootstrap, prefix, partitions=1, report=changes.append)
    assert changes == [f"{topics.events}: set unclean.leader.election.enable=false"]
    found = topic_configs(kafka_bootstrap, [topics.events], ["unclean.leader.election.enable"])
    assert found[topics.events]["unclean.leader.election.enable"] == "false"
    assert check_topics(kafka_bootstrap, prefix, partitions=1) == []


def test_asking_for_more_replicas_than_brokers_is_refused_before_anything_is_created(
    kafka_bootstrap: str, prefix: str
) -> None:
    with pytest.raises(ValueError, match="replication factor 3 needs 3 brokers; the cluster has 1"):
        create_topics(kafka_bootstrap, prefix, partitions=1, replication_factor=3)
    admin = new_admin(kafka_bootstrap)
    try:
        assert not set(Topics(prefix).all()) & set(admin.list_topics())
    finally:
        admin.close()
