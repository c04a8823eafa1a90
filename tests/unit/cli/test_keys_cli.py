"""``dispatch keys generate|status|rewrap`` (docs/PRIVACY.md, "Wrapped keys"): a generated
key-encryption key is usable as it is printed; status counts the keys by how they are kept
and refuses a store under a KEK not configured; rewrap wraps every key under the current
one, after which the older may go; meaningless uses are refused with the reason."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from dispatch.adapters.crypto.keywrap import AesGcmKeyWrap
from dispatch.adapters.sqlite.keystore import SqliteKeyStore, key_store_path
from dispatch.domain.ids import new_id
from dispatch.privacy import SubjectKey
from dispatch.settings import Settings


def run(*args: str, keks: str | None = None, current: str | None = None) -> Any:
    env = {"DISPATCH_KEY_ENCRYPTION_KEYS": keks or "", "DISPATCH_KAFKA_BOOTSTRAP": ""}
    if current is not None:
        env["DISPATCH_KEY_ENCRYPTION_KEY_CURRENT"] = current
    from dispatch.cli import app

    return CliRunner().invoke(app, ["keys", *args], env=env)


def generated(kek_id: str) -> str:
    result = run("generate", "--id", kek_id)
    assert result.exit_code == 0, result.output
    return result.output.strip()


def store_with_plain_keys(data: Path, count: int) -> list[SubjectKey]:
    store = SqliteKeyStore(key_store_path(data))
    try:
        return [store.create(new_id(i % 2)) for i in range(count)]
    finally:
        store.close()


def status(data: Path, keks: str | None = None, current: str | None = None) -> dict[str, Any]:
    result = run("status", "--data-dir", str(data), "--json", keks=keks, current=current)
    assert result.exit_code == 0, result.output
    found: dict[str, Any] = json.loads(result.output)
    return found


def test_a_generated_key_is_one_the_settings_take_and_fresh_each_time() -> None:
    one, two = generated("kek-2026"), generated("kek-2026")
    assert one != two and list(json.loads(one)) == ["kek-2026"]
    keks, current = Settings(key_encryption_keys=one).key_encryption() or ({}, "")
    assert current == "kek-2026" and len(keks["kek-2026"]) == 32


def test_status_counts_keys_by_how_they_are_kept_and_rewrap_wraps_them_all(
    tmp_path: Path,
) -> None:
    made = store_with_plain_keys(tmp_path, 3)
    a = generated("a")
    assert status(tmp_path)["not_wrapped"] == 3
    result = run("rewrap", "--data-dir", str(tmp_path), keks=a)
    assert result.exit_code == 0, result.output
    assert "3 key(s) wrapped under a" in result.output
    after = status(tmp_path, keks=a)
    assert after["wrapped"] == {"a": 3} and after["not_wrapped"] == 0
    assert after["configured"] == ["a"] and after["current"] == "a"
    kept = key_store_path(tmp_path).read_bytes()
    assert not any(key.key in kept for key in made)  # secure_delete: old bytes overwritten
    keks, _ = Settings(key_encryption_keys=a).key_encryption() or ({}, "")
    store = SqliteKeyStore(key_store_path(tmp_path), AesGcmKeyWrap(keks, "a"))
    try:
        assert [store.get(k.subject, k.kid) for k in made] == [k.key for k in made]
    finally:
        store.close()


def test_rotating_rewraps_under_the_new_kek_after_which_the_old_may_go(tmp_path: Path) -> None:
    store_with_plain_keys(tmp_path, 2)
    a, b = generated("a"), generated("b")
    assert run("rewrap", "--data-dir", str(tmp_path), keks=a).exit_code == 0
    both = json.dumps(json.loads(a) | json.loads(b))
    result = run("rewrap", "--data-dir", str(tmp_path), keks=both, current="b")
    assert result.exit_code == 0, result.output
    assert status(tmp_path, keks=b)["wrapped"] == {"b": 2}  # a no longer needed


def test_status_refuses_a_store_under_a_kek_not_configured_naming_it(tmp_path: Path) -> None:
    store_with_plain_keys(tmp_path, 1)
    a = generated("a")
    assert run("rewrap", "--data-dir", str(tmp_path), keks=a).exit_code == 0
    missing = run("status", "--data-dir", str(tmp_path))
    assert missing.exit_code == 2 and "'a'" in missing.output
    other = run("status", "--data-dir", str(tmp_path), keks=generated("a"))
    assert other.exit_code == 2 and "does not authenticate" in other.output
    rows = sqlite3.connect(key_store_path(tmp_path)).execute("SELECT kek FROM subject_keys")
    assert [r[0] for r in rows] == ["a"]  # refused, nothing changed


def test_meaningless_uses_are_refused_with_the_reason(tmp_path: Path) -> None:
    bad_id = run("generate", "--id", "no spaces please")
    assert bad_id.exit_code == 2 and "--id" in bad_id.output
    nothing_to_wrap_under = run("rewrap", "--data-dir", str(tmp_path))
    assert nothing_to_wrap_under.exit_code == 2
    assert "DISPATCH_KEY_ENCRYPTION_KEYS" in nothing_to_wrap_under.output
    no_store = run("rewrap", "--data-dir", str(tmp_path / "empty"), keks=generated("a"))
    assert no_store.exit_code == 2 and "no subject keys" in no_store.output
    from dispatch.cli import app

    on_kafka = CliRunner().invoke(app, ["keys", "rewrap"],
                                  env={"DISPATCH_KAFKA_BOOTSTRAP": "127.0.0.1:1"})  # fmt: skip
    assert on_kafka.exit_code == 2 and "embedded data dir only" in on_kafka.output
    assert status(tmp_path / "none-yet")["not_wrapped"] == 0
