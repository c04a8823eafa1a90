"""DISPATCH_KEY_ENCRYPTION_KEYS / _FILE / _KEY_CURRENT: read at start, refused with the
reason (and never the key itself in the message), passed on whole to child processes."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from dispatch.settings import Settings
from dispatch.settings_env import settings_environment

RAW = os.urandom(32)
KEY = base64.urlsafe_b64encode(RAW).decode()


def refused(**given: object) -> str:
    with pytest.raises(ValidationError) as caught:
        Settings(**given)  # type: ignore[arg-type]
    text = str(caught.value)
    assert not any(part in text for part in (KEY, KEY[:12], KEY[-12:]))  # never shown
    return text


def test_one_key_is_current_and_read_in_any_base64_spelling() -> None:
    for spelling in (KEY, KEY.rstrip("="), base64.b64encode(RAW).decode()):
        keks, current = Settings(
            key_encryption_keys=json.dumps({"k1": spelling})
        ).key_encryption() or ({}, "")
        assert keks == {"k1": RAW} and current == "k1"
    assert Settings().key_encryption() is None
    assert Settings(key_encryption_keys="").key_encryption() is None  # empty: unset


def test_keys_that_cannot_be_used_are_refused_with_the_reason() -> None:
    assert "not JSON" in refused(key_encryption_keys="k1=" + KEY)
    assert "one at least" in refused(key_encryption_keys="{}")
    twice = '{"k1": "' + KEY + '", "k1": "' + KEY + '"}'
    assert "twice" in refused(key_encryption_keys=twice)
    assert "key id" in refused(key_encryption_keys=json.dumps({"a b": KEY}))
    assert "key id" in refused(key_encryption_keys=json.dumps({KEY: "kek-1"}))  # swapped
    short = base64.b64encode(RAW[:16]).decode()
    assert "not 32 random bytes" in refused(key_encryption_keys=json.dumps({"k1": short}))
    assert "not 32 random bytes" in refused(key_encryption_keys=json.dumps({"k1": 7}))


def test_several_keys_need_the_current_named_and_it_must_be_one_of_them() -> None:
    two = json.dumps({"old": KEY, "new": KEY})
    assert "must name" in refused(key_encryption_keys=two)
    assert "names no key" in refused(key_encryption_keys=two, key_encryption_key_current="x")
    assert "not a key id" in refused(key_encryption_keys=two, key_encryption_key_current=KEY)
    keks, current = Settings(
        key_encryption_keys=two, key_encryption_key_current="new"
    ).key_encryption() or ({}, "")
    assert current == "new" and set(keks) == {"old", "new"}
    assert "no key-encryption keys" in refused(key_encryption_key_current="new")


def test_a_file_is_read_at_start_and_not_beside_the_variable(tmp_path: Path) -> None:
    path = tmp_path / "keks.json"
    path.write_text(json.dumps({"k1": KEY}))
    assert (Settings(key_encryption_keys_file=path).key_encryption() or ({}, ""))[1] == "k1"
    assert "not both" in refused(
        key_encryption_keys_file=path, key_encryption_keys=path.read_text()
    )
    assert "No such file" in refused(key_encryption_keys_file=tmp_path / "missing.json")
    (tmp_path / "binary").write_bytes(b"\xff\xfe" + RAW)
    assert "not UTF-8" in refused(key_encryption_keys_file=tmp_path / "binary")


def test_a_child_process_gets_the_same_keys(tmp_path: Path) -> None:
    given = Settings(key_encryption_keys=json.dumps({"k1": KEY}))
    env = settings_environment(given)
    assert json.loads(env["DISPATCH_KEY_ENCRYPTION_KEYS"]) == {"k1": KEY}
    path = tmp_path / "keks.json"
    path.write_text(json.dumps({"k2": KEY}))
    from_file = settings_environment(Settings(key_encryption_keys_file=path))
    assert from_file["DISPATCH_KEY_ENCRYPTION_KEYS_FILE"] == str(path)
    assert "DISPATCH_KEY_ENCRYPTION_KEYS" not in from_file
