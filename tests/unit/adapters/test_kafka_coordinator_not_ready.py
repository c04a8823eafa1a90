"""A transactional request whose coordinator cannot be reached is queued again, not dropped
(``clients.ProducerNetClient``; fault 4, docs/RELIABILITY.md).

kafka-python's own sender, transaction manager and network client, no broker: the
coordinator is a port that refuses connections, as a broker's port does once the broker
died and before the cluster names another coordinator."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
from kafka import KafkaProducer, TopicPartition
from kafka.errors import UnknownBrokerIdError
from kafka.net.compat import KafkaNetClient
from kafka.producer.sender import Sender
from kafka.producer.transaction_manager import (
    AddPartitionsToTxnHandler,
    FindCoordinatorHandler,
    TransactionManager,
)

from dispatch.adapters.kafka.eventstore.clients import ProducerNetClient, producer_config

TP = TopicPartition("dispatch.events", 0)


@pytest.fixture
def refused() -> str:
    """host:port of a port nothing listens on (a connection to it is refused at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"127.0.0.1:{port}"


class _Accumulator:
    """What the sender asks of its accumulator before a transactional request."""

    has_incomplete = False

    def flush_in_progress(self) -> bool:
        return False


@pytest.fixture
def client_of(refused: str) -> Iterator[Any]:
    made: list[Any] = []

    def make(kind: type) -> Any:
        client = kind(bootstrap_servers=refused, request_timeout_ms=2_000,
                      reconnect_backoff_ms=50, api_version=(3, 9))  # fmt: skip
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


def _left_queued(client: Any) -> list[Any]:
    """The transactional requests queued after the sender tried to send an
    AddPartitionsToTxn to a coordinator at the refused port (``bootstrap-0``)."""
    manager = TransactionManager(
        transactional_id="dispatch.shard-0", transaction_timeout_ms=20_000,
        retry_backoff_ms=10, api_version=(3, 9),
    )  # fmt: skip
    manager._transaction_coordinator = "bootstrap-0"  # as a FindCoordinator answer left it
    request = AddPartitionsToTxnHandler(manager, {TP})
    manager._enqueue_request(request)
    sender = Sender(client, client.cluster, _Accumulator(), transaction_manager=manager,
                    transactional_id="dispatch.shard-0", retry_backoff_ms=10,
                    request_timeout_ms=2_000)  # fmt: skip
    sender.run_once()
    queued = []
    while (handler := manager.next_request_handler(False)) is not None:
        queued.append(handler)
    return queued


def test_a_request_for_a_coordinator_that_refuses_is_queued_again_after_a_new_lookup(
    client_of: Any,
) -> None:
    queued = _left_queued(client_of(ProducerNetClient))
    assert [type(h) for h in queued] == [FindCoordinatorHandler, AddPartitionsToTxnHandler]


def test_kafka_pythons_own_client_still_drops_it(client_of: Any) -> None:
    """Why ``ProducerNetClient`` exists: if this fails, kafka-python no longer drops the
    request, and the producers may go back to its own network client."""
    queued = _left_queued(client_of(KafkaNetClient))
    assert [type(h) for h in queued] == [FindCoordinatorHandler]


def test_a_node_not_ready_is_answered_false_and_other_errors_are_raised(
    client_of: Any,
) -> None:
    client = client_of(ProducerNetClient)
    assert client.await_ready("bootstrap-0", timeout_ms=2_000) is False
    with pytest.raises(UnknownBrokerIdError):
        client.await_ready(42, timeout_ms=100)  # not a node of this cluster: as before


def test_every_producer_is_made_with_it(refused: str) -> None:
    assert producer_config(refused)["kafka_client"] is ProducerNetClient
    producer = KafkaProducer(**producer_config(refused, transactional_id="t"), api_version=(3, 9))
    try:
        assert isinstance(producer._sender._client, ProducerNetClient)
    finally:
        producer.close(timeout=0)
