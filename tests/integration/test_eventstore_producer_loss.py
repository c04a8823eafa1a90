"""When the shard writer counts its producer lost, from kafka-python's public behaviour only,
and how a shard batch reacts. No broker: a scripted producer stands in for kafka-python's
(the real broker's fencing is in ``test_eventstore_kafka.py`` and the workers' tests).

kafka-python refuses every transactional call once its producer has a fatal error (after a
zombie's epoch bump is refused, for one), with a bare ``KafkaError``; the writer must then
never call the producer again, and the batch must end as fenced so the host releases the
shard instead of refolding it and retrying with the same producer.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.persistence import StoredEvent
from kafka.errors import KafkaError, ProducerFencedError

from dispatch.adapters.kafka.batch import KafkaBatch
from dispatch.adapters.kafka.eventstore import (
    FencedError,
    KafkaApplicationRecorder,
    PartitionWriter,
    ProducerLostError,
)
from dispatch.adapters.kafka.eventstore import writer as writer_module
from dispatch.adapters.kafka.eventstore.store import EventTable
from dispatch.adapters.kafka.shard_host import ShardHost
from dispatch.adapters.kafka.topics import Topics
from dispatch.shard.inbound import Inbound
from dispatch.shard.worker import Batch


def refused() -> KafkaError:
    """What kafka-python raises for a transactional call once the producer is in error."""
    return KafkaError(
        "Cannot execute transactional method because we are in an error state: "
        "[Error 90] ProducerFencedError"
    )


@dataclass
class Sent:
    offset: int
    error: BaseException | None = None

    def get(self, timeout: float | None = None) -> Sent:
        if self.error is not None:
            raise self.error
        return self


class ScriptedProducer:
    """Records every call; a call named in ``fail`` raises the error given for it (``get``
    is the send future's)."""

    def __init__(self, **fail: BaseException) -> None:
        self.fail = fail
        self.calls: list[str] = []
        self.offset = 0

    def _call(self, name: str) -> None:
        self.calls.append(name)
        if name in self.fail:
            raise self.fail[name]

    def init_transactions(self) -> None:
        self._call("init_transactions")

    def begin_transaction(self) -> None:
        self._call("begin_transaction")

    def send(self, topic: str, **record: Any) -> Sent:
        self._call("send")
        self.offset += 2
        return Sent(self.offset, self.fail.get("get"))

    def flush(self, timeout: float | None = None) -> None:
        self._call("flush")

    def commit_transaction(self) -> None:
        self._call("commit_transaction")

    def abort_transaction(self) -> None:
        self._call("abort_transaction")

    def close(self, timeout: float | None = None) -> None:
        self._call("close")


def writer_on(producer: ScriptedProducer, monkeypatch: pytest.MonkeyPatch) -> PartitionWriter:
    monkeypatch.setattr(writer_module, "new_producer", lambda *args, **config: producer)
    return PartitionWriter("scripted:9092", "test.shard-0", timeout_s=1.0)


def recorder_on(writer: PartitionWriter) -> KafkaApplicationRecorder:
    return KafkaApplicationRecorder(writer, 0, "test.events", EventTable(monotonic=True))


def event(originator_id: UUID) -> StoredEvent:
    return StoredEvent(originator_id, 1, "test.Event", b"{}")


def test_a_producer_that_cannot_abort_is_lost_and_never_called_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    producer = ScriptedProducer(commit_transaction=refused(), abort_transaction=refused())
    writer = writer_on(producer, monkeypatch)
    recorder = recorder_on(writer)
    agg = uuid4()

    with pytest.raises(ProducerLostError) as lost:
        recorder.insert_events([event(agg)])

    assert not isinstance(lost.value, FencedError)  # nothing said "fenced"
    assert "could not abort its transaction" in str(lost.value)
    assert recorder.select_events(agg) == []  # the local store dropped the insert
    assert producer.calls[-2:] == ["commit_transaction", "abort_transaction"]
    calls = list(producer.calls)
    with pytest.raises(ProducerLostError):
        recorder.insert_events([event(uuid4())])
    with pytest.raises(ProducerLostError):
        writer.begin()
    writer.close()
    assert producer.calls == [*calls, "close"]  # only closed, never called again


def test_a_producer_that_cannot_begin_a_transaction_is_lost(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    producer = ScriptedProducer(begin_transaction=refused())
    writer = writer_on(producer, monkeypatch)

    for _ in range(2):
        with pytest.raises(ProducerLostError, match="could not begin a transaction"):
            writer.begin()

    assert producer.calls == ["init_transactions", "begin_transaction"]


def test_a_fencing_error_makes_the_loss_a_fenced_error_that_stays(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The send is refused as fenced, then the abort fails too: the loss is reported as the
    # fencing it is, not as the failed abort, and stays so.
    producer = ScriptedProducer(get=ProducerFencedError(), abort_transaction=refused())
    recorder = recorder_on(writer_on(producer, monkeypatch))

    with pytest.raises(FencedError) as first:
        recorder.insert_events([event(uuid4())])
    with pytest.raises(FencedError) as second:
        recorder.insert_events([event(uuid4())])

    assert second.value is first.value
    assert producer.calls.count("abort_transaction") == 1


class StubShardWorker:
    """Decides nothing; fails with ``error`` when given one; counts recoveries."""

    def __init__(self, error: BaseException | None) -> None:
        self.error = error
        self.recovered = 0
        self.committed_batches = 0

    def process(self, inbound: Inbound) -> Batch:
        if self.error is not None:
            raise self.error
        return Batch(0, 0, [], [], [])

    def next_batch(self) -> int:
        return 1

    def recover(self) -> None:
        self.recovered += 1

    def committed(self, batch: Batch) -> None:
        self.committed_batches += 1


@pytest.mark.parametrize("failing", ["the commit", "the batch"])
def test_a_batch_whose_producer_cannot_abort_ends_fenced_without_refolding_the_shard(
    failing: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    fails: dict[str, BaseException] = {"abort_transaction": refused()}
    error: BaseException | None = None
    if failing == "the commit":
        fails["commit_transaction"] = refused()
    else:  # what the batch's own producer.send raises once the producer is in error
        error = KafkaError("Cannot perform send because at least one previous request failed")
    producer = ScriptedProducer(**fails)
    worker: Any = StubShardWorker(error)
    app: Any = SimpleNamespace(sealer=None)  # a log in the clear: nothing to seal or forget
    unused: Any = None  # the batch does not use the consumer here
    host = ShardHost(0, app, writer_on(producer, monkeypatch), worker, None)

    ended = KafkaBatch(host, Topics("test"), unused).run(Inbound(), {})

    assert ended.state == "fenced"  # the worker releases the shard (worker._process)
    assert worker.recovered == 0 and worker.committed_batches == 0
    assert producer.calls[-1] == "abort_transaction"
