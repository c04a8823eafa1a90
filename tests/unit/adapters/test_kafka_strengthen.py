"""Existing topics strengthened, never made unwritable, and durability sized by the
cluster's registered brokers (``dispatch.adapters.kafka.durability``), against a fake admin
client that answers as kafka-python's does."""

from __future__ import annotations

from typing import Any

from dispatch.adapters.kafka.durability import (
    Durability,
    durability_problems,
    registered_brokers,
    strengthen,
)
from dispatch.adapters.kafka.topics import cluster_durability


class FakeAdmin:
    """Topics with their replicas and configs; applies config changes and reassignments
    at once (every new replica in sync)."""

    def __init__(self, replicas: dict[str, int], brokers: dict[int, bool]) -> None:
        self.brokers = brokers  # id -> fenced
        self.replicas = {name: list(range(1, n + 1)) for name, n in replicas.items()}
        self.configs = {
            name: {"min.insync.replicas": "1", "unclean.leader.election.enable": "false"}
            for name in replicas
        }
        self.calls: list[str] = []
        self.unauthorized: set[str] = set()

    def describe_cluster(self) -> dict[str, Any]:
        return {"brokers": [{"broker_id": b, "is_fenced": f} for b, f in self.brokers.items()]}

    def describe_topics(self, names: list[str]) -> list[dict[str, Any]]:
        found = []
        for name in names:
            if name in self.unauthorized:
                found.append({"name": name, "error_code": 29, "partitions": []})
            elif name in self.replicas:
                nodes = self.replicas[name]
                part = {"partition_index": 0, "leader_id": nodes[0], "replica_nodes": nodes,
                        "isr_nodes": nodes}  # fmt: skip
                found.append({"name": name, "error_code": 0, "partitions": [part]})
            else:
                found.append({"name": name, "error_code": 3, "partitions": []})
        return found

    def describe_configs(self, resources: list[Any], config_filter: str) -> dict[str, Any]:
        return {
            "topic": {
                r.name: {k: {"value": v} for k, v in self.configs[r.name].items()}
                for r in resources
            }
        }

    def alter_configs(self, changes: list[Any], incremental: bool) -> None:
        for change in changes:
            self.calls.append(f"alter {change.name} {change.configs}")
            self.configs[change.name].update(change.configs)

    def alter_partition_reassignments(self, moves: dict[Any, list[int]]) -> dict[Any, None]:
        for tp, nodes in moves.items():
            self.calls.append(f"reassign {tp.topic} {nodes}")
            self.replicas[tp.topic] = nodes
        return dict.fromkeys(moves)


def test_raising_in_sync_replicas_never_goes_above_the_replicas_a_topic_has() -> None:
    # A single broker's topics, the cluster grown to three: min.insync.replicas=2 on one
    # replica would refuse every write until replicas are added.
    admin = FakeAdmin({"d.events": 1}, {1: False, 2: False, 3: False})
    strengthen(admin, ["d.events"], Durability(3, 2))
    assert admin.configs["d.events"]["min.insync.replicas"] == "1"
    problems = durability_problems(admin, ["d.events"], Durability(3, 2))
    assert not any("every write is refused" in p for p in problems), problems
    assert any("replication factor 1, expected 3" in p for p in problems), problems


def test_replicas_are_added_before_the_in_sync_replicas_are_raised() -> None:
    admin = FakeAdmin({"d.events": 1}, {1: False, 2: False, 3: False})
    strengthen(admin, ["d.events"], Durability(3, 2), raise_replication=True)
    assert admin.calls[0].startswith("reassign d.events")
    assert admin.calls[1] == "alter d.events {'min.insync.replicas': '2'}"
    assert durability_problems(admin, ["d.events"], Durability(3, 2)) == []


def test_a_broker_that_is_down_still_counts_in_the_durability_the_topics_need() -> None:
    admin = FakeAdmin({}, {1: False, 2: True, 3: False})  # broker 2 killed, fenced
    assert registered_brokers(admin) == [1, 2, 3]
    assert cluster_durability(admin) == Durability(3, 2)


def test_internal_topics_this_principal_may_not_describe_are_reported_not_passed() -> None:
    admin = FakeAdmin({"d.events": 3}, {1: False, 2: False, 3: False})
    admin.configs["d.events"]["min.insync.replicas"] = "2"
    admin.unauthorized = {"__transaction_state"}
    problems = durability_problems(admin, ["d.events"], Durability(3, 2))
    assert problems == [
        "__transaction_state: not checked: this principal may not describe it "
        "(check as the super user)"
    ]
