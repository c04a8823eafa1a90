"""Request fingerprints are keyed (docs/PRIVACY.md, "Request fingerprints"): a keyed
command's record keeps an HMAC of route, caller and body under a key derived from the
token key ring, never the unsalted SHA-256 anyone can recompute from a guess. A retry
still matches its record after the signing key is rotated (the old key still in the ring),
and a record written before fingerprints were keyed (a plain SHA-256) still answers its
retries while legacy fingerprints are accepted, and is a reused key once they are not."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from fastapi.testclient import TestClient
from pydantic import SecretStr

from dispatch.api import AuthSettings, create_app
from dispatch.api.context import ApiOptions
from dispatch.api.idempotency import Fingerprinter, legacy_fingerprint
from dispatch.bootstrap import build_runtime
from dispatch.settings import Settings
from schemas import commands as c

OLD = "Zr4pX9wLq2Vt7Nc1Bm6Hs3Jd8Kf5Gy0Ue"  # random: production refuses weak ones
NEW = "Qe7uT1yHn5Wk3Ls9Fd2Gx8Mc4Vb6Zp0Ra"
HOME = {"lat": 37.7749, "lng": -122.4194}


def ring(signing: str, **keys: str) -> AuthSettings:
    return AuthSettings(
        keys={kid: SecretStr(secret) for kid, secret in keys.items()},
        signing_key=signing,
        environment="production",
    )


@contextmanager
def api_on(data_dir: Path, auth: AuthSettings) -> Iterator[TestClient]:
    runtime = build_runtime(Settings(data_dir=data_dir, shards=2), clock=time.time)
    options = ApiOptions(read_wait_s=1.0, command_timeout_s=5.0)
    with TestClient(create_app(runtime, auth, options)) as client:
        yield client


def a_driver(c: TestClient) -> tuple[str, dict[str, str]]:
    r = c.post("/drivers", json={"name": "Dee", "home": HOME})
    assert r.status_code == 201, r.text
    return r.json()["driver_id"], {"Authorization": f"Bearer {r.json()['token']['access_token']}"}


def stored(data_dir: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(data_dir.glob("shard-*.sqlite*")))


def test_a_records_fingerprint_is_keyed_not_the_plain_hash_of_the_request(tmp_path: Path) -> None:
    auth = ring("k1", k1=OLD)
    with api_on(tmp_path, auth) as client:
        driver, token = a_driver(client)
        path = f"/drivers/{driver}/online"
        r = client.post(path, headers=token | {"Idempotency-Key": "on-1"})
        assert r.status_code == 200, r.text
    keyed = Fingerprinter({"k1": OLD}, "k1", legacy=False).of("POST", path, driver, "").primary
    data = stored(tmp_path)
    assert keyed.startswith("f2.k1.") and keyed.encode() in data
    assert legacy_fingerprint("POST", path, driver, "").encode() not in data


def test_a_retry_after_the_signing_key_is_rotated_still_matches_its_record(
    tmp_path: Path,
) -> None:
    with api_on(tmp_path, ring("k1", k1=OLD)) as client:
        driver, token = a_driver(client)
        first = client.post(f"/drivers/{driver}/online", headers=token | {"Idempotency-Key": "k"})
        assert first.status_code == 200, first.text
    with api_on(tmp_path, ring("k2", k1=OLD, k2=NEW)) as client:  # rotated: k2 signs
        again = client.post(f"/drivers/{driver}/online", headers=token | {"Idempotency-Key": "k"})
        assert again.status_code == 200, again.text
        assert again.headers["Idempotent-Replayed"] == "true"
        assert again.json()["command_id"] == first.json()["command_id"]
        other = client.post(f"/drivers/{driver}/offline", headers=token | {"Idempotency-Key": "k"})
        assert (other.status_code, other.json()["error"]) == (422, "idempotency_key_reused")


def _legacy_record(client: TestClient, driver: str, key: str) -> None:
    """What an API of before keyed fingerprints sent: the plain SHA-256 of the request."""
    path = f"/drivers/{driver}/online"
    envelope = c.CommandEnvelope(
        command_id=f"{driver}:{key}",
        fingerprint=legacy_fingerprint("POST", path, driver, ""),
        issued_at=datetime.now(UTC),
        command=c.GoOnline(driver_id=driver),
    )
    outcome = client.app.state.ctx.runtime.send(envelope, 5.0)  # type: ignore[attr-defined]
    assert outcome is not None and outcome.accepted, outcome


def test_a_record_of_before_keyed_fingerprints_answers_its_retry(tmp_path: Path) -> None:
    with api_on(tmp_path, ring("k1", k1=OLD)) as client:
        driver, token = a_driver(client)
        _legacy_record(client, driver, "old")
        again = client.post(f"/drivers/{driver}/online", headers=token | {"Idempotency-Key": "old"})
        assert again.status_code == 200, again.text
        assert again.headers["Idempotent-Replayed"] == "true"


def test_a_legacy_record_is_a_reused_key_once_legacy_fingerprints_are_refused(
    tmp_path: Path,
) -> None:
    strict = AuthSettings(
        keys={"k1": SecretStr(OLD)}, environment="production", accept_legacy_fingerprints=False
    )
    with api_on(tmp_path, strict) as client:
        driver, token = a_driver(client)
        _legacy_record(client, driver, "old")
        again = client.post(f"/drivers/{driver}/online", headers=token | {"Idempotency-Key": "old"})
        assert (again.status_code, again.json()["error"]) == (422, "idempotency_key_reused")
