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
