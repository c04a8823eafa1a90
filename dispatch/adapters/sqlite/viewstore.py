"""The view-store port (``projections.store.ViewStore``) on one SQLite file, ``views.sqlite``
under the data dir: replaced whole by a save, changed in place by ``keep_changes``.

A save writes a new file beside the old one (``.views.sqlite.<random>.partial``), syncs it
and renames it over ``views.sqlite``: a crash before the rename leaves the previous file
as it was (and a partial file, removed by a later save once it is an hour old). Changes
(``ViewChanges``) are one SQLite transaction on the file (rollback journal, synchronous
FULL: a crash leaves the views before or after, never between; the journal of changes cut
short is rolled back before the file is read, replaced or removed), made only when the
file is still the generation they were made against. Each view and each part is kept with a CRC32
of its bytes, so a damaged one is refused rather than unpickled. ``dispatch replay
rebuild`` and a serving process write the same file.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import tempfile
import time
import zlib
from pathlib import Path

from dispatch.adapters.sqlite.datadir import connect_read_only
from projections.store import StaleViews, StoredViews, ViewChanges, ViewStore, ViewStoreError

FILE = "views.sqlite"
STALE_PARTIAL_S = 3600.0
_SCHEMA = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE views (name TEXT PRIMARY KEY, params TEXT NOT NULL, "
    "crc INTEGER NOT NULL, state BLOB NOT NULL)",
    # apart from the views: changing a row rewrites all of it, a view's whole state too
    "CREATE TABLE rests (view TEXT PRIMARY KEY, crc INTEGER NOT NULL, rest BLOB NOT NULL)",
    "CREATE TABLE parts (view TEXT NOT NULL, key TEXT NOT NULL, crc INTEGER NOT NULL, "
    "part BLOB NOT NULL, UNIQUE (view, key))",
)


def view_store_path(data_dir: Path) -> Path:
    return data_dir / FILE


class SqliteViewStore(ViewStore):
    def __init__(self, path: Path) -> None:
        self.path = path
        self.where = str(path)

    def load(self) -> StoredViews | None:
        if not self.path.exists():
            return None
        try:
            self._recover()
            conn = connect_read_only(self.path)
            try:
                meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
                rows = conn.execute("SELECT name, params, crc, state FROM views").fetchall()
                kept_rests = _rests(conn)
                kept = _parts(conn)
            finally:
                conn.close()
        except sqlite3.Error as error:
            raise ViewStoreError(f"not a readable view store: {error}") from error
        views, params, rests = {}, {}, {}
        for name, param, crc, state in rows:
            if zlib.crc32(state) != crc:
                raise ViewStoreError(f"view {name} is damaged (checksum)")
            views[name], params[name] = bytes(state), param
        for name, crc, rest in kept_rests:
            if zlib.crc32(rest) != crc:
                raise ViewStoreError(f"view {name} is damaged (checksum of its rest)")
            rests[name] = bytes(rest)
        parts: dict[str, list[tuple[str, bytes]]] = {}
        for view, key, crc, part in kept:
            if zlib.crc32(part) != crc:
                raise ViewStoreError(f"view {view} is damaged (checksum of part {key!r})")
            parts.setdefault(view, []).append((key, bytes(part)))
        try:
            return StoredViews(
                str(meta["log"]),
                views,
                params,
                int(meta["format"]),
                rests,
                parts,
                str(meta.get("generation", "")),
            )
        except (KeyError, ValueError) as error:
            raise ViewStoreError(f"its meta table lacks {error}") from error

    def keep_changes(self, changes: ViewChanges) -> None:
        if not self.path.exists():
            raise StaleViews(f"no kept views at {self.where}")
        conn = sqlite3.connect(self.path, isolation_level=None)
        try:
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("BEGIN IMMEDIATE")
            try:
                _apply(conn, changes)
            except BaseException:
                if conn.in_transaction:  # (SQLite may have rolled it back itself)
                    with contextlib.suppress(sqlite3.Error):  # the first error is told
                        conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        except sqlite3.Error as error:
            raise ViewStoreError(f"views could not be changed in {self.where}: {error}") from error
        finally:
            conn.close()

    def save(self, stored: StoredViews) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._remove_stale_partials()
        handle, name = tempfile.mkstemp(
            prefix=f".{self.path.name}.", suffix=".partial", dir=self.path.parent
        )
        os.close(handle)
        partial = Path(name)
        try:
            _write(partial, stored)
            self._recover()  # the journal of changes cut short belongs to the old file
            self._switch(partial)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise

    def discard(self) -> None:
        self._recover()
        self.path.unlink(missing_ok=True)

    def _recover(self) -> None:
        """Roll back changes a crash cut short (their journal, ``views.sqlite-journal``):
        a read-only reader cannot, and a file renamed over the kept one would have the old
        file's pages played into it by the next writer."""
        if not self.path.with_name(self.path.name + "-journal").exists():
            return
        try:
            conn = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=rw", uri=True)
            try:
                conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # rolls back
            finally:
                conn.close()
        except sqlite3.Error as error:
            raise ViewStoreError(f"changes cut short in {self.where}: {error}") from error

    def _switch(self, partial: Path) -> None:
        """Rename the written file over the kept one, and make the rename durable."""
        os.replace(partial, self.path)
        directory = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    def _remove_stale_partials(self) -> None:
        """Partial files a crash left (another writer's fresh one is left alone)."""
        cutoff = time.time() - STALE_PARTIAL_S
        for partial in self.path.parent.glob(f".{self.path.name}.*.partial"):
            try:
                if partial.stat().st_mtime < cutoff:
                    partial.unlink()
            except OSError:
                pass


def _write(path: Path, stored: StoredViews) -> None:
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA journal_mode = OFF")  # a new file: nothing to roll back to
        for statement in _SCHEMA:
            conn.execute(statement)
        meta = {
            "format": str(stored.format),
            "log": stored.log,
            "saved_at": str(time.time()),
            "generation": stored.generation,
        }
        conn.executemany("INSERT INTO meta VALUES (?, ?)", meta.items())
        conn.executemany(
            "INSERT INTO views VALUES (?, ?, ?, ?)",
            [
                (name, stored.params.get(name, ""), zlib.crc32(blob), blob)
                for name, blob in stored.views.items()
            ],
        )
        conn.executemany(
            "INSERT INTO rests VALUES (?, ?, ?)",
            [(name, zlib.crc32(blob), blob) for name, blob in stored.rests.items()],
        )
        conn.executemany(
            "INSERT INTO parts VALUES (?, ?, ?, ?)",
            (
                (view, key, zlib.crc32(blob), blob)
                for view, kept in stored.parts.items()
                for key, blob in kept
            ),
        )
        conn.commit()
    finally:
        conn.close()
    with path.open("rb") as handle:
        os.fsync(handle.fileno())


def _rests(conn: sqlite3.Connection) -> list[tuple[str, int, bytes]]:
    """The rests kept since the views were kept whole (none in a store of before)."""
    if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'rests'").fetchone() is None:
        return []
    return conn.execute("SELECT view, crc, rest FROM rests").fetchall()


def _parts(conn: sqlite3.Connection) -> list[tuple[str, str, int, bytes]]:
    """The parts kept since the views were kept whole, in the order each key was first
    kept (none in a store of before)."""
    if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'parts'").fetchone() is None:
        return []
    return conn.execute("SELECT view, key, crc, part FROM parts ORDER BY rowid").fetchall()


def _apply(conn: sqlite3.Connection, changes: ViewChanges) -> None:
    meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    kept_as = (meta.get("generation") or "", meta.get("format"), meta.get("log"))
    wanted = (changes.base, str(changes.format), changes.log)
    if not changes.base or kept_as != wanted:
        raise StaleViews(f"the kept views are {kept_as}, the changes are made against {wanted}")
    kept = dict(conn.execute("SELECT name, params FROM views").fetchall())
    if kept != {**{n: changes.params.get(n, "") for n in [*changes.views, *changes.rests]}}:
        raise StaleViews(f"the kept views are {kept}, not those changed")
    conn.executemany(
        "UPDATE views SET crc = ?, state = ? WHERE name = ?",
        [(zlib.crc32(blob), blob, name) for name, blob in changes.views.items()],
    )
    conn.executemany(
        "INSERT OR REPLACE INTO rests VALUES (?, ?, ?)",
        [(name, zlib.crc32(blob), blob) for name, blob in changes.rests.items()],
    )
    conn.executemany(
        "INSERT INTO parts VALUES (?, ?, ?, ?) ON CONFLICT (view, key) DO UPDATE "
        "SET crc = excluded.crc, part = excluded.part",
        [
            (view, key, zlib.crc32(blob), blob)
            for view, changed in changes.parts.items()
            for key, blob in changed.items()
        ],
    )
    conn.executemany(
        "INSERT OR REPLACE INTO meta VALUES (?, ?)",
        [("generation", changes.generation), ("saved_at", str(time.time()))],
    )
