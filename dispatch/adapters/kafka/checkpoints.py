"""Shard checkpoints on Kafka: chunks in a compacted topic, found through pointer records.

Partition ``n`` of ``<prefix>.checkpoints`` belongs to shard ``n``. The batch owner
(``batch.KafkaBatch``) sends the batch's checkpoint chunk in the batch's transaction.
Checkpoints take turns in ``SLOTS`` slots: a chunk is a record keyed ``<slot>:<seq>``, its
value the chunk's bytes, its checkpoint position, sequence number, last flag and CRC32 in
headers. With a checkpoint's last chunk go, in the same transaction, the slot's *pointer*
(key ``pointer:<slot>``, value ``{"position": P, "chunks": n}``) and tombstones for the
slot's chunks past ``n`` left by an earlier, longer checkpoint. A new checkpoint takes an
empty slot or the one holding the oldest complete checkpoint, so the two newest complete
ones are never touched, and the topic's keys are bounded: compaction keeps at most the
latest value of each slot's chunks and pointer, whatever the history. The topic's
segments roll every ten minutes so the cleaner can compact them.

A restore reads the partition's tail in growing windows, back from its end, until a window
holds the newest pointer and every chunk it counts (a few records: after the pointer come
at most the chunks of the checkpoint in progress), never the whole partition unless the
newest checkpoint is damaged and an older one is asked for.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from kafka import KafkaConsumer

from dispatch.adapters.kafka.eventstore.connection import Connection
from dispatch.adapters.kafka.follower import Follower, partitions_of
from dispatch.checkpoints import Chunk

log = logging.getLogger(__name__)

SLOTS = 3
POINTER = b"pointer:"


def chunk_key(slot: int, seq: int) -> bytes:
    return b"%d:%d" % (slot, seq)


def pointer_key(slot: int) -> bytes:
    return POINTER + b"%d" % slot


class CheckpointRecords:
    """Sends a shard's checkpoint chunks into the batch transaction (see the module)."""

    def __init__(self, topic: str, shard: int) -> None:
        self.topic, self.shard = topic, shard
        self.complete: dict[int, tuple[int, int]] = {}  # slot -> (position, chunks)
        self.highest: dict[int, int] = {}  # slot -> chunks ever written there (known)
        self._writing: tuple[int, int] | None = None  # (slot, position) in progress

    def restored(self, complete: dict[int, tuple[int, int]], highest: dict[int, int]) -> None:
        """What the restore found: complete checkpoints by slot, chunks seen by slot."""
        self.complete, self.highest = dict(complete), dict(highest)
        self._writing = None

    def send(self, producer: Any, chunk: Chunk) -> None:
        slot = self._slot_for(chunk)
        headers = [
            ("position", b"%d" % chunk.position),
            ("seq", b"%d" % chunk.seq),
            ("last", b"1" if chunk.last else b"0"),
            ("crc", b"%d" % chunk.crc),
        ]
        producer.send(self.topic, key=chunk_key(slot, chunk.seq), value=chunk.data,
                      headers=headers, partition=self.shard)  # fmt: skip
        if not chunk.last:
            return
        count = chunk.seq + 1
        pointer = orjson.dumps({"position": chunk.position, "chunks": count})
        producer.send(self.topic, key=pointer_key(slot), value=pointer, partition=self.shard)
        for seq in range(count, self.highest.get(slot, 0)):  # an earlier, longer one's
            producer.send(self.topic, key=chunk_key(slot, seq), value=None, partition=self.shard)

    def committed(self, chunk: Chunk | None) -> None:
        """The batch that carried ``chunk`` is durable."""
        if chunk is None or self._writing is None:
            return
        slot = self._writing[0]
        self.highest[slot] = max(self.highest.get(slot, 0), chunk.seq + 1)
        if chunk.last:
            self.complete[slot] = (chunk.position, chunk.seq + 1)
            self.highest[slot] = chunk.seq + 1
            self._writing = None

    def _slot_for(self, chunk: Chunk) -> int:
        if self._writing is not None and self._writing[1] == chunk.position:
            return self._writing[0]
        free = [s for s in range(SLOTS) if s not in self.complete]
        oldest = min(self.complete, key=lambda s: self.complete[s][0], default=0)
        slot = free[0] if free else oldest  # an empty slot, or the oldest checkpoint's
        self.complete.pop(slot, None)  # about to be overwritten
        self._writing = (slot, chunk.position)
        return slot


class KafkaCheckpointStore:
    """``dispatch.ports.CheckpointStore`` over one partition of the checkpoints topic."""

    def __init__(
        self, bootstrap: Connection, topic: str, shard: int, first_window: int = 1024
    ) -> None:
        self.bootstrap, self.topic, self.shard = bootstrap, topic, shard
        self.first_window = first_window
        self._pointers: dict[int, tuple[int, int]] = {}  # slot -> (position, chunks)
        self._chunks: dict[int, dict[int, Chunk]] = {}  # slot -> seq -> chunk
        self._whole = False  # the whole partition has been read
        # A consumer lent while a shard opens (its reads share one consumer), else None:
        # each read then makes its own.
        self.consumer: KafkaConsumer | None = None

    def require_topic(self) -> None:
        """Raise, saying what to do, when the shard's partition of the topic is missing."""
        if self.consumer is not None:
            partitions = sorted(self.consumer.partitions_for_topic(self.topic) or [])
        else:
            partitions = partitions_of(self.bootstrap, self.topic)
        if self.shard not in partitions:
            raise RuntimeError(
                f"topic {self.topic} has no partition {self.shard}: create the topics "
                "with `dispatch topics create` (existing ones are kept)"
            )

    def checkpoint_positions(self) -> list[int]:
        """Read afresh at every call (a restore starts with it): the partition's tail."""
        window = self.first_window
        while True:
            self._read_window(window)
            newest = self._newest_slot()
            if (newest is not None and self._has_all(newest)) or self._whole:
                break
            window *= 4
        return [p for p, _ in sorted(self._pointers.values(), reverse=True)]

    def checkpoint_chunks(self, position: int) -> list[Chunk]:
        slot = next((s for s, (p, _) in self._pointers.items() if p == position), None)
        if slot is None:
            return []
        if not self._has_all(slot) and not self._whole:
            self._read_window(None)  # an older checkpoint: read the whole partition
        return [
            chunk
            for chunk in sorted(self._chunks.get(slot, {}).values(), key=lambda c: c.seq)
            if chunk.position == position
        ]

    def found(self) -> tuple[dict[int, tuple[int, int]], dict[int, int]]:
        """The checkpoints by slot that have a pointer, and the chunks seen by slot (for
        ``CheckpointRecords.restored``)."""
        # Every slot with a pointer counts: a pointer is written with its last chunk, so a
        # slot whose chunks lie before the window read is still not one to overwrite first.
        complete = dict(self._pointers)
        seen = {s: max(chunks, default=-1) + 1 for s, chunks in self._chunks.items()}
        return complete, seen

    def unfinished(self) -> set[int]:
        """Positions of checkpoints with chunks in the partition but no complete pointer
        (one being written, or one cut short): never used by a restore. Reads the whole
        partition (a tail window may cut a complete checkpoint from its pointer)."""
        self._read_window(None)
        complete = {p for s, (p, _) in self._pointers.items() if self._has_all(s)}
        return {c.position for chunks in self._chunks.values() for c in chunks.values()} - complete

    # -- reading ----------------------------------------------------------------------------
    def _newest_slot(self) -> int | None:
        if not self._pointers:
            return None
        return max(self._pointers, key=lambda s: self._pointers[s][0])

    def _has_all(self, slot: int) -> bool:
        position, count = self._pointers.get(slot, (-1, -1))
        chunks = self._chunks.get(slot, {})
        return all(seq in chunks and chunks[seq].position == position for seq in range(count))

    def _read_window(self, window: int | None) -> None:
        """Read the last ``window`` offsets of the partition (None: all of it)."""
        follower = Follower(
            self.bootstrap, self.topic, [self.shard], name=f"shard {self.shard} checkpoints",
            consumer=self.consumer,
        )  # fmt: skip
        try:
            end = follower.end_offset(self.shard)
            first = follower.beginning_offset(self.shard)
            begin = first if window is None else max(first, end - window)
            follower.seek(self.shard, begin)
            pointers: dict[int, tuple[int, int]] = {}
            chunks: dict[int, dict[int, Chunk]] = {}
            for records in follower.read_to_end():
                for record in records:
                    _take(record, pointers, chunks)
            self._pointers, self._chunks = pointers, chunks
            self._whole = begin == first
        finally:
            follower.close()


def _take(
    record: Any, pointers: dict[int, tuple[int, int]], chunks: dict[int, dict[int, Chunk]]
) -> None:
    """Fold one record of the topic (in log order: a later value of a key wins)."""
    key = record.key or b""
    try:
        if key.startswith(POINTER):
            slot = int(key[len(POINTER) :])
            if record.value is None:
                pointers.pop(slot, None)
            else:
                doc = orjson.loads(record.value)
                pointers[slot] = (int(doc["position"]), int(doc["chunks"]))
            return
        slot_text, _, seq_text = key.partition(b":")
        slot, seq = int(slot_text), int(seq_text)
        if record.value is None:  # a tombstone
            chunks.get(slot, {}).pop(seq, None)
            return
        headers = dict(record.headers or [])
        chunk = Chunk(
            int(headers["position"]), seq, headers["last"] == b"1", bytes(record.value),
            int(headers["crc"]),
        )  # fmt: skip
    except (ValueError, KeyError, TypeError, orjson.JSONDecodeError) as e:
        log.warning("checkpoints: unreadable record at offset %s: %r", record.offset, e)
        return
    chunks.setdefault(slot, {})[seq] = chunk
