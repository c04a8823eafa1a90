"""A client whose bootstrap timed out is made again, and the failed attempt's network client
(its IO thread and sockets) is closed; a position kafka-python could not learn in time is
an error, not ``None``."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaTimeoutError

from dispatch.adapters.kafka.eventstore.clients import bootstrapped, consumer_config, position


class FakeNetClient:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.closed = False

    def close(self) -> None:
        self.closed = True


def test_a_failed_bootstrap_attempts_client_is_closed_and_the_next_attempt_returned() -> None:
    made: list[FakeNetClient] = []
    attempts = iter([True, True, False])  # time out twice, then succeed

    def make(config: dict[str, Any]) -> str:
        made.append(config["kafka_client"]())
        if next(attempts):
            raise KafkaTimeoutError("bootstrap timed out")
        return "client"

    assert bootstrapped(make, {"kafka_client": FakeNetClient}, total_s=30) == "client"
    assert [c.closed for c in made] == [True, True, False]


def test_a_bootstrap_still_timing_out_at_its_deadline_raises() -> None:
    def make(config: dict[str, Any]) -> str:
        config["kafka_client"]()
        raise KafkaTimeoutError("bootstrap timed out")

    with pytest.raises(KafkaTimeoutError):
        bootstrapped(make, {"kafka_client": FakeNetClient}, total_s=0)


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A server that accepts connections and never answers (a stalled broker)."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        yield f"127.0.0.1:{server.getsockname()[1]}"


def test_attempts_on_a_silent_broker_leave_no_io_thread_behind(silent_server: str) -> None:
    before = threading.active_count()
    config = consumer_config(silent_server, bootstrap_timeout_ms=200)
    with pytest.raises(KafkaTimeoutError):
        bootstrapped(lambda c: KafkaConsumer(**c), config, total_s=0.6)
    assert threading.active_count() == before


class NoPosition:
    def position(self, tp: TopicPartition, timeout_ms: int | None = None) -> int | None:
        return None


class Known:
    def position(self, tp: TopicPartition, timeout_ms: int | None = None) -> int | None:
        return 42


def test_a_position_not_learnt_in_time_is_an_error_naming_the_partition() -> None:
    with pytest.raises(KafkaTimeoutError, match=r"d\.events"):
        position(NoPosition(), TopicPartition("d.events", 0), timeout_ms=10)  # type: ignore[arg-type]
    assert position(Known(), TopicPartition("d.events", 0)) == 42  # type: ignore[arg-type]
