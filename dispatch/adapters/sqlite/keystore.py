"""The key store port (``dispatch.privacy.KeyStore``) embedded: ``subject-keys.sqlite``
under the data dir, one row per data subject.

A row holds the subject's key and key id; erasing it clears both and records when, so the
store still answers ``erased``. ``PRAGMA secure_delete`` overwrites the cleared bytes in the
file (SQLite would otherwise leave them in a free page), the rollback journal (not a
write-ahead log, which would keep the old page until a checkpoint) is deleted when each
transaction commits, and every commit is synced (``synchronous = FULL``): a key is on disk
before ``create`` returns, and gone from the file before ``erase`` returns.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from uuid import UUID

import orjson

from dispatch.adapters.sqlite.datadir import LogIntegrityError
from dispatch.privacy import KeyStore, SubjectErased, SubjectKey, new_subject_key

FILE = "subject-keys.sqlite"
SEALING = "sealing.json"  # when sealing began in this data dir, and under which key store


def key_store_path(data_dir: Path) -> Path:
    return data_dir / FILE


class SqliteKeyStore(KeyStore):
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        for pragma in (
            "PRAGMA journal_mode = DELETE",
            "PRAGMA secure_delete = ON",
            "PRAGMA synchronous = FULL",
        ):
            self._db.execute(pragma)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS subject_keys (subject TEXT PRIMARY KEY, kid TEXT, "
            "key BLOB, erased_at REAL)"
        )
        # the store's id, made once: the data dir's sealing record names it (check_sealing)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS store_meta (name TEXT PRIMARY KEY, value TEXT)"
        )
        self._db.execute(
            "INSERT OR IGNORE INTO store_meta VALUES ('id', ?)", (secrets.token_hex(16),)
        )
        # erasures whose batch is being saved (dispatch/shard/sealing.py)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS pending_erasures (subject TEXT PRIMARY KEY, since REAL)"
        )

    def create(self, subject: UUID) -> SubjectKey:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                found = self._row(subject)
                if found is None:
                    made = new_subject_key(subject)
                    self._db.execute(
                        "INSERT INTO subject_keys VALUES (?, ?, ?, NULL)",
                        (str(subject), made.kid, made.key),
                    )
                    self._db.execute("COMMIT")
                    return made
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        kid, key, _ = found
        if kid is None or key is None:
            raise SubjectErased(subject)
        return SubjectKey(subject, kid, bytes(key))

    def create_ahead(self, subjects: Iterable[UUID]) -> dict[UUID, SubjectKey]:
        """Every subject's key in one transaction: one synced commit for all those made
        (a batch's new riders and drivers), not one each; the erased left out."""
        made: dict[UUID, SubjectKey] = {}
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for subject in dict.fromkeys(subjects):
                    found = self._row(subject)
                    if found is None:
                        made[subject] = new_subject_key(subject)
                        key = made[subject]
                        self._db.execute(
                            "INSERT INTO subject_keys VALUES (?, ?, ?, NULL)",
                            (str(subject), key.kid, key.key),
                        )
                    elif found[0] is not None and found[1] is not None:  # not erased
                        made[subject] = SubjectKey(subject, found[0], bytes(found[1]))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return made

    def get(self, subject: UUID, kid: str) -> bytes | None:
        with self._lock:
            found = self._row(subject)
        if found is None or found[0] != kid or found[1] is None:
            return None
        return bytes(found[1])

    def erase(self, subject: UUID) -> bool:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                found = self._row(subject)
                had_key = found is not None and found[1] is not None
                if found is None or had_key:
                    self._db.execute(
                        "INSERT OR REPLACE INTO subject_keys VALUES (?, NULL, NULL, ?)",
                        (str(subject), time.time()),
                    )
                self._db.execute("DELETE FROM pending_erasures WHERE subject = ?", (str(subject),))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return had_key

    def erased(self, subject: UUID) -> bool:
        with self._lock:
            found = self._row(subject)
        return found is not None and found[2] is not None

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @property
    def store_id(self) -> str:
        with self._lock:
            row = self._db.execute("SELECT value FROM store_meta WHERE name = 'id'").fetchone()
        return str(row[0])

    def pend_erasures(self, subjects: Iterable[UUID]) -> None:
        rows = [(str(s), time.time()) for s in subjects]
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany("INSERT OR IGNORE INTO pending_erasures VALUES (?, ?)", rows)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def pending_erasures(self) -> list[UUID]:
        with self._lock:
            rows = self._db.execute("SELECT subject FROM pending_erasures").fetchall()
        return [UUID(r[0]) for r in rows]

    def drop_pending(self, subject: UUID) -> None:
        with self._lock:
            self._db.execute("DELETE FROM pending_erasures WHERE subject = ?", (str(subject),))

    def _row(self, subject: UUID) -> tuple[str | None, bytes | None, float | None] | None:
        row = self._db.execute(
            "SELECT kid, key, erased_at FROM subject_keys WHERE subject = ?", (str(subject),)
        ).fetchone()
        return None if row is None else (row[0], row[1], row[2])


def read_sealing(data_dir: Path) -> dict[str, object] | None:
    """The data dir's sealing record (``check_sealing``), or None before sealing began."""
    path = data_dir / SEALING
    if not path.exists():
        return None
    found: dict[str, object] = orjson.loads(path.read_bytes())
    return found


def check_sealing(data_dir: Path, had_events: bool, now: float) -> dict[str, object]:
    """Before a serving process seals: once sealing has begun in ``data_dir`` (its record
    ``sealing.json`` names the key store's id), the key store must be there and be that
    one, or ``LogIntegrityError``: a missing or other store would read every sealed field
    as erased, an irreversible mass erasure (restore ``subject-keys.sqlite`` with the
    shard files). The first time, the record is written: when, under which store, and
    whether the log held events already (``clear_before``: data recorded before then was
    not sealed and stays in the clear, docs/PRIVACY.md)."""
    keys = key_store_path(data_dir)
    found = read_sealing(data_dir)
    if found is not None:
        if not keys.exists():
            raise LogIntegrityError(
                f"{keys} is missing, but sealing began in {data_dir} (its {SEALING}): "
                "without it every sealed field would read as erased; restore it with the "
                "shard files"
            )
        store = SqliteKeyStore(keys)
        try:
            if store.store_id != found.get("key_store_id"):
                raise LogIntegrityError(
                    f"{keys} is another key store than the one sealing began with in "
                    f"{data_dir} ({SEALING} names {found.get('key_store_id')}, it is "
                    f"{store.store_id}): restore the one backed up with the shard files"
                )
        finally:
            store.close()
        return found
    store = SqliteKeyStore(keys)
    try:
        body: dict[str, object] = {
            "key_store_id": store.store_id,
            "began_at": now,
            "clear_before": now if had_events else None,
        }
    finally:
        store.close()
    temporary = data_dir / f".{SEALING}.{os.getpid()}.tmp"
    temporary.write_bytes(orjson.dumps(body, option=orjson.OPT_INDENT_2) + b"\n")
    temporary.replace(data_dir / SEALING)
    return body
