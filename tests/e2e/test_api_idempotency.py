"""Idempotency that cannot leak or lie, over a real embedded runtime and its restarts.

A keyed write's fingerprint (route, caller, body) lives in the engine's command record: a
retry of the same request gets the first outcome, the same key for another request a 422,
on any API process and after a restart. A registration's key must be a random UUID, and no
bearer token is ever stored: a retried registration gets the same account and a token
issued afresh.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from idempotency_keys import uuid7
from pydantic import SecretStr

from dispatch.api import AuthSettings, create_app
from dispatch.api.auth import decode
from dispatch.api.context import ApiOptions
from dispatch.bootstrap import build_runtime
from dispatch.settings import Settings

SECRET = "Zr4pX9wLq2Vt7Nc1Bm6Hs3Jd8Kf5Gy0Ue"
AUTH = AuthSettings(secret=SecretStr(SECRET), environment="production")
PICKUP = {"lat": 37.7749, "lng": -122.4194}
DROPOFF = {"lat": 37.7599, "lng": -122.4148}
RIDE = {"pickup": PICKUP, "dropoff": DROPOFF}


@contextmanager
def api_on(data_dir: Path) -> Iterator[TestClient]:
    """The API over the embedded log in ``data_dir``; leaving the block stops it."""
    runtime = build_runtime(Settings(data_dir=data_dir, shards=2), clock=time.time)
    options = ApiOptions(read_wait_s=1.0, command_timeout_s=5.0)
    with TestClient(create_app(runtime, AUTH, options)) as client:
        yield client


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with api_on(tmp_path) as c:
        yield c


def bearer(body: dict[str, object]) -> dict[str, str]:
    return {"Authorization": f"Bearer {body['token']['access_token']}"}  # type: ignore[index]


def register_rider(c: TestClient) -> dict[str, str]:
    r = c.post("/riders", json={"name": "Ray"})
    assert r.status_code == 201, r.text
    return bearer(r.json())


def register_driver(c: TestClient, key: str | None = None) -> tuple[str, dict[str, str]]:
    headers = {"Idempotency-Key": key} if key else {}
    r = c.post("/drivers", json={"name": "Dee", "home": PICKUP}, headers=headers)
    assert r.status_code == 201, r.text
    return r.json()["driver_id"], bearer(r.json())


def head(c: TestClient, shard: int = 0) -> int:
    return int(c.app.state.ctx.runtime.head(shard))  # type: ignore[attr-defined]


def test_a_retry_with_the_same_key_and_body_gets_the_first_outcome(client: TestClient) -> None:
    keyed = {**register_rider(client), "Idempotency-Key": "ride-1"}
    first = client.post("/rides", headers=keyed, json=RIDE)
    assert first.status_code == 201
    before = head(client)

    retry = client.post("/rides", headers=keyed, json=RIDE)

    assert retry.status_code == 201
    assert retry.headers["Idempotent-Replayed"] == "true"
    for field in ("ride_id", "command_id"):
        assert retry.json()[field] == first.json()[field]
    assert head(client) == before, "a retry records nothing"


def test_a_retry_reaching_another_api_process_gets_the_first_outcome(client: TestClient) -> None:
    runtime = client.app.state.ctx.runtime  # type: ignore[attr-defined]
    other = TestClient(create_app(runtime, AUTH, ApiOptions(manage_runtime=False)))
    keyed = {**register_rider(client), "Idempotency-Key": "ride-2"}
    first = client.post("/rides", headers=keyed, json=RIDE)
    before = head(client)

    retry = other.post("/rides", headers=keyed, json=RIDE)

    assert (retry.status_code, retry.json()["ride_id"]) == (201, first.json()["ride_id"])
    assert head(client) == before


def test_a_retried_rejection_returns_the_same_rejection(client: TestClient) -> None:
    rider = register_rider(client)
    ride_id = client.post("/rides", headers=rider, json=RIDE).json()["ride_id"]
    assert client.post(f"/rides/{ride_id}/cancel", headers=rider).status_code == 200
    keyed = {**rider, "Idempotency-Key": "cancel-twice"}
    first = client.post(f"/rides/{ride_id}/cancel", headers=keyed)
    assert (first.status_code, first.json()["error"]) == (409, "illegal_transition")

    retry = client.post(f"/rides/{ride_id}/cancel", headers=keyed)

    assert (retry.status_code, retry.json()) == (409, first.json())


def test_a_key_reused_for_another_body_is_refused(client: TestClient) -> None:
    keyed = {**register_rider(client), "Idempotency-Key": "k-1"}
    assert client.post("/rides", headers=keyed, json=RIDE).status_code == 201

    other = client.post("/rides", headers=keyed, json={"pickup": DROPOFF, "dropoff": PICKUP})

    assert (other.status_code, other.json()["error"]) == (422, "idempotency_key_reused")
    assert "Idempotent-Replayed" not in other.headers


def test_a_key_reused_on_another_route_after_a_restart_is_refused(tmp_path: Path) -> None:
    """The defect: after a restart, /offline with the key that served /online answered 200
    "replayed" and the driver stayed online."""
    with api_on(tmp_path) as c:
        driver_id, driver = register_driver(c)
        keyed = {**driver, "Idempotency-Key": "shift-start"}
        assert c.post(f"/drivers/{driver_id}/online", headers=keyed).status_code == 200

    with api_on(tmp_path) as c:
        offline = c.post(f"/drivers/{driver_id}/offline", headers=keyed)
        assert (offline.status_code, offline.json()["error"]) == (422, "idempotency_key_reused")
        retry = c.post(f"/drivers/{driver_id}/online", headers=keyed)
        assert retry.status_code == 200 and retry.headers["Idempotent-Replayed"] == "true"
        view = c.get(f"/drivers/{driver_id}", headers=driver, params={"after": f"0:{head(c)}"})
        assert view.json()["status"] == "available", "the driver is still online"


@pytest.mark.parametrize(
    "key",
    [
        "signup-7",
        str(uuid.uuid1()),  # time-based: guessable
        "00000000-0000-4000-8000-00000000000",  # one digit short
        str(uuid.UUID(int=0)),
    ],
)
def test_a_registration_key_must_be_a_random_uuid(client: TestClient, key: str) -> None:
    r = client.post("/riders", json={"name": "Ray"}, headers={"Idempotency-Key": key})

    assert r.status_code == 422
    assert "Idempotency-Key" in r.json()["reason"]


def test_a_registration_retry_gets_the_same_account_and_a_fresh_token(tmp_path: Path) -> None:
    key = str(uuid.uuid4())
    with api_on(tmp_path) as c:
        driver_id, _ = register_driver(c, key)

    with api_on(tmp_path) as c:  # nothing of the first answer is in memory any more
        retry = c.post(
            "/drivers", json={"name": "Dee", "home": PICKUP}, headers={"Idempotency-Key": key}
        )
        assert retry.status_code == 201
        assert retry.headers["Idempotent-Replayed"] == "true"
        assert retry.json()["driver_id"] == driver_id
        token = retry.json()["token"]["access_token"]
        assert decode(AUTH, token).sub == driver_id
        assert c.post(f"/drivers/{driver_id}/online", headers=bearer(retry.json())).is_success


def test_a_registration_key_reused_with_another_body_gets_no_token(tmp_path: Path) -> None:
    """The account-takeover defect: after a restart any body with a used key got a fresh
    token for the existing account."""
    key = str(uuid.uuid4())
    with api_on(tmp_path) as c:
        register_driver(c, key)

    with api_on(tmp_path) as c:
        other = {"name": "Mallory", "home": PICKUP}
        r = c.post("/drivers", json=other, headers={"Idempotency-Key": key})
        assert (r.status_code, r.json()["error"]) == (422, "idempotency_key_reused")
        assert "token" not in r.json()
        rider = c.post("/riders", json={"name": "Dee"}, headers={"Idempotency-Key": key})
        assert rider.status_code == 201, "another role's key space: a new rider"
        assert rider.json()["rider_id"] != r.json().get("driver_id")


def test_racing_registrations_with_one_key_and_different_bodies_make_one_account(
    client: TestClient,
) -> None:
    key, start = str(uuid.uuid4()), threading.Barrier(2)
    answers: dict[str, tuple[int, dict[str, object]]] = {}

    def register(name: str) -> None:
        start.wait()
        r = client.post("/riders", json={"name": name}, headers={"Idempotency-Key": key})
        answers[name] = (r.status_code, r.json())

    threads = [threading.Thread(target=register, args=(n,)) for n in ("Ann", "Bob")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)

    statuses = sorted(status for status, _ in answers.values())
    assert statuses == [201, 422], answers
    refused = next(body for status, body in answers.values() if status == 422)
    assert refused["error"] == "idempotency_key_reused" and "token" not in refused


def test_no_bearer_token_is_ever_stored(tmp_path: Path) -> None:
    key = str(uuid.uuid4())
    with api_on(tmp_path) as c:
        r = c.post("/riders", json={"name": "Ray"}, headers={"Idempotency-Key": key})
        again = c.post("/riders", json={"name": "Ray"}, headers={"Idempotency-Key": key})
        issued = [r.json()["token"], again.json()["token"]]
        keyed = {**bearer(r.json()), "Idempotency-Key": "ride-9"}
        assert c.post("/rides", headers=keyed, json=RIDE).status_code == 201
    tokens = [t[kind] for t in issued for kind in ("access_token", "refresh_token")]

    paths = list(tmp_path.glob("shard-*.sqlite"))
    assert paths
    for path in paths:
        with sqlite3.connect(path) as db:
            states = b"".join(row[0] for row in db.execute("SELECT state FROM stored_events"))
        for token in tokens:
            signature = token.split(".")[2]  # a JWT's third part: what makes it a token
            assert signature.encode() not in states


def test_a_pending_keyed_registration_hands_out_no_token(client: TestClient) -> None:
    """A 202 answered before the shard compared fingerprints carried a token for the id the
    key derives: someone with the key alone (any body) got into the account it registered."""
    key = str(uuid.uuid4())
    first = client.post("/riders", json={"name": "Ray"}, headers={"Idempotency-Key": key})
    assert first.status_code == 201
    runtime = client.app.state.ctx.runtime  # type: ignore[attr-defined]
    hurried = ApiOptions(manage_runtime=False, command_timeout_s=0.0)  # every write is a 202
    other = TestClient(create_app(runtime, AUTH, hurried))

    r = other.post("/riders", json={"name": "Mallory"}, headers={"Idempotency-Key": key})

    assert r.status_code in (202, 422), r.text
    assert "token" not in r.json(), "a token for the account the key registered"
    assert r.json().get("rider_id") in (None, first.json()["rider_id"])


def test_a_pending_registration_without_a_key_still_gets_its_token(client: TestClient) -> None:
    runtime = client.app.state.ctx.runtime  # type: ignore[attr-defined]
    hurried = ApiOptions(manage_runtime=False, command_timeout_s=0.0)
    other = TestClient(create_app(runtime, AUTH, hurried))

    r = other.post("/riders", json={"name": "Ray"})

    if r.status_code == 202:  # a random id nobody else can ask for: the token is safe to give
        assert decode(AUTH, r.json()["token"]["access_token"]).sub == r.json()["rider_id"]


def test_a_keyed_ride_request_repeated_after_the_window_names_a_new_ride(
    tmp_path: Path,
) -> None:
    """A keyed request's ride id comes from its key and the window's period: a retry
    within the window (even across a period boundary) is answered with the ride it created,
    and a repeat after the window, a new command, creates a new ride, never the old one
    again (a shard restored from a checkpoint no longer holds a ride ended that long ago)."""
    now = [float(int(time.time() // 60) * 60 + 50)]  # 10 s before a period boundary
    runtime = build_runtime(
        Settings(data_dir=tmp_path, shards=2, idempotency_window_s=60), clock=lambda: now[0]
    )
    options = ApiOptions(read_wait_s=1.0, command_timeout_s=5.0)
    with TestClient(create_app(runtime, AUTH, options)) as c:
        keyed = {**register_rider(c), "Idempotency-Key": "ride-after-window"}
        first = c.post("/rides", headers=keyed, json=RIDE)
        assert first.status_code == 201, first.text
        ride = first.json()["ride_id"]
        now[0] += 20  # the next period, within the window
        retry = c.post("/rides", headers=keyed, json=RIDE)
        assert retry.status_code == 201 and retry.json()["ride_id"] == ride
        assert retry.headers.get("Idempotent-Replayed") == "true"
        assert (
            c.post(
                f"/rides/{ride}/cancel", headers={"Authorization": keyed["Authorization"]}
            ).status_code
            == 200
        )
        now[0] += 120  # past the window: a new command
        again = c.post("/rides", headers=keyed, json=RIDE)
        assert again.status_code == 201, again.text
        assert again.json()["ride_id"] != ride and "Idempotent-Replayed" not in again.headers


def test_a_key_older_than_the_idempotency_window_is_refused_over_http(
    client: TestClient,
) -> None:
    rider = register_rider(client)
    stale = uuid7(datetime.now(UTC) - timedelta(days=2))  # the window is 24 h
    before = head(client)

    r = client.post("/rides", headers={**rider, "Idempotency-Key": str(stale)}, json=RIDE)

    assert (r.status_code, r.json()["error"]) == (422, "idempotency_key_expired")
    assert "window" in r.json()["reason"]
    assert head(client) == before, "nothing recorded for a refused key"


def test_a_key_dated_ahead_of_the_engine_clock_is_refused_over_http(
    client: TestClient,
) -> None:
    rider = register_rider(client)
    future = uuid7(datetime.now(UTC) + timedelta(hours=1))

    r = client.post("/rides", headers={**rider, "Idempotency-Key": str(future)}, json=RIDE)

    assert (r.status_code, r.json()["error"]) == (422, "idempotency_key_invalid")


def test_a_fresh_dated_key_is_accepted_and_answers_its_retry(client: TestClient) -> None:
    rider = register_rider(client)
    fresh = {**rider, "Idempotency-Key": str(uuid7(datetime.now(UTC)))}
    first = client.post("/rides", headers=fresh, json=RIDE)
    retry = client.post("/rides", headers=fresh, json=RIDE)
    assert (first.status_code, retry.status_code) == (201, 201)
    assert retry.json()["ride_id"] == first.json()["ride_id"]
