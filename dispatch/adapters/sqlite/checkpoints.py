"""Shard checkpoints in the shard's SQLite file, written in the batch's own transaction.

``CheckpointingRecorder`` is eventsourcing's SQLite application recorder (chosen with its
``APPLICATION_RECORDER_TOPIC`` setting) that also stores a checkpoint chunk passed with a
batch's events (``events.put(..., checkpoint=chunk)``): the chunk and the events commit or
roll back together. When a checkpoint's last chunk is stored, the chunks of every
checkpoint older than the previous complete one are deleted in the same transaction, so
the file keeps two complete checkpoints at most (the newest, and one to fall back on) plus
at most one in progress. It implements ``dispatch.ports.CheckpointStore``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eventsourcing.persistence import StoredEvent
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteCursor

from dispatch.checkpoints import Chunk

TABLE = "shard_checkpoints"
TOPIC = f"{__name__}:CheckpointingRecorder"


class CheckpointingRecorder(SQLiteApplicationRecorder):
    def construct_create_table_statements(self) -> list[str]:
        return [
            *super().construct_create_table_statements(),
            f"CREATE TABLE IF NOT EXISTS {TABLE} ("
            "position INTEGER NOT NULL, seq INTEGER NOT NULL, last INTEGER NOT NULL, "
            "crc INTEGER NOT NULL, data BLOB NOT NULL, PRIMARY KEY (position, seq))",
        ]

    def _insert_events(
        self, c: SQLiteCursor, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        returning = super()._insert_events(c, stored_events, **kwargs)
        chunk: Chunk | None = kwargs.get("checkpoint")
        if chunk is not None:
            c.execute(
                f"INSERT OR REPLACE INTO {TABLE} VALUES (?, ?, ?, ?, ?)",
                (chunk.position, chunk.seq, int(chunk.last), chunk.crc, chunk.data),
            )
            if chunk.last:
                c.execute(
                    f"SELECT MAX(position) FROM {TABLE} WHERE last = 1 AND position < ?",
                    (chunk.position,),
                )
                previous = c.fetchone()[0]
                if previous is not None:
                    c.execute(f"DELETE FROM {TABLE} WHERE position < ?", (previous,))
        return returning

    # -- dispatch.ports.CheckpointStore ---------------------------------------------------
    def checkpoint_positions(self) -> list[int]:
        """The positions of the complete checkpoints, newest first."""
        with self.datastore.transaction(commit=False) as c:
            c.execute(f"SELECT position FROM {TABLE} WHERE last = 1 ORDER BY position DESC")
            return [int(row[0]) for row in c.fetchall()]

    def checkpoint_chunks(self, position: int) -> list[Chunk]:
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                f"SELECT seq, last, crc, data FROM {TABLE} WHERE position = ? ORDER BY seq",
                (position,),
            )
            return [
                Chunk(position, int(seq), bool(last), bytes(data), int(crc))
                for seq, last, crc, data in c.fetchall()
            ]
