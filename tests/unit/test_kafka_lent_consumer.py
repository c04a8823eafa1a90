"""A shard's restore reads the checkpoint, the log's tail and the pings with one consumer,
lent to each reader in turn: a reader given a consumer uses it and leaves it open (the
lender closes it), and a reader given none makes and closes its own."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from kafka import TopicPartition

from dispatch.adapters.kafka.eventstore import restore
from dispatch.adapters.kafka.eventstore.restore import lend_consumer, read_partition
from dispatch.adapters.kafka.follower import Follower

TOPIC = "dispatch.events"


class Consumer:
    """Enough of a KafkaConsumer for one partition holding ``records`` values."""

    def __init__(self, records: int = 3) -> None:
        self.values = [b"v%d" % i for i in range(records)]
        self.assigned: list[TopicPartition] = []
        self.at = 0
        self.closed = False

    def partitions_for_topic(self, topic: str) -> set[int]:
        return {0}

    def assign(self, tps: list[TopicPartition]) -> None:
        self.assigned, self.at = list(tps), 0

    def end_offsets(self, tps: list[TopicPartition], timeout_ms: int | None = None) -> Any:
        return dict.fromkeys(tps, len(self.values))

    def seek_to_beginning(self, tp: TopicPartition) -> None:
        self.at = 0

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.at = offset

    def position(self, tp: TopicPartition, timeout_ms: int | None = None) -> int:
        return self.at

    def poll(self, timeout_ms: int = 0, max_records: int | None = None) -> Any:
        tp = self.assigned[0]
        batch = [
            SimpleNamespace(offset=i, key=None, value=v, headers=[])
            for i, v in enumerate(self.values)
            if i >= self.at
        ]
        self.at = len(self.values)
        return {tp: batch} if batch else {}

    def close(self) -> None:
        self.closed = True


def test_a_follower_reads_with_a_lent_consumer_and_leaves_it_open() -> None:
    lent = Consumer()
    follower = Follower("unused:9092", TOPIC, [0], consumer=lent)  # type: ignore[arg-type]
    assert lent.assigned == [TopicPartition(TOPIC, 0)]
    assert follower.end_offset(0) == 3
    with pytest.raises(ValueError, match="lent consumer"):
        follower.start(lambda partition, records: None)
    follower.close()
    assert not lent.closed


def test_a_lent_consumer_takes_no_settings() -> None:
    with pytest.raises(ValueError, match="no consumer settings"):
        Follower("unused:9092", TOPIC, [0], consumer=Consumer(), fetch_max_wait_ms=10)  # type: ignore[arg-type]


def test_the_restore_reads_with_the_consumer_lent_to_it(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[Consumer] = []

    def new_consumer(bootstrap: str, **overrides: Any) -> Consumer:
        made.append(Consumer())
        return made[-1]

    monkeypatch.setattr(restore, "new_consumer", new_consumer)
    lent, seen = Consumer(records=2), list[bytes | None]()

    def sink(offset: int, key: Any, value: bytes | None, headers: Any) -> None:
        seen.append(value)

    with lend_consumer(lent):  # type: ignore[arg-type]
        assert read_partition("unused:9092", TOPIC, 0, sink) == 2
    assert seen == [b"v0", b"v1"] and not lent.closed and not made
    # Outside the block: a consumer of its own, closed when done.
    assert read_partition("unused:9092", TOPIC, 0, sink) == 3
    assert len(made) == 1 and made[0].closed


def _opening(monkeypatch: pytest.MonkeyPatch, restore_: Any) -> list[Consumer]:
    """``open_shard`` with a fake consumer and ``restore_`` in place of the restore."""
    from dispatch.adapters.kafka import shard_host

    made: list[Consumer] = []

    def new_consumer(bootstrap: str, **overrides: Any) -> Consumer:
        made.append(Consumer())
        return made[-1]

    monkeypatch.setattr(shard_host, "new_consumer", new_consumer)
    monkeypatch.setattr(shard_host, "_restore", restore_)
    return made


def _open() -> Any:
    from dispatch.adapters.kafka.shard_host import open_shard
    from dispatch.settings import Settings

    settings = Settings(kafka_bootstrap="unused:9092")
    return open_shard(settings, 0, None, None, None, "wall")  # type: ignore[arg-type]


@pytest.mark.parametrize("fails", [False, True])
def test_a_shard_opens_with_one_consumer_lent_to_its_restores_and_closed_once(
    monkeypatch: pytest.MonkeyPatch, fails: bool
) -> None:
    seen: list[Any] = []

    def restore_(*args: Any) -> str:
        reader = args[6]
        seen.append((reader, restore._LENT.get()))
        if fails:
            raise ConnectionError("the broker went away")
        return "host"

    made = _opening(monkeypatch, restore_)
    if fails:
        with pytest.raises(ConnectionError):
            _open()
    else:
        assert _open() == "host"
    assert len(made) == 1 and seen == [(made[0], made[0])] and made[0].closed
    assert restore._LENT.get() is None  # a later restore makes its own


@pytest.mark.parametrize("fails", [False, True])
def test_the_collector_pauses_while_a_shard_opens(
    monkeypatch: pytest.MonkeyPatch, fails: bool
) -> None:
    import gc

    during: list[bool] = []

    def restore_(*args: Any) -> str:
        during.append(gc.isenabled())
        if fails:
            raise ConnectionError("the broker went away")
        return "host"

    _opening(monkeypatch, restore_)
    was = gc.isenabled()
    try:
        for enabled in (True, False):  # left as it was found, open or not
            (gc.enable if enabled else gc.disable)()
            if fails:
                with pytest.raises(ConnectionError):
                    _open()
            else:
                _open()
            assert gc.isenabled() is enabled
    finally:
        (gc.enable if was else gc.disable)()
    assert during == [False, False]


def test_a_kafka_worker_loads_the_compiled_scan_before_it_joins_the_group(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``build_kafka_worker`` makes a first matcher (its index loads numba's compiled scan)
    before the worker exists, so the first takeover does not wait for it."""
    import dispatch.adapters.kafka.keystore as keystore
    import dispatch.adapters.kafka.worker as kafka_worker
    from dispatch import bootstrap
    from dispatch.matching import index
    from dispatch.settings import Settings

    prepared: list[str] = []
    monkeypatch.setattr(index, "prepare", lambda: prepared.append("scan"))
    # (the worker's key store reads the subject-keys topic when it is built: not here)
    monkeypatch.setattr(keystore, "KafkaKeyStore", lambda *a, **k: prepared.append("keys"))
    monkeypatch.setattr(kafka_worker, "KafkaWorker",
                        lambda *a, **k: prepared.append("worker"))  # fmt: skip
    bootstrap.build_kafka_worker(Settings(kafka_bootstrap="127.0.0.1:9"))
    assert "scan" in prepared and prepared.index("scan") < prepared.index("worker")
