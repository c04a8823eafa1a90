"""The ended-rides archive port (``projections.store.RideArchive``) on one SQLite file,
``ended-rides.sqlite`` under the data dir.

Rows are JSON (every field of ``RideRow``, the timeline as it was in the view), keyed by
ride id, written in transactions synced to disk (``synchronous = FULL``) before the views
that no longer hold them are kept. Unlike the views, this file is written in place: it
only grows with rides that ended, and each row is written once (again after a full fold).
Reads (the API's, on its own connection) do not wait for writes (write-ahead log).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path

import orjson

from projections.rides import RideRow
from projections.store import RideArchive

FILE = "ended-rides.sqlite"


def ride_archive_path(data_dir: Path) -> Path:
    return data_dir / FILE


class SqliteRideArchive(RideArchive):
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = sqlite3.connect(path, check_same_thread=False)
        self._writer.execute("PRAGMA journal_mode = WAL")
        self._writer.execute("PRAGMA synchronous = FULL")
        self._writer.execute(
            "CREATE TABLE IF NOT EXISTS ended_rides (ride_id TEXT PRIMARY KEY, row BLOB NOT NULL)"
        )
        self._writer.commit()
        self._reader = sqlite3.connect(path, check_same_thread=False)
        self._write_lock, self._read_lock = threading.Lock(), threading.Lock()

    def put(self, rows: Sequence[RideRow]) -> None:
        encoded = [(row.ride_id, orjson.dumps(row)) for row in rows]
        with self._write_lock, self._writer:
            self._writer.executemany("INSERT OR REPLACE INTO ended_rides VALUES (?, ?)", encoded)

    def get(self, ride_id: str) -> RideRow | None:
        with self._read_lock:
            found = self._reader.execute(
                "SELECT row FROM ended_rides WHERE ride_id = ?", (ride_id,)
            ).fetchone()
        return RideRow(**orjson.loads(found[0])) if found is not None else None

    def clear(self) -> None:
        with self._write_lock, self._writer:
            self._writer.execute("DELETE FROM ended_rides")

    def count(self) -> int:
        with self._read_lock:
            return int(self._reader.execute("SELECT count(*) FROM ended_rides").fetchone()[0])

    def close(self) -> None:
        with self._write_lock, self._read_lock:
            self._writer.close()
            self._reader.close()
