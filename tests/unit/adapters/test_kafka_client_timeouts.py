"""Every Kafka client the engine makes gives a request up after ``REQUEST_TIMEOUT_MS`` and a
bootstrap attempt after ``BOOTSTRAP_ATTEMPT_MS``, and is made again when its bootstrap timed
out (a stalled broker accepts connections and never answers: fault 2, docs/RELIABILITY.md);
transactional producers ask the broker for ``TRANSACTION_TIMEOUT_MS``, which the writer's
transactions stay under."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaTimeoutError

from dispatch.adapters.kafka import worker as worker_module
from dispatch.adapters.kafka.config import admin_config, seek_since
from dispatch.adapters.kafka.eventstore import writer as writer_module
from dispatch.adapters.kafka.eventstore.clients import (
    BOOTSTRAP_ATTEMPT_MS,
    CONNECTION_SETUP_TIMEOUT_MS,
    OFFSETS_TIMEOUT_MS,
    REQUEST_TIMEOUT_MS,
    TRANSACTION_TIMEOUT_MS,
    beginning_offsets,
    bootstrapped,
    consumer_config,
    end_offsets,
    producer_config,
)
from dispatch.adapters.kafka.eventstore.writer import (
    COMMIT_TIMEOUT_S,
    FLUSH_SPAN_S,
    MIN_FLUSH_S,
    PartitionWriter,
)
from dispatch.settings import Settings

SERVERS = "127.0.0.1:1,127.0.0.1:2"
TP = TopicPartition("dispatch.events", 0)


@pytest.mark.parametrize(
    "config",
    [
        producer_config(SERVERS),
        producer_config(SERVERS, transactional_id="dispatch.shard-0"),
        consumer_config(SERVERS),
        consumer_config(SERVERS, group_id="dispatch.workers", session_timeout_ms=10_000),
        admin_config(SERVERS),
    ],
    ids=["producer", "transactional producer", "consumer", "group consumer", "admin"],
)
def test_every_client_gives_a_silent_broker_up_within_a_few_seconds(config: dict[str, Any]) -> None:
    assert config["request_timeout_ms"] == REQUEST_TIMEOUT_MS <= 5_000
    assert config["bootstrap_timeout_ms"] == BOOTSTRAP_ATTEMPT_MS <= 5_000
    assert config["reconnect_backoff_max_ms"] == 1_000


@pytest.mark.parametrize(
    "config",
    [producer_config(SERVERS), consumer_config(SERVERS), consumer_config(SERVERS, group_id="g")],
    ids=["producer", "consumer", "group consumer"],
)
def test_producers_and_consumers_look_the_leaders_up_every_few_seconds(
    config: dict[str, Any],
) -> None:
    assert config["metadata_max_age_ms"] <= 5_000


def test_a_caller_may_still_ask_for_a_longer_request_timeout() -> None:
    assert consumer_config(SERVERS, request_timeout_ms=20_000)["request_timeout_ms"] == 20_000
    assert admin_config(SERVERS, request_timeout_ms=9_000)["request_timeout_ms"] == 9_000


def test_producers_ask_for_a_transaction_timeout_a_writers_transaction_stays_under() -> None:
    assert producer_config(SERVERS)["transaction_timeout_ms"] == TRANSACTION_TIMEOUT_MS
    # The flushes, then adding the offsets and committing, each at their bound.
    assert FLUSH_SPAN_S + 2 * COMMIT_TIMEOUT_S < TRANSACTION_TIMEOUT_MS / 1000 < 60
    # kafka-python refuses a delivery timeout under linger + request timeout.
    config = producer_config(SERVERS, linger_ms=1000)
    assert config.get("delivery_timeout_ms", 120_000) >= 1000 + config["request_timeout_ms"]


def test_the_shard_writers_producer_keeps_the_common_timeouts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made: list[dict[str, Any]] = []

    class Producer:
        def init_transactions(self) -> None:
            pass

    def new_producer(bootstrap: str, **overrides: Any) -> Producer:
        made.append(producer_config(bootstrap, **overrides))
        return Producer()

    monkeypatch.setattr(writer_module, "new_producer", new_producer)
    PartitionWriter(SERVERS, "dispatch.shard-0")
    (config,) = made
    assert config["transactional_id"] == "dispatch.shard-0"
    assert config["request_timeout_ms"] == REQUEST_TIMEOUT_MS
    assert config["transaction_timeout_ms"] == TRANSACTION_TIMEOUT_MS


@pytest.mark.parametrize(
    ("make", "config"),
    [
        (KafkaConsumer, consumer_config(SERVERS, group_id="g", max_poll_interval_ms=120_000)),
        (KafkaConsumer, consumer_config(SERVERS, group_id=None)),
        (KafkaProducer, producer_config(SERVERS, transactional_id="t", linger_ms=1000)),
        (KafkaAdminClient, admin_config(SERVERS)),
    ],
    ids=["group consumer", "consumer", "transactional producer", "admin"],
)
def test_kafka_python_accepts_the_settings(make: Any, config: dict[str, Any]) -> None:
    """Its own checks (a consumer's request timeout above ``fetch_max_wait_ms``, a producer's
    delivery timeout above linger + request timeout); ``api_version`` given, so nothing
    connects (the admin client bootstraps anyway, so it is only checked for unknown keys)."""
    if make is KafkaAdminClient:
        assert set(config) <= set(KafkaAdminClient.DEFAULT_CONFIG)
        return
    client = make(**config, api_version=(3, 9))
    try:
        assert client.config["request_timeout_ms"] == REQUEST_TIMEOUT_MS
    finally:
        client.close()


def test_a_new_connection_to_a_silent_broker_is_given_up_as_soon_as_a_request() -> None:
    """kafka-python's clients refuse the setting, so it is their connection manager's
    default (set when the client settings are imported); its growth on failures is capped."""
    consumer = KafkaConsumer(**consumer_config(SERVERS, group_id=None), api_version=(3, 9))
    try:
        manager = consumer._client._manager
        assert manager.config["socket_connection_setup_timeout_ms"] == CONNECTION_SETUP_TIMEOUT_MS
        assert manager.config["socket_connection_setup_timeout_max_ms"] == (
            CONNECTION_SETUP_TIMEOUT_MS
        )
        assert CONNECTION_SETUP_TIMEOUT_MS <= REQUEST_TIMEOUT_MS
    finally:
        consumer.close()


def test_a_bootstrap_that_timed_out_is_made_again_until_it_succeeds(
    caplog: pytest.LogCaptureFixture,
) -> None:
    attempts: list[dict[str, Any]] = []

    def make(config: dict[str, Any]) -> str:
        attempts.append(config)
        if len(attempts) < 3:
            raise KafkaTimeoutError("Unable to bootstrap from x")
        return "client"

    with caplog.at_level(logging.INFO):
        assert bootstrapped(make, {"bootstrap_servers": SERVERS}, total_s=60) == "client"
    assert len(attempts) == 3
    assert "bootstrap attempt 2" in caplog.text


def test_another_error_is_not_made_again() -> None:
    attempts: list[int] = []

    def make(config: dict[str, Any]) -> str:
        attempts.append(1)
        raise ValueError("bad config")

    with pytest.raises(ValueError):
        bootstrapped(make, {}, total_s=60)
    assert attempts == [1]


@pytest.fixture
def silent_broker() -> Iterator[str]:
    """A port that accepts connections (the kernel completes the handshake) and never
    answers, as a stalled broker's."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        yield f"127.0.0.1:{server.getsockname()[1]}"


def test_a_consumer_bootstrapping_to_a_silent_broker_gives_up_each_attempt_and_then_all(
    silent_broker: str, caplog: pytest.LogCaptureFixture
) -> None:
    config = consumer_config(silent_broker, bootstrap_timeout_ms=200)
    with caplog.at_level(logging.INFO), pytest.raises(KafkaTimeoutError, match="bootstrap"):
        bootstrapped(lambda c: KafkaConsumer(**c), config, total_s=0.5)
    assert "bootstrap attempt 1" in caplog.text  # it tried again after the first


class Producer:
    def __init__(self) -> None:
        self.flushed: list[float | None] = []

    def begin_transaction(self) -> None:
        pass

    def flush(self, timeout: float | None = None) -> None:
        self.flushed.append(timeout)

    def commit_transaction(self) -> None:
        pass

    def abort_transaction(self) -> None:
        pass


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


def test_a_transactions_flushes_wait_only_until_its_flush_span_has_passed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = Clock()
    monkeypatch.setattr(writer_module, "time", clock)
    producer = Producer()
    writer = PartitionWriter.__new__(PartitionWriter)
    writer._init_state("test.shard-0", timeout_s=30.0)
    writer.commit_timeout_s = 1.0
    writer.producer = producer  # type: ignore[assignment]
    assert writer.flush_wait_s() == 30.0  # no transaction: the write timeout
    writer.begin()
    assert writer.flush([]) == []
    clock.now += FLUSH_SPAN_S - 2
    writer.flush([])
    clock.now += 10
    writer.flush([])
    writer.commit()
    assert producer.flushed == [FLUSH_SPAN_S, 2.0, MIN_FLUSH_S, MIN_FLUSH_S]
    assert writer.flush_wait_s() == 30.0


class Offsets:
    def __init__(self) -> None:
        self.asked: list[int | None] = []

    def end_offsets(self, tps: list[TopicPartition], timeout_ms: int | None = None) -> Any:
        self.asked.append(timeout_ms)
        return dict.fromkeys(tps, 7)

    beginning_offsets = end_offsets

    def offsets_for_times(self, times: Any, timeout_ms: int | None = None) -> Any:
        self.asked.append(timeout_ms)
        return {}

    def seek(self, tp: TopicPartition, offset: int) -> None:
        pass


def test_offsets_asked_without_a_timeout_get_room_for_more_than_one_request() -> None:
    consumer = Offsets()
    end_offsets(consumer, [TP])  # type: ignore[arg-type]
    beginning_offsets(consumer, [TP])  # type: ignore[arg-type]
    end_offsets(consumer, [TP], 1_234)  # type: ignore[arg-type]
    seek_since(consumer, [TP], 0.0)  # type: ignore[arg-type]
    wanted = [OFFSETS_TIMEOUT_MS, OFFSETS_TIMEOUT_MS, 1_234, OFFSETS_TIMEOUT_MS, OFFSETS_TIMEOUT_MS]
    assert consumer.asked == wanted
    assert OFFSETS_TIMEOUT_MS >= 5 * REQUEST_TIMEOUT_MS


class _Made(Exception):
    """Stops a worker's construction once its group consumer's settings are known."""


def test_the_workers_group_consumer_gives_a_request_up_at_its_session_not_before(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made: list[dict[str, Any]] = []

    def new_consumer(bootstrap: str, **overrides: Any) -> None:
        made.append(consumer_config(bootstrap, **overrides))
        raise _Made

    monkeypatch.setattr(worker_module, "new_consumer", new_consumer)
    with pytest.raises(_Made):
        worker_module.KafkaWorker(
            Settings(kafka_bootstrap=SERVERS),
            lambda *a: None,
            lambda: None,  # type: ignore[arg-type,return-value]
        )
    (config,) = made
    assert config["group_id"].endswith(".workers")
    assert (config["session_timeout_ms"], config["heartbeat_interval_ms"]) == (10_000, 1_000)
    # A heartbeat given up closes its connection; the coordinator was seen to count a
    # cut-off member's session from that close (fault 3), so not before the session ends.
    assert config["request_timeout_ms"] == config["session_timeout_ms"] > REQUEST_TIMEOUT_MS
    assert config["metadata_max_age_ms"] <= 5_000
    # kafka-python gives a JoinGroup max(request timeout, max_poll_interval_ms + 5 s).
    assert config["max_poll_interval_ms"] + 5_000 > 60_000
