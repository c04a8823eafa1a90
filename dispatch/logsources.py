"""Log sources: read a shard's committed events as ``LogEvent``s.

The embedded source reads the shard SQLite files directly (read-only), which is the
fastest path for replay. It never writes.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from uuid import UUID

from eventsourcing.persistence import StoredEvent

from dispatch.log import LogEvent, decode_fields

_SHARD_FILE = re.compile(r"shard-(\d+)\.sqlite$")
# Ids come out in their canonical 36-character form (the store keeps 32 hex digits):
# converting in SQLite is much cheaper than in Python, a million times over.
_CANONICAL_ID = (
    "CASE WHEN length(originator_id) = 32 THEN substr(originator_id, 1, 8) || '-' || "
    "substr(originator_id, 9, 4) || '-' || substr(originator_id, 13, 4) || '-' || "
    "substr(originator_id, 17, 4) || '-' || substr(originator_id, 21) ELSE originator_id END"
)
_SELECT = (
    f"SELECT rowid AS id, {_CANONICAL_ID}, originator_version, topic, state "
    "FROM stored_events WHERE rowid > ? ORDER BY rowid LIMIT ?"
)


class SqliteLogSource:
    """Every ``shard-NNNN.sqlite`` file under a data dir."""

    def __init__(self, data_dir: Path, page: int = 5_000) -> None:
        self.data_dir = data_dir
        self.page = page

    def shards(self) -> list[int]:
        found = (_SHARD_FILE.search(p.name) for p in self.data_dir.glob("shard-*.sqlite"))
        return sorted(int(m.group(1)) for m in found if m)

    def path(self, shard: int) -> Path:
        return self.data_dir / f"shard-{shard:04d}.sqlite"

    def read(self, shard: int, after: int = 0) -> Iterator[LogEvent]:
        for page in self.read_pages(shard, after):
            yield from page

    def read_pages(self, shard: int, after: int = 0) -> Iterator[list[LogEvent]]:
        """The shard's events after ``after``, a page (one SQL fetch) at a time."""
        path = self.path(shard)
        if not path.exists():
            return
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
        try:
            if not _has_events_table(conn):
                return
            position = after
            while True:
                rows = conn.execute(_SELECT, (position, self.page)).fetchall()
                if rows:
                    yield [decode_fields(shard, *row) for row in rows]
                if len(rows) < self.page:
                    return
                position = rows[-1][0]
        finally:
            conn.close()

    def stored_events(self, shard: int, aggregate_id: UUID) -> list[StoredEvent]:
        """One aggregate's stored events in version order (for ``replay history``)."""
        path = self.path(shard)
        if not path.exists():
            return []
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            if not _has_events_table(conn):
                return []
            rows = conn.execute(
                "SELECT originator_id, originator_version, topic, state FROM stored_events "
                "WHERE originator_id = ? ORDER BY originator_version",
                (aggregate_id.hex,),
            ).fetchall()
        finally:
            conn.close()
        return [StoredEvent(UUID(r[0]), r[1], r[2], r[3]) for r in rows]

    def head(self, shard: int) -> int:
        """The shard's last position (0 when empty)."""
        path = self.path(shard)
        if not path.exists():
            return 0
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            if not _has_events_table(conn):
                return 0
            value = conn.execute("SELECT max(rowid) FROM stored_events").fetchone()[0]
            return int(value or 0)
        finally:
            conn.close()


def _has_events_table(conn: sqlite3.Connection) -> bool:
    row = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type='table' AND name='stored_events'"
    ).fetchone()
    return row is not None
