"""``create_topics`` on a cluster whose brokers learn a new topic's configs a moment after
it is created: the check that follows the creation asks again instead of failing."""

from __future__ import annotations

from typing import Any

import pytest

from dispatch.adapters.kafka import durability
from dispatch.adapters.kafka import topics as topics_module
from dispatch.adapters.kafka.topics import SPECS, check_topics, create_topics


class LaggingAdmin:
    """Creates topics at once; ``describe_configs`` answers without their configs (as a
    broker that has not seen them yet) for the first ``lag`` calls."""

    def __init__(self, lag: int) -> None:
        self.lag = lag
        self.topics: dict[str, dict[str, Any]] = {}

    def describe_cluster(self) -> dict[str, Any]:
        return {"brokers": [{"broker_id": 1, "is_fenced": False}]}

    def list_topics(self) -> list[str]:
        return list(self.topics)

    def create_topics(self, wanted: dict[str, Any], **_: Any) -> dict[str, Any]:
        self.topics.update(wanted)
        return {"topics": [{"name": n, "error_code": 0, "error_message": None} for n in wanted]}

    def wait_for_topics(self, names: list[str], timeout_ms: int) -> None:
        assert set(names) <= set(self.topics)

    def describe_topics(self, names: list[str]) -> list[dict[str, Any]]:
        out = []
        for name in names:
            if name not in self.topics:  # Kafka's internal topics, not made yet
                out.append({"name": name, "error_code": 3, "partitions": []})
                continue
            spec = self.topics[name]
            parts = [
                {"partition_index": p, "leader_id": 1, "replica_nodes": [1], "isr_nodes": [1]}
                for p in range(spec["num_partitions"])
            ]
            out.append({"name": name, "error_code": 0, "partitions": parts})
        return out

    def describe_configs(self, resources: list[Any], config_filter: str) -> dict[str, Any]:
        if self.lag > 0:
            self.lag -= 1
            return {"topic": {r.name: {} for r in resources}}
        return {
            "topic": {
                r.name: {
                    k: {"value": v}
                    for k, v in {
                        "min.insync.replicas": "1",
                        "unclean.leader.election.enable": "false",
                        **self.topics[r.name]["configs"],
                    }.items()
                }
                for r in resources
                if r.name in self.topics
            }
        }

    def close(self) -> None:
        pass


def test_topics_whose_configs_brokers_learn_late_are_created_without_an_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    admin = LaggingAdmin(lag=3)
    monkeypatch.setattr(topics_module, "new_admin", lambda _bootstrap, **_: admin)
    monkeypatch.setattr(topics_module, "PROPAGATION_WAIT_S", 0.0, raising=False)
    created = create_topics("127.0.0.1:1", "d", partitions=2)
    assert sorted(created) == sorted(spec.name("d") for spec in SPECS)
    assert admin.lag == 0  # it did ask again


def test_configs_that_never_show_still_fail_the_creation_with_the_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    admin = LaggingAdmin(lag=10**9)
    monkeypatch.setattr(topics_module, "new_admin", lambda _bootstrap, **_: admin)
    monkeypatch.setattr(topics_module, "PROPAGATION_WAIT_S", 0.0, raising=False)
    monkeypatch.setattr(durability, "CONFIGS_WAIT_S", 0.0)
    with pytest.raises(ValueError, match="its configs could not be read"):
        create_topics("127.0.0.1:1", "d", partitions=2, timeout_s=0.05)


class ForgetfulAdmin(LaggingAdmin):
    """A broker that answers configs for none of the topics (it does not know them yet):
    no entry at all, the other way a fresh topic shows."""

    def describe_configs(self, resources: list[Any], config_filter: str) -> dict[str, Any]:
        if self.lag > 0:
            self.lag -= 1
            return {"topic": {}}
        return super().describe_configs(resources, config_filter)


@pytest.mark.parametrize("admin_class", [LaggingAdmin, ForgetfulAdmin])
def test_a_check_asks_again_for_configs_a_broker_does_not_know_yet(
    monkeypatch: pytest.MonkeyPatch, admin_class: type[LaggingAdmin]
) -> None:
    admin = admin_class(lag=0)
    monkeypatch.setattr(topics_module, "new_admin", lambda _bootstrap, **_: admin)
    create_topics("127.0.0.1:1", "d", partitions=2)
    admin.lag = 3  # the next answers know nothing of the topics, then they do
    assert check_topics("127.0.0.1:1", "d", 2) == []
    assert admin.lag == 0


@pytest.mark.parametrize("admin_class", [LaggingAdmin, ForgetfulAdmin])
def test_a_topic_whose_configs_cannot_be_read_is_reported_not_passed(
    monkeypatch: pytest.MonkeyPatch, admin_class: type[LaggingAdmin]
) -> None:
    """Fail safe: a topic the answering broker never describes is a problem of the check
    (its configs unread), not a topic passed unchecked nor one read at a default."""
    admin = admin_class(lag=0)
    monkeypatch.setattr(topics_module, "new_admin", lambda _bootstrap, **_: admin)
    create_topics("127.0.0.1:1", "d", partitions=2)
    admin.lag = 10**9
    monkeypatch.setattr(durability, "CONFIGS_WAIT_S", 0.0)
    problems = check_topics("127.0.0.1:1", "d", 2)
    assert problems and all("its configs could not be read" in p for p in problems)
    unread = {name for p in problems for name in p.split(":")[0].split(", ")}
    assert unread == {spec.name("d") for spec in SPECS}
