"""The log-source port on the embedded log: a shard's committed events as ``LogEvent``s.

It reads the shard SQLite files directly (read-only), which is the fastest path for
replay, and never writes. A shard file that is missing, damaged or not a
shard database is a ``LogIntegrityError`` naming the file, never an empty shard.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from uuid import UUID

from eventsourcing.persistence import StoredEvent

from dispatch.adapters.sqlite.datadir import (
    EVENTS_TABLE,
    LogIntegrityError,
    connect_read_only,
    naming,
    shard_files,
    shard_path,
)
from dispatch.log import LogEvent, LogSource, decode_fields

# Ids come out in their canonical 36-character form (the store keeps 32 hex digits):
# converting in SQLite is much cheaper than in Python, a million times over.
_CANONICAL_ID = (
    "CASE WHEN length(originator_id) = 32 THEN substr(originator_id, 1, 8) || '-' || "
    "substr(originator_id, 9, 4) || '-' || substr(originator_id, 13, 4) || '-' || "
    "substr(originator_id, 17, 4) || '-' || substr(originator_id, 21) ELSE originator_id END"
)
_SELECT = (
    f"SELECT rowid AS id, {_CANONICAL_ID}, originator_version, topic, state "
    f"FROM {EVENTS_TABLE} WHERE rowid > ? ORDER BY rowid LIMIT ?"
)


class SqliteLogSource(LogSource):
    """The ``shard-NNNN.sqlite`` files under a data dir: ``shards`` of them (as its
    manifest says, see ``datadir.open_log``), or, when not given, every shard file found
    there."""

    def __init__(self, data_dir: Path, page: int = 5_000, shards: int | None = None) -> None:
        self.data_dir = data_dir
        self.page = page
        self.shard_count = shards

    def shards(self) -> list[int]:
        if self.shard_count is not None:
            return list(range(self.shard_count))
        return shard_files(self.data_dir)

    def path(self, shard: int) -> Path:
        return shard_path(self.data_dir, shard)

    def read(self, shard: int, after: int = 0) -> Iterator[LogEvent]:
        for page in self.read_pages(shard, after):
            yield from page

    def read_pages(self, shard: int, after: int = 0) -> Iterator[list[LogEvent]]:
        """The shard's events after ``after``, a page (one SQL fetch) at a time."""
        with self._reading(shard) as conn:
            position = after
            while True:
                rows = conn.execute(_SELECT, (position, self.page)).fetchall()
                if rows:
                    yield _decoded(shard, rows, self.path(shard))
                if len(rows) < self.page:
                    return
                position = rows[-1][0]

    def stored_events(self, shard: int, aggregate_id: UUID) -> list[StoredEvent]:
        """One aggregate's stored events in version order (for ``replay history``); none
        for a shard the log does not have."""
        if shard not in self.shards():
            return []
        with self._reading(shard) as conn:
            rows = conn.execute(
                "SELECT originator_id, originator_version, topic, state "
                f"FROM {EVENTS_TABLE} WHERE originator_id = ? ORDER BY originator_version",
                (aggregate_id.hex,),
            ).fetchall()
        return [StoredEvent(UUID(r[0]), r[1], r[2], r[3]) for r in rows]

    def head(self, shard: int) -> int:
        """The shard's last position (0 when empty)."""
        with self._reading(shard) as conn:
            value = conn.execute(f"SELECT max(rowid) FROM {EVENTS_TABLE}").fetchone()[0]
            return int(value or 0)

    def close(self) -> None:
        """Nothing to release: every read opens and closes its own connection."""

    @contextmanager
    def _reading(self, shard: int) -> Iterator[sqlite3.Connection]:
        """A read-only connection to the shard's file; a SQLite error while it is open
        (a damaged page met half-way, say) becomes a ``LogIntegrityError`` naming it."""
        path = self.path(shard)
        if not path.is_file():
            raise LogIntegrityError(f"shard file {path} is missing")
        with naming(path):
            conn = connect_read_only(path)
            try:
                yield conn
            finally:
                conn.close()


def _decoded(shard: int, rows: list[tuple[Any, ...]], path: Path) -> list[LogEvent]:
    try:
        return [decode_fields(shard, *row) for row in rows]
    except (ValueError, KeyError, TypeError, AttributeError):
        for row in rows:  # rare: find the event that cannot be read, for the message
            try:
                decode_fields(shard, *row)
            except (ValueError, KeyError, TypeError, AttributeError) as error:
                raise LogIntegrityError(
                    f"shard file {path}: the event at position {row[0]} cannot be decoded "
                    f"({type(error).__name__}: {error})"
                ) from error
        raise
