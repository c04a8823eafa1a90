"""Checkpoint chunks stay under a Kafka record's size, and the Kafka checkpoints topic's
keys stay bounded while the two newest complete checkpoints are never overwritten."""

from __future__ import annotations

import uuid
from typing import Any

from dispatch.adapters.kafka.checkpoints import SLOTS, CheckpointRecords, pointer_key
from dispatch.checkpoints import CHUNK_BYTES, Chunk, assemble, encode_chunks
from dispatch.matching.state import Captured
from dispatch.matching.strategies import PendingRide


def rides(n: int, excluded: int = 3) -> list[PendingRide]:
    return [
        PendingRide(uuid.uuid4(), 37.7 + i * 1e-6, -122.4, 1.7e9, 1.7e9 + 300,
                    {uuid.uuid4() for _ in range(excluded)})
        for i in range(n)
    ]  # fmt: skip


def test_every_chunk_stays_under_the_byte_limit_with_the_default_rows() -> None:
    state = Captured(pending=rides(10_000), offers=[], assigned=rides(2_000), drivers={})
    chunks = list(encode_chunks(state, 99, 1.7e9, 1.7e9, rows=10_000))
    assert len(chunks) > 2 and all(len(c.data) <= CHUNK_BYTES for c in chunks)
    restored = assemble(99, chunks)
    assert len(restored.pending) == 10_000 and len(restored.assigned) == 2_000


def test_a_row_larger_than_the_limit_is_a_chunk_of_its_own() -> None:
    big = rides(1, excluded=20_000)
    state = Captured(pending=rides(3) + big + rides(3), offers=[], assigned=[], drivers={})
    chunks = list(encode_chunks(state, 7, 0.0, 0.0, rows=10_000))
    assert [len(assemble_part(c)) for c in chunks] == [3, 1, 3]


def assemble_part(chunk: Chunk) -> list[Any]:
    import orjson

    return [row for rows in orjson.loads(chunk.data)["parts"].values() for row in rows]


class Producer:
    def __init__(self) -> None:
        self.log: dict[bytes, Any] = {}  # a compacted topic: the latest value of each key

    def send(self, topic: str, key: bytes, value: Any, partition: int, **_: Any) -> None:
        if value is None:
            self.log.pop(key, None)
        else:
            self.log[key] = value


def write(records: CheckpointRecords, producer: Producer, position: int, chunks: int) -> None:
    for seq in range(chunks):
        chunk = Chunk(position, seq, seq == chunks - 1, b"{}", 0)
        records.send(producer, chunk)
        records.committed(chunk)


def test_the_topic_keys_stay_bounded_and_the_two_newest_checkpoints_are_kept() -> None:
    records, producer = CheckpointRecords("t", 0), Producer()
    for i in range(1, 30):
        write(records, producer, i * 100, chunks=1 + (i * 7) % 5)
        newest = sorted(p for p, _ in records.complete.values())[-2:]
        assert newest == [p for p in (i * 100 - 100, i * 100) if p > 0]
    assert len(producer.log) <= SLOTS * (1 + 5)
    pointers = {k: v for k, v in producer.log.items() if k.startswith(b"pointer:")}
    assert len(pointers) == SLOTS and pointer_key(0) in pointers


def test_a_checkpoint_cut_short_reuses_its_slot_and_leaves_the_complete_ones() -> None:
    records, producer = CheckpointRecords("t", 0), Producer()
    write(records, producer, 100, chunks=2)
    write(records, producer, 200, chunks=2)
    write(records, producer, 300, chunks=2)
    cut = Chunk(400, 0, False, b"{}", 0)  # slot of checkpoint 100; then a crash
    records.send(producer, cut)
    records.committed(cut)
    assert sorted(p for p, _ in records.complete.values()) == [200, 300]
    write(records, producer, 500, chunks=1)  # a later one takes the same slot
    assert sorted(p for p, _ in records.complete.values()) == [200, 300, 500]
    assert len(producer.log) <= SLOTS * 2 + SLOTS
