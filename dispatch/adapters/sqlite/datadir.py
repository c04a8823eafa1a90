"""The embedded log's data dir: its manifest, ``log.json``, and the checks that make a
missing or damaged shard file an error instead of an empty shard.

The composition root writes ``log.json`` when it creates the embedded log::

    {"format": "dispatch.embedded-log", "version": 1, "shards": 4}

From then on the log is exactly the files ``shard-0000.sqlite`` .. ``shard-{shards-1}``,
each a SQLite database holding the ``stored_events`` table (which may have no rows yet).
Readers (``replay``) and the serving process check that before they trust the folder;
every failure is a ``LogIntegrityError`` whose message names the file.

A data dir written before the manifest existed ("legacy": shard files, no ``log.json``)
is adopted by ``dispatch serve`` (its configured shard count, after checking every shard
file) and by ``dispatch replay adopt --shards N``; ``replay`` refuses it until then.
"""

from __future__ import annotations

import os
import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import orjson
from eventsourcing.persistence import PersistenceError

MANIFEST = "log.json"
FORMAT = "dispatch.embedded-log"
VERSION = 1
MAX_SHARDS = 4096
EVENTS_TABLE = "stored_events"
_SQLITE_HEADER = b"SQLite format 3\x00"
_SHARD_FILE = re.compile(r"^shard-(\d+)\.sqlite$")


class LogIntegrityError(Exception):
    """The embedded log is missing, incomplete or damaged. The message names the file."""


@dataclass(frozen=True)
class Manifest:
    shards: int
    version: int = VERSION

    def to_json(self) -> bytes:
        body = {"format": FORMAT, "version": self.version, "shards": self.shards}
        return orjson.dumps(body, option=orjson.OPT_INDENT_2) + b"\n"


def manifest_path(data_dir: Path) -> Path:
    return data_dir / MANIFEST


def shard_path(data_dir: Path, shard: int) -> Path:
    return data_dir / f"shard-{shard:04d}.sqlite"


def shard_files(data_dir: Path) -> list[int]:
    """The shards whose file is in ``data_dir`` (whatever the manifest says)."""
    found = (_SHARD_FILE.match(p.name) for p in data_dir.glob("shard-*.sqlite"))
    return sorted(int(m.group(1)) for m in found if m)


def connect_read_only(path: Path) -> sqlite3.Connection:
    """A read-only connection (never creates the file; any path, URI characters too)."""
    return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False)


@contextmanager
def naming(path: Path) -> Iterator[None]:
    """A SQLite error met while using the shard file ``path`` (raw, or as the eventsourcing
    library's) becomes a ``LogIntegrityError`` that names the file."""
    try:
        yield
    except (sqlite3.Error, PersistenceError) as error:
        raise LogIntegrityError(f"shard file {path}: {error}") from error


def check_directory(data_dir: Path) -> None:
    if not data_dir.exists():
        raise LogIntegrityError(f"no event log at {data_dir}: the folder does not exist")
    if not data_dir.is_dir():
        raise LogIntegrityError(f"no event log at {data_dir}: it is not a folder")


def read_manifest(data_dir: Path) -> Manifest:
    """The data dir's manifest, or a ``LogIntegrityError`` saying why there is none."""
    check_directory(data_dir)
    path = manifest_path(data_dir)
    try:
        raw = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        found = shard_files(data_dir)
        if not found:
            raise LogIntegrityError(
                f"{path} is missing: {data_dir} holds no embedded event log"
            ) from None
        last = shard_path(data_dir, found[-1]).name
        raise LogIntegrityError(
            f"{path} is missing: {data_dir} holds shard files (up to {last}) written before "
            f"the manifest existed; if they are the whole log, adopt it with `dispatch "
            f"replay adopt --shards {found[-1] + 1} --data-dir {data_dir}`"
        ) from None
    except OSError as error:
        raise LogIntegrityError(f"{path} cannot be read: {error.strerror}") from None
    except orjson.JSONDecodeError as error:
        raise LogIntegrityError(f"{path} is damaged: not JSON ({error})") from None
    return _parse(raw, path)


def _parse(raw: object, path: Path) -> Manifest:
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise LogIntegrityError(f"{path} is damaged: not a {FORMAT} manifest")
    version, shards = raw.get("version"), raw.get("shards")
    if type(version) is not int or version < 1:
        raise LogIntegrityError(f"{path} is damaged: bad version {version!r}")
    if version > VERSION:
        raise LogIntegrityError(
            f"{path} has format version {version}; this program reads version {VERSION}"
        )
    if type(shards) is not int or not 1 <= shards <= MAX_SHARDS:
        raise LogIntegrityError(f"{path} is damaged: bad shard count {shards!r}")
    return Manifest(shards, version)


def write_manifest(data_dir: Path, shards: int) -> Manifest:
    """Write ``log.json`` atomically: a temporary file in the folder, then a rename."""
    manifest = Manifest(shards)
    target = manifest_path(data_dir)
    temporary = data_dir / f".{MANIFEST}.{os.getpid()}.tmp"
    try:
        with temporary.open("wb") as handle:
            handle.write(manifest.to_json())
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return manifest


def check_shard_file(path: Path) -> None:
    """``path`` is a SQLite database with the events table (it may have no rows)."""
    if not path.exists():
        raise LogIntegrityError(f"shard file {path} is missing")
    if not path.is_file():
        raise LogIntegrityError(f"shard file {path} is not a file")
    try:
        with path.open("rb") as handle:
            header = handle.read(len(_SQLITE_HEADER))
    except OSError as error:
        raise LogIntegrityError(f"shard file {path} cannot be read: {error.strerror}") from None
    if not header:
        raise LogIntegrityError(f"shard file {path} is empty (0 bytes)")
    if header != _SQLITE_HEADER:
        raise LogIntegrityError(f"shard file {path} is not a SQLite database")
    try:
        conn = connect_read_only(path)
        try:
            row = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (EVENTS_TABLE,)
            ).fetchone()
        finally:
            conn.close()
    except sqlite3.Error as error:
        raise LogIntegrityError(f"shard file {path} cannot be read: {error}") from None
    if row is None:
        raise LogIntegrityError(f"shard file {path} has no {EVENTS_TABLE} table")


def check_shards(data_dir: Path, shards: int, source: str) -> None:
    """Every one of ``shards`` files is there and sound, and no other shard file is.
    ``source`` says where the count comes from (for the messages)."""
    extra = [s for s in shard_files(data_dir) if s >= shards]
    if extra:
        raise LogIntegrityError(
            f"{shard_path(data_dir, extra[-1])} is beyond the log's {shards} shard(s) ({source})"
        )
    for shard in range(shards):
        path = shard_path(data_dir, shard)
        if not path.exists():
            raise LogIntegrityError(
                f"shard file {path} is missing (the log has {shards} shard(s): {source})"
            )
        check_shard_file(path)


def open_log(data_dir: Path) -> Manifest:
    """For readers: the manifest of a sound log, else ``LogIntegrityError``."""
    manifest = read_manifest(data_dir)
    check_shards(data_dir, manifest.shards, f"{manifest_path(data_dir)}")
    return manifest


def prepare_embedded(data_dir: Path, shards: int) -> bool:
    """For the writer, before it opens the shard files: check the data dir against the
    configured shard count. True if the manifest is to be written once the shard files
    exist (a new log, or a legacy one adopted: every shard file must already be there)."""
    if data_dir.exists() and not data_dir.is_dir():
        raise LogIntegrityError(f"data dir {data_dir} is not a folder")
    if not data_dir.exists():
        return True
    if not manifest_path(data_dir).exists():
        if shard_files(data_dir):
            check_shards(data_dir, shards, f"DISPATCH_SHARDS={shards}, no {MANIFEST}")
        return True
    manifest = read_manifest(data_dir)
    if manifest.shards != shards:
        raise LogIntegrityError(
            f"data dir {data_dir} holds {manifest.shards} shards ({manifest_path(data_dir)}), "
            f"DISPATCH_SHARDS={shards}"
        )
    check_shards(data_dir, shards, f"{manifest_path(data_dir)}")
    return False


def adopt(data_dir: Path, shards: int) -> Manifest:
    """Write the manifest of a legacy data dir that holds exactly ``shards`` sound files."""
    check_directory(data_dir)
    if manifest_path(data_dir).exists():
        manifest = read_manifest(data_dir)
        if manifest.shards != shards:
            raise LogIntegrityError(
                f"{manifest_path(data_dir)} already says {manifest.shards} shards, not {shards}"
            )
        check_shards(data_dir, shards, f"{manifest_path(data_dir)}")
        return manifest
    if not shard_files(data_dir):
        raise LogIntegrityError(f"{data_dir} holds no shard files to adopt")
    check_shards(data_dir, shards, f"--shards {shards}")
    return write_manifest(data_dir, shards)
