"""Subject keys wrapped under a key-encryption key (docs/PRIVACY.md, "Wrapped keys"), as a
deployment uses them: a rider's sealed pickup opens through the API; the key store holds
no key as it is; a restart without the key-encryption key (or with another under its id)
is refused at start with the reason, never served as erased; with it, everything opens."""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from dispatch.adapters.sqlite.keystore import key_store_path
from dispatch.api import AuthSettings, create_app
from dispatch.api.context import ApiOptions
from dispatch.bootstrap import build_runtime
from dispatch.privacy import KeyWrapError
from dispatch.settings import Settings

SECRET = "vR8kQ2mZ7xN4pL9sT3wY6bC1dF5gH0jK"  # random: production refuses weak ones
PICKUP = {"lat": 37.7749, "lng": -122.4194}
DROPOFF = {"lat": 37.7849, "lng": -122.4094}


def kek() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


@contextmanager
def serving(settings: Settings) -> Iterator[TestClient]:
    runtime = build_runtime(settings, clock=time.time)
    auth = AuthSettings(secret=SecretStr(SECRET), environment="production")
    with TestClient(create_app(runtime, auth, ApiOptions(command_timeout_s=5.0))) as c:
        yield c


def test_wrapped_keys_open_through_the_api_and_a_start_without_their_kek_is_refused(
    tmp_path: Path,
) -> None:
    keks = json.dumps({"kek-1": kek()})
    settings = Settings(data_dir=tmp_path / "data", shards=2, key_encryption_keys=keks)
    with serving(settings) as c:
        r = c.post("/riders", json={"name": "Wanda Wrapped"})
        assert r.status_code == 201, r.text
        token = {"Authorization": f"Bearer {r.json()['token']['access_token']}"}
        r = c.post("/rides", headers=token, json={"pickup": PICKUP, "dropoff": DROPOFF})
        assert r.status_code == 201, r.text
        ride_id, after = r.json()["ride_id"], {"after": r.json()["position"]}
        shown = c.get(f"/rides/{ride_id}", headers=token, params=after).json()
        assert shown["pickup"] == PICKUP

    rows = (
        sqlite3.connect(key_store_path(settings.data_dir))
        .execute("SELECT kek, length(key) FROM subject_keys WHERE key IS NOT NULL")
        .fetchall()
    )
    assert rows and all(kek_id == "kek-1" and size == 60 for kek_id, size in rows)

    for other in (None, json.dumps({"kek-1": kek()})):  # none, or another under its id
        without = settings.model_copy(update={"key_encryption_keys": other and SecretStr(other)})
        with pytest.raises(KeyWrapError, match="kek-1"):
            build_runtime(without, clock=time.time)

    with serving(settings) as c:  # with it, the same ride opens again after the restart
        again = c.get(f"/rides/{ride_id}", headers=token)
        assert again.status_code == 200, again.text
        assert again.json()["pickup"] == PICKUP
