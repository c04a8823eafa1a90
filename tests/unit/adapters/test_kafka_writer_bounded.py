"""A transaction call that never returns loses the shard's producer instead of holding the
shard for ever (``eventstore.writer``: kafka-python's commit waits with no time limit, and
was seen to wait for ever when the transaction coordinator's broker was killed)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from dispatch.adapters.kafka.eventstore.errors import ProducerLostError
from dispatch.adapters.kafka.eventstore.writer import PartitionWriter


class StuckProducer:
    """Begins transactions; its commit (or offsets, or abort) never returns until released."""

    def __init__(self, stuck: set[str]) -> None:
        self.stuck, self.release = stuck, threading.Event()
        self.calls: list[str] = []
        self.closed_with: float | None = None

    def _call(self, name: str) -> None:
        self.calls.append(name)
        if name in self.stuck:
            self.release.wait()

    def begin_transaction(self) -> None:
        self._call("begin")

    def flush(self, timeout: float | None = None) -> None:
        self._call("flush")

    def commit_transaction(self) -> None:
        self._call("commit")

    def abort_transaction(self) -> None:
        self._call("abort")

    def send_offsets_to_transaction(self, offsets: Any, group_metadata: Any) -> None:
        self._call("offsets")

    def close(self, timeout: float | None = None) -> None:
        self.closed_with = timeout  # as kafka-python's: the stuck call stays stuck


class Sender:
    def __init__(self) -> None:
        self.forced = False

    def force_close(self) -> None:
        self.forced = True


class UnflushableProducer(StuckProducer):
    """Its close raises as kafka-python's does when records are still pending, before it
    stops its sender."""

    def __init__(self, stuck: set[str]) -> None:
        super().__init__(stuck)
        self._sender = Sender()

    def close(self, timeout: float | None = None) -> None:
        from kafka.errors import KafkaTimeoutError

        self.closed_with = timeout
        raise KafkaTimeoutError("Timeout after waiting for 0 secs.")


_MADE: list[StuckProducer] = []


@pytest.fixture(autouse=True)
def _release_stuck_threads() -> Iterator[None]:
    """The calls left blocked are let go after each test (a real one stays blocked)."""
    yield
    while _MADE:
        _MADE.pop().release.set()


def writer_with(producer: StuckProducer, commit_timeout_s: float = 0.3) -> PartitionWriter:
    _MADE.append(producer)
    writer = PartitionWriter.__new__(PartitionWriter)
    writer._init_state("test.shard-0", timeout_s=5.0)
    writer.commit_timeout_s = commit_timeout_s
    writer.producer = producer  # type: ignore[assignment]
    return writer


def test_a_commit_that_never_returns_loses_the_producer_within_the_bound() -> None:
    producer = StuckProducer({"commit"})
    writer = writer_with(producer)
    started = time.monotonic()
    lost = pytest.raises(ProducerLostError, match="could not commit its transaction")
    with lost, writer.transaction():
        pass
    assert time.monotonic() - started < 3.0  # the bound, not for ever
    assert "abort" not in producer.calls  # a lost producer is not called again
    with pytest.raises(ProducerLostError):
        writer.begin()
    writer.close()
    assert producer.closed_with == 0  # closed without waiting for what it has pending


def test_consumed_offsets_that_never_get_added_lose_the_producer() -> None:
    producer = StuckProducer({"offsets"})
    writer = writer_with(producer)
    lost = pytest.raises(ProducerLostError, match="add the consumed offsets")
    with lost, writer.transaction():
        writer.send_offsets({}, "group")
    assert "commit" not in producer.calls


def test_an_abort_that_never_returns_loses_the_producer() -> None:
    producer = StuckProducer({"abort"})
    writer = writer_with(producer)
    with pytest.raises(ProducerLostError, match="could not abort"), writer.transaction():
        raise RuntimeError("the batch failed")


def test_a_commit_that_returns_in_time_commits() -> None:
    producer = StuckProducer(set())
    writer = writer_with(producer)
    with writer.transaction():
        writer.send_offsets({}, "group")
    assert producer.calls == ["begin", "offsets", "flush", "commit"]
    with writer.transaction():
        pass
    assert producer.calls.count("commit") == 2


def test_a_producer_that_cannot_close_cleanly_still_lets_the_shard_go_and_its_sender_stops() -> (
    None
):
    producer = UnflushableProducer({"commit"})
    writer = writer_with(producer)
    with pytest.raises(ProducerLostError), writer.transaction():
        pass
    writer.close()  # does not raise: the shard's release completes
    assert writer.closed
    assert producer._sender.forced
