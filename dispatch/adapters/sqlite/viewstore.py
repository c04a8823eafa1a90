"""The view-store port (``projections.store.ViewStore``) on one SQLite file, ``views.sqlite``
under the data dir, replaced whole at every save.

A save writes a new file beside the old one (``.views.sqlite.<random>.partial``), syncs it
and renames it over ``views.sqlite``: a crash before the rename leaves the previous file
as it was (and a partial file, removed by a later save once it is an hour old). Each view
is kept with a CRC32 of its bytes, so a damaged view is refused rather than unpickled.
``dispatch replay rebuild`` and a serving process write the same file.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
import time
import zlib
from pathlib import Path

from dispatch.adapters.sqlite.datadir import connect_read_only
from projections.store import StoredViews, ViewStore, ViewStoreError

FILE = "views.sqlite"
STALE_PARTIAL_S = 3600.0
_SCHEMA = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE views (name TEXT PRIMARY KEY, params TEXT NOT NULL, "
    "crc INTEGER NOT NULL, state BLOB NOT NULL)",
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
            conn = connect_read_only(self.path)
            try:
                meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
                rows = conn.execute("SELECT name, params, crc, state FROM views").fetchall()
            finally:
                conn.close()
        except sqlite3.Error as error:
            raise ViewStoreError(f"not a readable view store: {error}") from error
        views, params = {}, {}
        for name, param, crc, state in rows:
            if zlib.crc32(state) != crc:
                raise ViewStoreError(f"view {name} is damaged (checksum)")
            views[name], params[name] = bytes(state), param
        try:
            return StoredViews(str(meta["log"]), views, params, int(meta["format"]))
        except (KeyError, ValueError) as error:
            raise ViewStoreError(f"its meta table lacks {error}") from error

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
            self._switch(partial)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)

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
        meta = {"format": str(stored.format), "log": stored.log, "saved_at": str(time.time())}
        conn.executemany("INSERT INTO meta VALUES (?, ?)", meta.items())
        conn.executemany(
            "INSERT INTO views VALUES (?, ?, ?, ?)",
            [
                (name, stored.params.get(name, ""), zlib.crc32(blob), blob)
                for name, blob in stored.views.items()
            ],
        )
        conn.commit()
    finally:
        conn.close()
    with path.open("rb") as handle:
        os.fsync(handle.fileno())
