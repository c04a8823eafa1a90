"""The table of who may do what on the log (``dispatch.adapters.kafka.acls``)."""

from __future__ import annotations

import pytest
from kafka.admin import ACLOperation, ACLResourcePatternType, ResourceType

from dispatch.adapters.kafka.acls import grants
from dispatch.adapters.kafka.topics import Topics


def allowed(prefix: str, role: str, operation: str) -> set[str]:
    return {
        g.resource
        for g in grants(prefix)
        if g.role == role and g.operation == operation and g.resource_type == "TOPIC"
    }


def test_only_the_api_and_the_load_generator_write_commands() -> None:
    writers = {
        g.role
        for g in grants("city")
        if g.resource == Topics("city").commands and g.operation == "WRITE"
    }
    assert writers == {"api", "simulator"}


def test_only_workers_write_what_shards_own() -> None:
    topics = Topics("city")
    owned = {topics.events, topics.outcomes, topics.snapshots, topics.checkpoints}
    for role in ("api", "simulator", "operator"):
        assert not owned & allowed("city", role, "WRITE"), role
    assert owned <= allowed("city", "worker", "WRITE")


def test_operators_read_every_topic_and_write_none() -> None:
    assert allowed("city", "operator", "READ") == set(Topics("city").all())
    assert allowed("city", "operator", "WRITE") == set()


def test_worker_transactions_are_allowed_by_the_shard_prefix_only() -> None:
    txn = [g for g in grants("city") if g.resource_type == "TRANSACTIONAL_ID"]
    assert {g.role for g in txn} == {"worker"}
    assert {(g.resource, g.prefixed) for g in txn} == {("city.shard-", True)}


def test_grants_name_only_the_prefix_topics_and_become_kafka_acls() -> None:
    for grant in grants("city", {"api": "edge-7"}):
        internal = grant.resource in ("__consumer_offsets", "__transaction_state")
        if grant.resource_type in ("TOPIC", "GROUP", "TRANSACTIONAL_ID") and not internal:
            assert grant.resource.startswith("city."), grant
        acl = grant.acl()
        assert acl.principal == f"User:{grant.principal}"
        assert acl.operation == ACLOperation[grant.operation]
        assert acl.resource_pattern.resource_type == ResourceType[grant.resource_type]
        expected = (
            ACLResourcePatternType.PREFIXED if grant.prefixed else ACLResourcePatternType.LITERAL
        )
        assert acl.resource_pattern.pattern_type == expected
    assert {g.principal for g in grants("city", {"api": "edge-7"}) if g.role == "api"} == {"edge-7"}


def test_an_unknown_role_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown roles"):
        grants("city", {"admin": "root"})


def test_operators_may_describe_kafkas_internal_topics_and_nothing_more_of_them() -> None:
    internal = [g for g in grants("city") if g.resource.startswith("__")]
    assert {(g.role, g.operation, g.resource) for g in internal} == {
        ("operator", "DESCRIBE", "__consumer_offsets"),
        ("operator", "DESCRIBE", "__transaction_state"),
    }
