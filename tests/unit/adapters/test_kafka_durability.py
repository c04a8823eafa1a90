"""The durability the topics get from a cluster's size, and the producers' settings that
durability rests on (``dispatch.adapters.kafka.durability``, ``eventstore.clients``)."""

from __future__ import annotations

import pytest

from dispatch.adapters.kafka.durability import Durability
from dispatch.adapters.kafka.eventstore.clients import producer_config


@pytest.mark.parametrize(
    ("brokers", "replicas", "insync"),
    [(1, 1, 1), (2, 2, 1), (3, 3, 2), (5, 3, 2)],
)
def test_durability_follows_the_cluster_size_up_to_three_replicas_two_in_sync(
    brokers: int, replicas: int, insync: int
) -> None:
    assert Durability.for_cluster(brokers) == Durability(replicas, insync)


def test_only_three_replicas_with_two_in_sync_meet_the_documented_guarantee() -> None:
    assert Durability.for_cluster(3).meets_guarantee
    assert not Durability.for_cluster(1).meets_guarantee
    assert "weaker than the guarantee" in Durability.for_cluster(2).describe()
    assert "1 broker(s) lost" in Durability.for_cluster(3).describe()
    assert "no broker loss" in Durability.for_cluster(1).describe()


def test_given_figures_override_the_cluster_size_default() -> None:
    assert Durability.for_cluster(5, replication_factor=5) == Durability(5, 2)
    assert Durability.for_cluster(3, min_insync_replicas=3) == Durability(3, 3)


def test_more_replicas_than_brokers_is_refused_with_the_counts() -> None:
    with pytest.raises(ValueError, match="replication factor 4 needs 4 brokers; the cluster has 3"):
        Durability.for_cluster(3, replication_factor=4)


def test_more_in_sync_replicas_than_replicas_is_refused() -> None:
    with pytest.raises(ValueError, match="would refuse every write"):
        Durability.for_cluster(3, min_insync_replicas=4)
    with pytest.raises(ValueError, match="at least 1"):
        Durability(0, 1)


def test_a_cluster_with_every_broker_fenced_is_refused() -> None:
    with pytest.raises(ValueError, match="no broker"):
        Durability.for_cluster(0)


def test_topic_configs_require_the_in_sync_replicas_and_forbid_unclean_election() -> None:
    assert Durability(3, 2).topic_configs() == {
        "min.insync.replicas": "2",
        "unclean.leader.election.enable": "false",
    }


def test_producers_write_with_acks_all_and_idempotence() -> None:
    config = producer_config("127.0.0.1:9092", transactional_id="t")
    assert config["acks"] == "all"
    assert config["enable_idempotence"] is True


@pytest.mark.parametrize("weaker", [{"acks": 1}, {"acks": 0}, {"enable_idempotence": False}])
def test_a_producer_override_that_weakens_acks_or_idempotence_is_refused(
    weaker: dict[str, object],
) -> None:
    with pytest.raises(ValueError, match="refusing"):
        producer_config("127.0.0.1:9092", **weaker)
