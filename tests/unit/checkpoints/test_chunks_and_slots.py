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


def test_the_live_list_kept_for_a_recover_lists_what_the_checkpoint_does() -> None:
    """A shard opened from a checkpoint with aggregates keeps the checkpoint without its
    snapshots, its live aggregates listed by id as text (``Restored.live_listed``): read
    back, they are the checkpoint's own live rows; its snapshots come keyed by id as text,
    as the local store keys aggregates (``codec.originator_key``)."""
    from dataclasses import replace

    from dispatch.adapters.kafka.eventstore.codec import originator_key
    from dispatch.checkpoints import _snapshots

    class Source:
        def __init__(self) -> None:
            self.ids = [uuid.uuid4() for _ in range(7)]

        def live_rows(self) -> list[tuple[uuid.UUID, str, float]]:
            return [(i, "rider", 1.7e9 + n) for n, i in enumerate(self.ids)]

        def snapshot(self, aggregate_id: uuid.UUID) -> tuple[int, str, bytes] | None:
            n = self.ids.index(aggregate_id)
            return None if n % 2 else (n + 1, "t", b"\xff" if n == 4 else b"{}")

    source = Source()
    empty = Captured(pending=[], offers=[], assigned=[], drivers={})
    chunks = list(encode_chunks(empty, 5, 1.7e9, 1.7e9, rows=2,
                                aggregates=_snapshots(source, source.live_rows())))  # fmt: skip
    restored = assemble(5, chunks)
    assert restored.aggregates is not None and restored.live
    kept = replace(restored, aggregates=[], live=restored.live_listed())
    assert sorted(kept.live_rows()) == sorted(restored.live_rows()) == sorted(source.live_rows())
    assert list(kept.snapshots()) == []
    snapshots = dict(restored.snapshots())
    assert snapshots == {
        originator_key(i): (n + 1, "t", b"\xff" if n == 4 else b"{}")
        for n, i in enumerate(source.ids)
        if n % 2 == 0
    }
