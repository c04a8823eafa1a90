"""The subject-keys topic (docs/PRIVACY.md): made compacted with the settings that bound how
long an erased key stays on the brokers, reported by ``topics check`` when they differ, and
in the ACL table for the roles that read or write keys."""

from __future__ import annotations

import pytest
from test_kafka_fresh_topic_configs import LaggingAdmin

from dispatch.adapters.kafka import topics as topics_module
from dispatch.adapters.kafka.acls import grants
from dispatch.adapters.kafka.topics import SPECS_BY_ROLE, check_topics, create_topics


def test_the_keys_topic_is_compacted_and_rolled_and_cleaned_within_the_hour() -> None:
    spec = SPECS_BY_ROLE["subject-keys"]
    assert spec.co_partitioned
    assert spec.configs == {
        "cleanup.policy": "compact",
        "segment.ms": "3600000",
        "max.compaction.lag.ms": "3600000",
        "min.compaction.lag.ms": "0",
        "delete.retention.ms": "86400000",
    }


def test_a_keys_topic_kept_longer_than_asked_is_a_problem(monkeypatch: pytest.MonkeyPatch) -> None:
    admin = LaggingAdmin(lag=0)
    monkeypatch.setattr(topics_module, "new_admin", lambda _bootstrap, **_: admin)
    create_topics("127.0.0.1:1", "d", partitions=2)
    assert check_topics("127.0.0.1:1", "d", 2) == []
    admin.topics["d.subject-keys"]["configs"]["max.compaction.lag.ms"] = "9223372036854775807"
    assert check_topics("127.0.0.1:1", "d", 2) == [
        "d.subject-keys: max.compaction.lag.ms=9223372036854775807, expected 3600000"
    ]


def test_workers_read_and_write_keys_the_api_and_operators_read_them() -> None:
    held = {(g.role, g.operation) for g in grants("d") if g.resource == "d.subject-keys"}
    assert {("worker", "READ"), ("worker", "WRITE"), ("api", "READ"), ("operator", "READ")} <= (
        held
    )
    assert ("api", "WRITE") not in held and ("simulator", "READ") not in held
