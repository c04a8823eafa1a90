"""The key store port (``dispatch.privacy.KeyStore``) embedded: ``subject-keys.sqlite``
under the data dir, one row per data subject.

A row holds the subject's key and key id; erasing it clears both and records when, so the
store still answers ``erased``. The key is kept wrapped under a key-encryption key
(``kek``, its id; ``dispatch.privacy.KeyWrap``) when one is configured, else as it is; a
store opened without a KEK it holds keys under is refused with the reason
(``KeyWrapError``), never read as erased. ``PRAGMA secure_delete`` overwrites the cleared
bytes in the file (SQLite would otherwise leave them in a free page), the rollback journal
(not a write-ahead log, which would keep the old page until a checkpoint) is deleted when
each transaction commits, and every commit is synced (``synchronous = FULL``): a key is on
disk before ``create`` returns, and gone from the file before ``erase`` returns.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from uuid import UUID

import orjson

from dispatch.adapters.sqlite.datadir import LogIntegrityError
from dispatch.privacy import (
    KeyStore,
    KeyWrap,
    KeyWrapError,
    NoWrap,
    StoredKey,
    SubjectErased,
    SubjectKey,
    new_subject_key,
)

FILE = "subject-keys.sqlite"
SEALING = "sealing.json"  # when sealing began in this data dir, and under which key store
REWRAP_BATCH = 500  # keys a rewrap's transaction (a serving process waits for one at most)


def key_store_path(data_dir: Path) -> Path:
    return data_dir / FILE


class SqliteKeyStore(KeyStore):
    def __init__(self, path: Path, wrap: KeyWrap | None = None) -> None:
        self.path = path
        self.wrap = wrap if wrap is not None else NoWrap()
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
            "key BLOB, erased_at REAL, kek TEXT)"
        )
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(subject_keys)")}
        if "kek" not in columns:  # a store of before wrapping: its keys are kept as they are
            self._db.execute("ALTER TABLE subject_keys ADD COLUMN kek TEXT")
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
        try:
            self._check_keks()
        except BaseException:
            self._db.close()
            raise

    def _check_keks(self) -> None:
        """Refuse a store holding keys under a KEK this process does not have, or under
        another key than the one configured under that id (one key of each is opened)."""
        wrapping = self.wrapping()
        missing = {k: n for k, n in wrapping.items()
                   if k is not None and k not in self.wrap.known}  # fmt: skip
        if missing:
            held = ", ".join(f"{n:,} under {k!r}" for k, n in sorted(missing.items()))
            raise KeyWrapError(
                f"{self.path} holds subject keys wrapped under key-encryption keys not "
                f"configured here ({held}): set DISPATCH_KEY_ENCRYPTION_KEYS to include them"
            )
        for kek in wrapping:
            if kek is not None:
                subject, kid, blob = self._db.execute(
                    "SELECT subject, kid, key FROM subject_keys WHERE kek = ? AND key IS NOT "
                    "NULL LIMIT 1",
                    (kek,),
                ).fetchone()
                try:
                    self._open(subject, kid, blob, kek)
                except KeyWrapError as error:
                    raise KeyWrapError(f"{self.path}: {error}") from None

    def wrapping(self) -> Counter[str | None]:
        """The live keys by the id of the KEK they are wrapped under (None: not wrapped)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT kek, COUNT(*) FROM subject_keys WHERE key IS NOT NULL GROUP BY kek"
            ).fetchall()
        return Counter({row[0]: int(row[1]) for row in rows})

    def erased_count(self) -> int:
        with self._lock:
            row = self._db.execute(
                "SELECT COUNT(*) FROM subject_keys WHERE erased_at IS NOT NULL"
            ).fetchone()
        return int(row[0])

    def rewrap(self, batch: int = REWRAP_BATCH) -> int:
        """Every live key not under the current KEK wrapped under it, ``batch`` keys a
        synced transaction (a serving process on the same file waits for one batch at most,
        never for the whole store; ``secure_delete`` overwrites the old bytes); how many
        were. Stopped part-way, it leaves every key readable (some under each KEK) and is
        run again to finish."""
        current = self.wrap.current
        if current is None:
            raise KeyWrapError("no key-encryption key is configured to wrap the keys under")
        done = 0
        while True:
            with self._lock:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    rows = self._db.execute(
                        "SELECT subject, kid, key, kek FROM subject_keys "
                        "WHERE key IS NOT NULL AND (kek IS NULL OR kek != ?) LIMIT ?",
                        (current, batch),
                    ).fetchall()
                    for subject, kid, blob, kek in rows:
                        key = SubjectKey(UUID(subject), kid, self._open(subject, kid, blob, kek))
                        kept = self.wrap.wrap(key)
                        self._db.execute(
                            "UPDATE subject_keys SET key = ?, kek = ? WHERE subject = ?",
                            (kept.blob, kept.kek, subject),
                        )
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
            done += len(rows)
            if len(rows) < batch:
                return done

    def _open(self, subject: str, kid: str, blob: bytes, kek: str | None) -> bytes:
        return self.wrap.unwrap(UUID(subject), kid, StoredKey(kek, bytes(blob)))

    def _insert(self, key: SubjectKey) -> None:
        kept = self.wrap.wrap(key)
        self._db.execute(
            "INSERT INTO subject_keys (subject, kid, key, erased_at, kek) "
            "VALUES (?, ?, ?, NULL, ?)",
            (str(key.subject), key.kid, kept.blob, kept.kek),
        )

    def create(self, subject: UUID) -> SubjectKey:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                found = self._row(subject)
                if found is None:
                    made = new_subject_key(subject)
                    self._insert(made)
                    self._db.execute("COMMIT")
                    return made
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        kid, key, _, kek = found
        if kid is None or key is None:
            raise SubjectErased(subject)
        return SubjectKey(subject, kid, self._open(str(subject), kid, key, kek))

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
                        self._insert(made[subject])
                    else:
                        kid, blob, _, kek = found
                        if kid is not None and blob is not None:  # not erased
                            key = self._open(str(subject), kid, blob, kek)
                            made[subject] = SubjectKey(subject, kid, key)
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
        return self._open(str(subject), kid, found[1], found[3])

    def erase(self, subject: UUID) -> bool:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                found = self._row(subject)
                had_key = found is not None and found[1] is not None
                if found is None or had_key:
                    self._db.execute(
                        "INSERT OR REPLACE INTO subject_keys (subject, kid, key, erased_at, "
                        "kek) VALUES (?, NULL, NULL, ?, NULL)",
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

    def _row(
        self, subject: UUID
    ) -> tuple[str | None, bytes | None, float | None, str | None] | None:
        row = self._db.execute(
            "SELECT kid, key, erased_at, kek FROM subject_keys WHERE subject = ?",
            (str(subject),),
        ).fetchone()
        return None if row is None else (row[0], row[1], row[2], row[3])


def read_sealing(data_dir: Path) -> dict[str, object] | None:
    """The data dir's sealing record (``check_sealing``), or None before sealing began."""
    path = data_dir / SEALING
    if not path.exists():
        return None
    found: dict[str, object] = orjson.loads(path.read_bytes())
    return found


def check_sealing(
    data_dir: Path, had_events: bool, now: float, wrap: KeyWrap | None = None
) -> dict[str, object]:
    """Before a serving process seals: once sealing has begun in ``data_dir`` (its record
    ``sealing.json`` names the key store's id), the key store must be there and be that
    one, or ``LogIntegrityError``: a missing or other store would read every sealed field
    as erased, an irreversible mass erasure (restore ``subject-keys.sqlite`` with the
    shard files). The first time, the record is written: when, under which store, and
    whether the log held events already (``clear_before``: data recorded before then was
    not sealed and stays in the clear, docs/PRIVACY.md). A store holding keys wrapped under
    a key-encryption key ``wrap`` does not have is refused here too (``KeyWrapError``)."""
    keys = key_store_path(data_dir)
    found = read_sealing(data_dir)
    if found is not None:
        if not keys.exists():
            raise LogIntegrityError(
                f"{keys} is missing, but sealing began in {data_dir} (its {SEALING}): "
                "without it every sealed field would read as erased; restore it with the "
                "shard files"
            )
        store = SqliteKeyStore(keys, wrap)
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
    store = SqliteKeyStore(keys, wrap)
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
