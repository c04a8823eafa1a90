"""Shard checkpoints on Kafka: chunks in a compacted topic, found through a pointer record.

Partition ``n`` of ``<prefix>.checkpoints`` belongs to shard ``n``. The batch owner
(``batch.KafkaBatch``) sends the batch's checkpoint chunk in the batch's transaction: a
record keyed ``<position>:<seq>``, its value the chunk's bytes, its sequence number, last
flag and CRC32 in headers. With a checkpoint's last chunk go, in the same transaction, the
*pointer* (key ``pointer:<position>``, value ``{"position": P, "chunks": n}``) and
tombstones for the chunks and pointers of the checkpoints before the previous complete
one, so compaction keeps two complete checkpoints and their pointers. The topic's segments
roll every ten minutes, so the cleaner can compact them.

A restore reads the partition's tail in growing windows, back from its end, until a window
holds the newest pointer and every chunk it counts (a few records: after the pointer come
at most the chunks of the checkpoint in progress), never the whole partition unless the
newest checkpoints are damaged and an older one is asked for.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson

from dispatch.adapters.kafka.follower import Follower
from dispatch.checkpoints import Chunk

log = logging.getLogger(__name__)

POINTER = b"pointer:"


def chunk_key(position: int, seq: int) -> bytes:
    return f"{position}:{seq}".encode()


def pointer_key(position: int) -> bytes:
    return POINTER + str(position).encode()


class CheckpointRecords:
    """Sends a shard's checkpoint chunks into the batch transaction (see the module)."""

    def __init__(self, topic: str, shard: int) -> None:
        self.topic, self.shard = topic, shard
        self.complete: list[tuple[int, int]] = []  # (position, chunks), oldest first

    def restored(self, complete: list[tuple[int, int]]) -> None:
        """The complete checkpoints found at restore, oldest first."""
        self.complete = list(complete)

    def send(self, producer: Any, chunk: Chunk) -> None:
        headers = [
            ("seq", str(chunk.seq).encode()),
            ("last", b"1" if chunk.last else b"0"),
            ("crc", str(chunk.crc).encode()),
        ]
        key = chunk_key(chunk.position, chunk.seq)
        producer.send(self.topic, key=key, value=chunk.data, headers=headers,
                      partition=self.shard)  # fmt: skip
        if not chunk.last:
            return
        pointer = orjson.dumps({"position": chunk.position, "chunks": chunk.seq + 1})
        producer.send(self.topic, key=pointer_key(chunk.position), value=pointer,
                      partition=self.shard)  # fmt: skip
        for position, chunks in self.complete[:-1]:  # keep the previous complete one
            keys = [pointer_key(position), *(chunk_key(position, q) for q in range(chunks))]
            for key in keys:
                producer.send(self.topic, key=key, value=None, partition=self.shard)

    def committed(self, chunk: Chunk | None) -> None:
        """The batch that carried ``chunk`` is durable."""
        if chunk is not None and chunk.last:
            self.complete = [*self.complete[-1:], (chunk.position, chunk.seq + 1)]


class KafkaCheckpointStore:
    """``dispatch.ports.CheckpointStore`` over one partition of the checkpoints topic."""

    def __init__(self, bootstrap: str, topic: str, shard: int, first_window: int = 256) -> None:
        self.bootstrap, self.topic, self.shard = bootstrap, topic, shard
        self.first_window = first_window
        self._pointers: list[tuple[int, int]] = []  # (position, chunks), newest first
        self._chunks: dict[int, dict[int, Chunk]] = {}
        self._whole = False  # the whole partition has been read
        self._read = False

    def checkpoint_positions(self) -> list[int]:
        """Read afresh at every call (a restore starts with it): the partition's tail."""
        self._read_tail()
        return [position for position, _ in self._pointers]

    def checkpoint_chunks(self, position: int) -> list[Chunk]:
        if not self._read:
            self._read_tail()
        if not self._has_all(position) and not self._whole:
            self._read_window(None)  # an older checkpoint: read the whole partition
        return sorted(self._chunks.get(position, {}).values(), key=lambda c: c.seq)

    def complete(self) -> list[tuple[int, int]]:
        """The complete checkpoints found, oldest first (for ``CheckpointRecords``)."""
        return list(reversed(self._pointers[:2]))

    # -- reading ----------------------------------------------------------------------------
    def _read_tail(self) -> None:
        self._read = True
        window = self.first_window
        while True:
            self._read_window(window)
            if (self._pointers and self._has_all(self._pointers[0][0])) or self._whole:
                return
            window *= 4

    def _has_all(self, position: int) -> bool:
        counts = dict(self._pointers)
        return position in counts and len(self._chunks.get(position, {})) == counts[position]

    def _read_window(self, window: int | None) -> None:
        """Read the last ``window`` offsets of the partition (None: all of it)."""
        follower = Follower(self.bootstrap, self.topic, [self.shard],
                            name=f"shard {self.shard} checkpoints")  # fmt: skip
        try:
            end = follower.end_offset(self.shard)
            first = follower.beginning_offset(self.shard)
            begin = first if window is None else max(first, end - window)
            follower.seek(self.shard, begin)
            pointers: list[tuple[int, int]] = []
            chunks: dict[int, dict[int, Chunk]] = {}
            for records in follower.read_to_end():
                for record in records:
                    _take(record, pointers, chunks)
            self._pointers = _newest_first(pointers)
            self._chunks = chunks
            self._whole = begin == first
        finally:
            follower.close()


def _take(
    record: Any, pointers: list[tuple[int, int]], chunks: dict[int, dict[int, Chunk]]
) -> None:
    key = record.key or b""
    if key.startswith(POINTER):
        if record.value is None:  # a tombstone: its chunks are going too
            return
        try:
            doc = orjson.loads(record.value)
            pointers.append((int(doc["position"]), int(doc["chunks"])))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as e:
            log.warning("checkpoints: unreadable pointer at offset %s: %r", record.offset, e)
        return
    try:
        position_text, _, seq_text = key.decode().partition(":")
        position, seq = int(position_text), int(seq_text)
    except (UnicodeDecodeError, ValueError):
        log.warning("checkpoints: record with an unknown key at offset %s", record.offset)
        return
    if record.value is None:  # a tombstone
        chunks.get(position, {}).pop(seq, None)
        return
    headers = {name: value for name, value in (record.headers or [])}
    try:
        last, crc = headers["last"] == b"1", int(headers["crc"])
    except (KeyError, ValueError):
        log.warning("checkpoints: chunk %s:%s without its headers", position, seq)
        return
    chunks.setdefault(position, {})[seq] = Chunk(position, seq, last, bytes(record.value), crc)


def _newest_first(pointers: list[tuple[int, int]]) -> list[tuple[int, int]]:
    seen: dict[int, int] = {}
    for position, count in pointers:  # in log order: a later pointer wins
        seen[position] = count
    return sorted(seen.items(), reverse=True)
