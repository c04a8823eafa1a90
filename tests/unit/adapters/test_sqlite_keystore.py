"""The embedded key store's file: an erased key's bytes are gone from it, not left in a
free page (``secure_delete``), and no other file beside it keeps them."""

from __future__ import annotations

from pathlib import Path

from dispatch.adapters.sqlite.keystore import SqliteKeyStore
from dispatch.domain.ids import new_id


def _files(folder: Path) -> bytes:
    return b"".join(path.read_bytes() for path in sorted(folder.iterdir()) if path.is_file())


def test_an_erased_key_leaves_no_bytes_in_the_files(tmp_path: Path) -> None:
    keys = SqliteKeyStore(tmp_path / "subject-keys.sqlite")
    made = [keys.create(new_id(0)) for _ in range(50)]
    assert all(key.key in _files(tmp_path) for key in made[:3])
    gone = made[:25]
    for key in gone:
        keys.erase(key.subject)
    on_disk = _files(tmp_path)
    assert not any(key.key in on_disk for key in gone)
    assert all(key.key in on_disk for key in made[25:])
    keys.close()
    assert not any(key.key in _files(tmp_path) for key in gone)


def test_a_rewrap_commits_in_batches_so_no_other_connection_waits_for_all_of_it(
    tmp_path: Path,
) -> None:
    """``rewrap`` wraps ``batch`` keys a transaction: a serving process's store on the same
    file is never locked out for the whole rewrap (its default busy timeout is 5 s)."""
    import os
    import sqlite3

    from dispatch.adapters.crypto.keywrap import AesGcmKeyWrap

    path = tmp_path / "subject-keys.sqlite"
    plain = SqliteKeyStore(path)
    made = [plain.create(new_id(0)) for _ in range(7)]
    plain.close()
    commits: list[str] = []
    store = SqliteKeyStore(path, AesGcmKeyWrap({"a": os.urandom(32)}, "a"))
    store._db.set_trace_callback(lambda sql: commits.append(sql) if sql == "COMMIT" else None)
    try:
        assert store.rewrap(batch=3) == 7
        assert len(commits) == 3  # 3 + 3 + 1 keys
        assert [store.get(m.subject, m.kid) for m in made] == [m.key for m in made]
    finally:
        store.close()
    rows = sqlite3.connect(path).execute("SELECT DISTINCT kek FROM subject_keys").fetchall()
    assert rows == [("a",)]


def test_a_store_of_before_wrapping_is_taken_up_its_keys_read_and_its_erasures_kept(
    tmp_path: Path,
) -> None:
    """A ``subject-keys.sqlite`` written before key-encryption keys (no ``kek`` column):
    its keys read as they are, its erased subjects stay erased, and it can be rewrapped."""
    import os
    import secrets
    import sqlite3

    from dispatch.adapters.crypto.keywrap import AesGcmKeyWrap

    path = tmp_path / "subject-keys.sqlite"
    old = sqlite3.connect(path)
    old.execute("CREATE TABLE subject_keys (subject TEXT PRIMARY KEY, kid TEXT, key BLOB, "
                "erased_at REAL)")  # fmt: skip
    kept, gone = new_id(0), new_id(0)
    kid, key = secrets.token_hex(8), os.urandom(32)
    old.execute("INSERT INTO subject_keys VALUES (?, ?, ?, NULL)", (str(kept), kid, key))
    old.execute("INSERT INTO subject_keys VALUES (?, NULL, NULL, 1.0)", (str(gone),))
    old.commit()
    old.close()
    store = SqliteKeyStore(path, AesGcmKeyWrap({"a": os.urandom(32)}, "a"))
    try:
        assert store.get(kept, kid) == key and store.erased(gone) and not store.erased(kept)
        assert store.wrapping() == {None: 1} and store.erased_count() == 1
        assert store.rewrap() == 1 and store.wrapping() == {"a": 1}
        assert store.get(kept, kid) == key and store.erased(gone)
    finally:
        store.close()
