"""The read-audit port (``dispatch.read_audit.ReadAudit``) on one SQLite file,
``operator-reads.sqlite`` under the data dir of the serving process.

Each record is a JSON row appended in its own transaction, synced to disk
(``synchronous = FULL``) before ``record`` returns. Several threads of one process record
at once (one connection, a lock); a reader in another process (``dispatch replay audit
--reads``) opens the file read-only and does not wait for the writer (write-ahead log).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import orjson

from dispatch.adapters.sqlite.datadir import connect_read_only
from dispatch.read_audit import ReadAuditUnavailable, ReadRecord

FILE = "operator-reads.sqlite"
_TABLE = "CREATE TABLE IF NOT EXISTS operator_reads (seq INTEGER PRIMARY KEY, record BLOB NOT NULL)"
_SELECT = "SELECT seq, record FROM operator_reads ORDER BY seq"


def read_audit_path(data_dir: Path) -> Path:
    return data_dir / FILE


class SqliteReadAudit:
    """Appends records to ``path`` (made if missing) and reads them back. The file is
    opened at the first use and again after ``close`` (an app's lifespan may run twice)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        with self._lock:
            self._open()

    def _open(self) -> sqlite3.Connection:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, check_same_thread=False)
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = FULL")
            db.execute(_TABLE)
            db.commit()
            self._db = db
        return self._db

    def record(self, entry: ReadRecord) -> None:
        body = orjson.dumps(entry.as_json())
        try:
            with self._lock:
                db = self._open()
                with db:
                    db.execute("INSERT INTO operator_reads (record) VALUES (?)", (body,))
        except (sqlite3.Error, OSError) as error:
            raise ReadAuditUnavailable(f"the read audit file {self.path}: {error}") from error

    def read(self) -> Iterator[ReadRecord]:
        with self._lock:
            rows = self._open().execute(_SELECT).fetchall()
        return _decoded(rows, self.path)

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None


def read_records(path: Path) -> Iterator[ReadRecord]:
    """Every record of the file at ``path``, opened read-only (nothing is made): none when
    there is no file (no operator read was recorded there). A file that is not such a store
    is a ``ValueError`` naming it."""
    if not path.exists():
        return iter(())
    try:
        db = connect_read_only(path)
        try:
            rows = db.execute(_SELECT).fetchall()
        finally:
            db.close()
    except sqlite3.Error as error:
        raise ValueError(f"{path} is not a read audit file: {error}") from error
    return _decoded(rows, path)


def _decoded(rows: list[tuple[int, bytes]], path: Path) -> Iterator[ReadRecord]:
    """The records of ``rows``; a damaged one is a ``ValueError`` naming it (a trail with a
    damaged record is not read past, so a reader never takes it for whole)."""
    for seq, body in rows:
        try:
            yield ReadRecord.from_json(orjson.loads(body))
        except (orjson.JSONDecodeError, ValueError) as error:
            raise ValueError(f"{path}: record {seq} is damaged: {error}") from None
