"""``create_topics`` on a cluster whose brokers learn a new topic's configs a moment after
it is created: the check that follows the creation asks again instead of failing."""

from __future__ import annotations

from typing import Any

import pytest

from dispatch.adapters.kafka import topics as topics_module
from dispatch.adapters.kafka.topics import SPECS, create_topics


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
    with pytest.raises(ValueError, match=r"cleanup\.policy=None"):
        create_topics("127.0.0.1:1", "d", partitions=2, timeout_s=0.05)
